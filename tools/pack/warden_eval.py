#!/usr/bin/env python3
"""Measure policies with the real matcher: run `warden check` on every row of /work/shared/data.

mine.py approximates Warden's normalisation in Python to explore phrase lists quickly; this script
gives the authoritative figures for the chosen policies. It copies the given policy files (their
`tests:` removed) and their phrase files into a temporary directory, sends each row as one
message of the given role, and counts, per label file, the rows on which each rule fired and the
rows any rule fired on. Each rule is run alone (`warden check` stops at the first block). It also
reports whether mine.py's prediction for each phrase rule agrees with Warden's on every row.

Usage: warden_eval.py [--role user] [--labels injection,jailbreak,benign,bias,toxic] POLICY.yaml ...
"""

import argparse
import collections
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mine  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warden", default=os.path.expanduser("~/.cache/warden/target/debug/warden"))
    ap.add_argument("--role", default="user")
    ap.add_argument("--labels", default="injection,jailbreak,benign,bias,toxic")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("policies", nargs="+")
    args = ap.parse_args()

    # `warden check` stops at the first block, so each rule is measured alone: one directory per
    # rule (its policy with only that rule). A row counts as caught when any rule fired on it.
    base = tempfile.mkdtemp(prefix="warden-eval-")
    try:
        units = []  # (policy, rule id, directory, mine.PhraseSet or None, action)
        for path in args.policies:
            src_dir = os.path.dirname(os.path.abspath(path))
            with open(path, encoding="utf-8") as f:
                doc = yaml.safe_load(f)
            doc.pop("tests", None)
            for r in doc["rules"]:
                roles = r.get("roles") or ["system", "user", "assistant", "tool"]
                phases = r.get("phases") or ["prompt", "completion"]
                if args.role not in roles or "prompt" not in phases:
                    continue
                d = os.path.join(base, f"{doc['name']}__{r['id']}")
                os.makedirs(d)
                if os.path.isdir(os.path.join(src_dir, "phrases")):
                    shutil.copytree(os.path.join(src_dir, "phrases"), os.path.join(d, "phrases"))
                one = dict(doc, rules=[r])
                with open(os.path.join(d, "policy.yaml"), "w", encoding="utf-8") as f:
                    yaml.safe_dump(one, f, allow_unicode=True, sort_keys=False)
                v = subprocess.run([args.warden, "validate", d], capture_output=True, text=True)
                if v.returncode != 0:
                    sys.exit(v.stdout + v.stderr)
                ps = None
                ph = r.get("phrases")
                if ph:
                    lst = list(ph.get("list", []))
                    for f in ph.get("files", []):
                        lst += mine.load_phrase_file(os.path.join(src_dir, f if isinstance(f, str) else f["path"]))
                    ps = mine.PhraseSet(lst, ph.get("word_boundary", False))
                units.append((doc["name"], r["id"], d, ps, r["action"] if not (r.get("mode") or doc.get("mode")) == "monitor" else f"monitor, {r['action']}"))

        def check(job):
            d, row = job
            out = subprocess.run([args.warden, "check", "--policies", d, "--phase", "prompt", "--role", args.role,
                                  "--file", "-"], input=row["text"].encode("utf-8"), capture_output=True)
            if out.returncode != 0:
                raise RuntimeError(out.stderr.decode())
            dec = json.loads(out.stdout)
            return dec["action"], bool(dec["hits"])

        print(f"role={args.role}; policies: {', '.join(args.policies)}")
        for label in args.labels.split(","):
            rows = mine.load(label)
            n = len(rows)
            caught = [False] * n
            print(f"  {label} ({n} rows)")
            for pol, rid, d, ps, action in units:
                with concurrent.futures.ThreadPoolExecutor(args.jobs) as ex:
                    res = list(ex.map(check, [(d, row) for row in rows]))
                fired = 0
                mismatches = 0
                for i, (_, hit) in enumerate(res):
                    if hit:
                        fired += 1
                        caught[i] = True
                    if ps is not None and bool(ps.hits(rows[i]["norm"])) != hit:
                        mismatches += 1
                note = f"; mine.py disagrees on {mismatches} rows" if mismatches else "; mine.py agrees on every row"
                print(f"      {pol}/{rid} ({action}): {mine.pct(fired, n)}{note if ps is not None else ''}")
            print(f"      any rule: {mine.pct(sum(caught), n)}")
    finally:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
