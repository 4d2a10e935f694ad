#!/usr/bin/env python3
"""Deterministic train/dev split of the guard-classifier data (standard library only).

Reads <data>/*.jsonl (the shared base data) and tools/classifier/data/*.jsonl[.gz] (the rows that
build_data.py constructs). A row goes to dev when int(sha256(key)[:8], 16) % 5 == 0, where key is
its `group` (rows built from the same base document share one) or, without a group, its text.

Texts that tests use must never be trained on: a row containing "pwned" (any case) always goes
to dev.

Writes DIR/train.jsonl and DIR/dev.jsonl with {"text", "label", "source", "family"} (train rows
also keep "payload", the inserted instruction of a constructed injected document, which train.py
uses to label sentence windows). Dev rows are whole texts as a user or a tool would send them.

  python3 tools/classifier/split.py --data ../shared/data --out DIR
"""

import argparse
import gzip
import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def family_of(row):
    """A family for base rows without one (garak probe, jailbreak source, ...)."""
    if row.get("family"):
        return row["family"]
    label, source = row["label"], row.get("source", "")
    if label == "injection":
        for key, fam in (("promptinject", "garak:promptinject"), ("web_injection", "garak:web-exfil"),
                         ("LatentWhois", "garak:latent-whois"), ("Translation", "garak:latent-translation"),
                         ("Resume", "garak:latent-resume"), ("Report", "garak:latent-report"),
                         ("Eiffel", "garak:latent-eiffel"), ("Legal", "garak:latent-legal")):
            if key in source:
                return fam
        return "garak:latent-other"
    if label == "jailbreak":
        return "jailbreak:in-the-wild" if "inthewild" in source else "jailbreak:garak-dan-autodan"
    if label == "trigger":
        return "trigger:" + source.split("trigger[", 1)[-1].rstrip("]")
    if label == "benign":
        if "TOXIGEN" in source.upper():
            return "benign:toxigen-neutral"
        if "normal_instructions" in source:
            return "benign:garak-normal-instructions"
        return "benign:nq-question"
    return f"{label}:{source.split(':')[0] or 'base'}"


def read_rows(files):
    for f in files:
        opener = gzip.open if f.name.endswith(".gz") else open
        with opener(f, "rt", encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    yield f, n, json.loads(line)


def is_dev(row) -> bool:
    if "pwned" in row["text"].casefold():
        return True
    key = row.get("group") or row["text"]
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) % 5 == 0


def split(data: Path, extra: Path):
    files = sorted(data.glob("*.jsonl")) + sorted(list(extra.glob("*.jsonl")) + list(extra.glob("*.jsonl.gz")))
    if not files:
        sys.exit(f"no *.jsonl files in {data}")
    train, dev = [], []
    for f, n, row in read_rows(files):
        out = {"text": row["text"], "label": row["label"], "source": row.get("source", ""), "family": family_of(row)}
        if is_dev(row):
            dev.append(out)
        else:
            if row.get("payload"):
                out["payload"] = row["payload"]
            train.append(out)
    return train, dev


def write(path: Path, rows):
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="directory of the shared *.jsonl files")
    ap.add_argument("--extra", type=Path, default=HERE / "data", help="constructed rows (default: tools/classifier/data)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    train, dev = split(args.data, args.extra)
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out / "train.jsonl", train)
    write(args.out / "dev.jsonl", dev)
    print(f"train {len(train)} rows, dev {len(dev)} rows -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
