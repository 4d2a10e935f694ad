#!/usr/bin/env python3
"""Run the `tests:` of policy files with `warden check`, until `warden test` exists.

For each policy file given (default: every policies/*.yaml with a `tests:` key), copies that
policy alone (its `tests:` key removed) and the phrase files next to it into a temporary
directory, validates it, then for each test runs `warden check --policies TMP --phase P --role R`
once per message and combines the answers the way one request would be judged: the strongest
action wins, and the rules that fired are the union over the messages. The result is compared
with `expect.action` and, when given, `expect.rules` (exactly the ids of this policy's rules).

Usage: check_tests.py [--warden PATH] [POLICY.yaml ...]
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ORDER = {"allow": 0, "flag": 1, "redact": 2, "block": 3}


def run_check(warden, pdir, phase, role, text, model, provider):
    cmd = [warden, "check", "--policies", pdir, "--phase", phase, "--role", role, "--file", "-"]
    if model:
        cmd += ["--model", model]
    if provider:
        cmd += ["--provider", provider]
    out = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"warden check failed: {out.stderr.decode()}")
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warden", default=os.path.expanduser("~/.cache/warden/target/debug/warden"))
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()
    files = args.files or sorted(glob.glob(os.path.join(REPO, "policies", "*.yaml")))

    failures = 0
    total = 0
    for path in files:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        tests = doc.pop("tests", None)
        if not tests:
            continue
        if doc.get("match", {}).get("tenants") or doc.get("match", {}).get("headers"):
            print(f"{path}: selects on tenant/headers, which `warden check` cannot set; skipped")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            src_dir = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(os.path.join(src_dir, "phrases")) and os.path.isdir(os.path.join(src_dir, "..", "phrases")):
                src_dir = os.path.join(src_dir, "..")
            for sub in ("phrases",):
                if os.path.isdir(os.path.join(src_dir, sub)):
                    shutil.copytree(os.path.join(src_dir, sub), os.path.join(tmp, sub))
            name = os.path.basename(path)
            if name.endswith(".example"):
                name = name[: -len(".example")]
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                yaml.safe_dump(doc, f, allow_unicode=True, sort_keys=False)
            v = subprocess.run([args.warden, "validate", tmp], capture_output=True, text=True)
            if v.returncode != 0:
                print(f"{path}: INVALID\n{v.stdout}{v.stderr}")
                failures += 1
                continue
            for t in tests:
                total += 1
                phase = t.get("phase", "prompt")
                if "text" in t:
                    msgs = [{"role": "user" if phase == "prompt" else "assistant", "content": t["text"]}]
                else:
                    msgs = t["messages"]
                action = "allow"
                rules = set()
                for m in msgs:
                    d = run_check(args.warden, tmp, phase, m["role"], m["content"], t.get("model"), t.get("provider"))
                    if ORDER[d["action"]] > ORDER[action]:
                        action = d["action"]
                    for h in d["hits"]:
                        if h["policy"] == doc["name"]:
                            rules.add(h["rule"])
                exp = t["expect"]
                ok = action == exp["action"]
                if "rules" in exp and exp["rules"] is not None:
                    ok = ok and rules == set(exp["rules"])
                status = "ok  " if ok else "FAIL"
                if not ok:
                    failures += 1
                print(f"{status} {doc['name']}: {t['name']}: got {action} {sorted(rules)}"
                      + ("" if ok else f", expected {exp['action']} {exp.get('rules', '')}"))
    print(f"{total - failures}/{total} tests pass" if total else "no tests found")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
