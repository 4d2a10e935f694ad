#!/usr/bin/env python3
"""Mine and measure phrase lists for the Warden default policy pack.

Approximates the matcher in crates/warden-core (normalize.rs + phrases.rs):
  text -> drop invisible/format characters -> NFKD per character, drop combining marks
       -> case fold (lowercase, ß -> ss, final sigma -> sigma) -> Cyrillic/Greek look-alikes
       -> Latin skeleton -> collapse whitespace runs to one space;
  phrases are normalised the same way and matched as substrings (Aho-Corasick finds the same
  set of texts that contain a phrase; leftmost-longest only changes which span is reported);
  with --word-boundary a match must not touch a letter/digit/underscore on a side where the
  phrase itself begins/ends with one.

Data: /work/shared/data/*.jsonl, rows {"text","label","source"}.
  positives: injection.jsonl (label injection) or jailbreak.jsonl (label jailbreak)
  negatives: benign.jsonl + bias.jsonl + toxic.jsonl (neither injection nor jailbreak)
  hard negatives: tools/pack/hard_negatives.txt, hand-written honest look-alikes (one a line)

Usage:
  mine.py eval  --label injection --phrases policies/phrases/prompt-injection.txt [--word-boundary]
                [--per-phrase] [--show-fp N] [--show-missed N]
  mine.py ngrams --label jailbreak [--min-n 2 --max-n 6 --min-df 5 --top 80] [--exclude FILE]
  mine.py missed --label injection --phrases FILE [--n 20]   (samples of positives not matched)
  mine.py norm "some text"                                    (print the normalised text)
"""

import argparse
import collections
import json
import os
import random
import re
import sys
import unicodedata

DATA = os.environ.get("WARDEN_DATA", "/work/shared/data")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
NEGATIVE_FILES = ["benign", "bias", "toxic"]
# Honest technical prose already on this machine (crate READMEs, Debian docs, the Python standard
# library with its comments and docstrings): a second false-positive check, with longer texts than
# the short questions of benign.jsonl. Used with --local-docs.
LOCAL_DOCS = [
    os.path.expanduser("~/.cargo/registry/src/**/*.md"),
    "/usr/share/doc/**/*.txt",
    os.path.join(os.path.dirname(os.__file__), "*.py"),
]

# --- normalisation (port of crates/warden-core/src/normalize.rs) ------------------------------

_INVISIBLE_RANGES = [
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F),
    (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF9, 0xFFFB),
    (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE007F), (0xE0100, 0xE01EF),
]


def is_invisible(c):
    o = ord(c)
    return any(a <= o <= b for a, b in _INVISIBLE_RANGES)


# The look-alike table of normalize.rs (`confusable`), lowercased letter -> Latin skeleton.
_CONFUSABLE = {
    'а': 'a', 'в': 'b', 'е': 'e', 'ё': 'e', 'һ': 'h', 'н': 'h', 'і': 'i', 'ї': 'i', 'ј': 'j',
    'к': 'k', 'ӏ': 'l', 'м': 'm', 'о': 'o', 'р': 'p', 'ԛ': 'q', 'ѕ': 's', 'т': 't', 'у': 'y',
    'ԝ': 'w', 'х': 'x', 'с': 'c', 'ԁ': 'd', 'ɡ': 'g', 'ү': 'y', 'ѵ': 'v',
    'α': 'a', 'β': 'b', 'ε': 'e', 'η': 'h', 'ι': 'i', 'κ': 'k', 'μ': 'm', 'ν': 'n', 'ο': 'o',
    'ρ': 'p', 'τ': 't', 'υ': 'y', 'χ': 'x', 'γ': 'y', 'ζ': 'z', 'ω': 'w', 'ϲ': 'c', 'ϳ': 'j',
    'ı': 'i', 'ȷ': 'j', 'ɑ': 'a', 'ʟ': 'l', 'ɪ': 'i', 'ꓲ': 'i',
}


def _fold_char(c, out):
    if c.isascii():
        out.append(" " if c in " \t\n\r\x0b\x0c" else c.lower())
        return
    if is_invisible(c):
        return
    for d in unicodedata.normalize("NFKD", c):
        if unicodedata.combining(d) or is_invisible(d):
            continue
        if d.isspace():
            out.append(" ")
            continue
        if d in "ßẞ":
            out.append("ss")
        elif d == "ς":
            out.append("σ")
        else:
            for low in d.lower():
                if not unicodedata.combining(low):
                    out.append(_CONFUSABLE.get(low, low))


def normalize(text):
    out = []
    for c in text:
        _fold_char(c, out)
    s = "".join(out)
    return re.sub(" {2,}", " ", s)


def is_word(c):
    return c.isalnum() or c == "_"


# --- phrase matching ---------------------------------------------------------------------------

class PhraseSet:
    def __init__(self, phrases, word_boundary=False):
        self.raw = list(phrases)
        self.norm = [normalize(p) for p in self.raw]
        self.wb = word_boundary
        for p, n in zip(self.raw, self.norm):
            if not n.strip():
                raise ValueError(f"phrase {p!r} is empty once normalised")

    def _hit(self, text, phrase):
        start = text.find(phrase)
        while start != -1:
            end = start + len(phrase)
            if not self.wb:
                return True
            ok = True
            if is_word(phrase[0]) and start > 0 and is_word(text[start - 1]):
                ok = False
            if ok and is_word(phrase[-1]) and end < len(text) and is_word(text[end]):
                ok = False
            if ok:
                return True
            start = text.find(phrase, start + 1)
        return False

    def hits(self, ntext):
        """Indices of the phrases that occur in an already-normalised text."""
        return [i for i, p in enumerate(self.norm) if self._hit(ntext, p)]


def load_phrase_file(path):
    # As crates/warden-policy/src/load.rs: trimmed lines, blank and `#` lines skipped.
    with open(path, encoding="utf-8") as f:
        return [l.strip() for l in f if l.strip() and not l.strip().startswith("#")]


def load_phrase_groups(path):
    """The phrases of a file by group: a comment line starting with `# ---` opens a group."""
    groups = []
    name = os.path.basename(path) + ": (top)"
    with open(path, encoding="utf-8") as f:
        for line in f:
            l = line.strip()
            if l.startswith("# ---"):
                name = os.path.basename(path) + ": " + l[5:].strip()
            elif l and not l.startswith("#"):
                if not groups or groups[-1][0] != name:
                    groups.append((name, []))
                groups[-1][1].append(l)
    return groups


def load_corpus(globs, max_files=5000):
    """Extra honest text (local documentation) split into paragraphs, for a false-positive check."""
    import glob as globmod
    rows = []
    files = []
    for g in globs:
        files.extend(sorted(globmod.glob(g, recursive=True)))
    for path in files[:max_files]:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError):
            continue
        for para in re.split(r"\n\s*\n", text):
            para = para.strip()
            if len(para) >= 20:
                rows.append({"text": para, "label": "corpus", "source": path, "norm": normalize(para)})
    return rows


# --- data --------------------------------------------------------------------------------------

_cache = {}


def load(name):
    if name not in _cache:
        rows = []
        with open(os.path.join(DATA, name + ".jsonl"), encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                r["norm"] = normalize(r["text"])
                rows.append(r)
        _cache[name] = rows
    return _cache[name]


def load_hard_negatives():
    path = os.path.join(HERE, "hard_negatives.txt")
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.strip() and not line.startswith("#"):
                rows.append({"text": line, "label": "hard-negative", "source": "hard_negatives.txt",
                             "norm": normalize(line)})
    return rows


def negatives():
    rows = []
    for n in NEGATIVE_FILES:
        rows.extend(load(n))
    return rows


# --- commands ----------------------------------------------------------------------------------

def pct(a, b):
    return f"{a}/{b} = {100.0 * a / b:.2f}%" if b else "0/0"


def read_phrases(args):
    """The phrases of --phrases files, less the groups whose header contains a --skip-groups text."""
    phrases = []
    for f in args.phrases:
        for name, ps_ in load_phrase_groups(f):
            if any(k.lower() in name.lower() for k in (getattr(args, "skip_groups", None) or [])):
                continue
            phrases.extend(ps_)
    return phrases


def cmd_eval(args):
    phrases = read_phrases(args)
    ps = PhraseSet(phrases, args.word_boundary)
    pos = load(args.label)
    neg = negatives()
    hard = load_hard_negatives()

    pos_hits = [ps.hits(r["norm"]) for r in pos]
    neg_hits = [ps.hits(r["norm"]) for r in neg]
    hard_hits = [ps.hits(r["norm"]) for r in hard]
    other_label = {"injection": "jailbreak", "jailbreak": "injection"}.get(args.label)

    skipped = f"; groups skipped: {args.skip_groups}" if args.skip_groups else ""
    print(f"phrases: {len(phrases)} from {', '.join(args.phrases)}; word_boundary={args.word_boundary}{skipped}")
    print(f"recall on {args.label}: {pct(sum(1 for h in pos_hits if h), len(pos))}")
    by_src = collections.defaultdict(lambda: [0, 0])
    for r, h in zip(pos, pos_hits):
        by_src[r["source"]][1] += 1
        by_src[r["source"]][0] += bool(h)
    for s, (a, b) in sorted(by_src.items(), key=lambda x: -x[1][1]):
        print(f"    {pct(a, b):>22}  {s}")
    if other_label:
        other = load(other_label)
        print(f"(cross) hits on {other_label}: {pct(sum(1 for r in other if ps.hits(r['norm'])), len(other))}")
    total_fp = 0
    for n in NEGATIVE_FILES:
        rows = load(n)
        fp = sum(1 for r in rows if ps.hits(r["norm"]))
        total_fp += fp
        print(f"false positives on {n}: {pct(fp, len(rows))}")
    print(f"false positives on benign+bias+toxic: {pct(total_fp, len(neg))}")
    if hard:
        print(f"hits on hand-written hard negatives: {pct(sum(1 for h in hard_hits if h), len(hard))}")
        for r, h in zip(hard, hard_hits):
            if h:
                print(f"    HARD-NEG HIT {[phrases[i] for i in h]}: {r['text'][:120]!r}")

    globs = (args.corpus or []) + (LOCAL_DOCS if args.local_docs else [])
    if globs:
        corpus = load_corpus(globs)
        chits = [(r, ps.hits(r["norm"])) for r in corpus]
        nhit = sum(1 for _, h in chits if h)
        nfiles = len({r["source"] for r in corpus})
        print(f"hits on extra honest corpus ({nfiles} files, paragraphs): {pct(nhit, len(corpus))}")
        for r, h in chits:
            if h:
                print(f"    CORPUS HIT {[phrases[i] for i in h]} {r['source']}: {r['text'][:140]!r}")

    if args.show_fp:
        shown = 0
        for r, h in zip(neg, neg_hits):
            if h and shown < args.show_fp:
                print(f"    FP {[phrases[i] for i in h]} [{r['label']}]: {r['text'][:160]!r}")
                shown += 1

    if args.groups:
        print("\nper group (positives hit by the group / hit by no other group; negatives hit):")
        index = {p: i for i, p in enumerate(phrases)}
        groups = [g for f in args.phrases for g in load_phrase_groups(f)
                  if not any(k.lower() in g[0].lower() for k in (args.skip_groups or []))]
        gid = {}
        for gi, (_, ps_) in enumerate(groups):
            for p in ps_:
                gid.setdefault(index[p], gi)
        gpos = collections.Counter()
        guniq = collections.Counter()
        for h in pos_hits:
            gs = {gid[i] for i in h}
            for g in gs:
                gpos[g] += 1
            if len(gs) == 1:
                guniq[next(iter(gs))] += 1
        gneg = collections.Counter()
        for h in neg_hits:
            for g in {gid[i] for i in h}:
                gneg[g] += 1
        for gi, (name, ps_) in enumerate(groups):
            print(f"  {gpos[gi]:5d} {guniq[gi]:5d} {gneg[gi]:4d}  [{len(ps_):3d} phrases] {name[:90]}")

    if args.per_phrase:
        pc = collections.Counter()
        uniq = collections.Counter()
        nc = collections.Counter()
        for h in pos_hits:
            for i in h:
                pc[i] += 1
            if len(h) == 1:
                uniq[h[0]] += 1
        for h in neg_hits + hard_hits:
            for i in h:
                nc[i] += 1
        print(f"\nper phrase (positives hit / hit by this phrase alone / negatives hit):")
        for i, p in enumerate(phrases):
            print(f"  {pc[i]:5d} {uniq[i]:5d} {nc[i]:4d}  {p}")


def cmd_missed(args):
    phrases = []
    for f in args.phrases:
        phrases.extend(load_phrase_file(f))
    ps = PhraseSet(phrases, args.word_boundary)
    missed = [r for r in load(args.label) if not ps.hits(r["norm"])]
    print(f"{len(missed)} missed")
    random.seed(args.seed)
    for r in random.sample(missed, min(args.n, len(missed))):
        t = r["text"]
        print(f"===== {r['source']} ({len(t)} chars)")
        print(t[: args.chars] if not args.tail else t[-args.chars:])


def ngrams_of(ntext, lo, hi):
    toks = ntext.split(" ")
    seen = set()
    for n in range(lo, hi + 1):
        for i in range(len(toks) - n + 1):
            g = " ".join(toks[i:i + n]).strip(".,;:!?\"'()[]{}<>*-_`")
            if g and " " in g:
                seen.add(g)
    return seen


def cmd_ngrams(args):
    pos = load(args.label)
    exclude = None
    if args.exclude:
        exclude = PhraseSet([p for f in args.exclude for p in load_phrase_file(f)])
    neg_text = "\n".join(r["norm"] for r in negatives() + load_hard_negatives())
    df = collections.Counter()
    srcs = collections.defaultdict(set)
    for r in pos:
        if exclude and exclude.hits(r["norm"]):
            continue
        for g in ngrams_of(r["norm"], args.min_n, args.max_n):
            df[g] += 1
            srcs[g].add(r["source"])
    cands = [(g, c) for g, c in df.items() if c >= args.min_df and len(srcs[g]) >= args.min_sources]
    cands = [(g, c) for g, c in cands if g not in neg_text]
    # Drop an n-gram when a shorter n-gram inside it covers at least as many documents.
    if args.rank == "sources":
        cands.sort(key=lambda x: (-len(srcs[x[0]]), -x[1], len(x[0])))
    else:
        cands.sort(key=lambda x: (-x[1], len(x[0])))
    kept = []
    for g, c in cands:
        if any(k in g and kc >= c and srcs[k] >= srcs[g] for k, kc in kept):
            continue
        kept.append((g, c))
        if len(kept) >= args.top:
            break
    remaining = sum(1 for r in pos if not (exclude and exclude.hits(r["norm"])))
    print(f"{remaining} {args.label} rows considered; n-grams absent from benign+bias+toxic+hard negatives:")
    for g, c in kept:
        print(f"  {c:5d} docs {len(srcs[g]):3d} sources  {g}")


def main():
    import signal
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("eval")
    e.add_argument("--label", required=True, choices=["injection", "jailbreak"])
    e.add_argument("--phrases", action="append", required=True)
    e.add_argument("--word-boundary", action="store_true")
    e.add_argument("--per-phrase", action="store_true")
    e.add_argument("--show-fp", type=int, default=0)
    e.add_argument("--groups", action="store_true", help="recall per `# ---` group of the phrase files")
    e.add_argument("--corpus", action="append",
                   help="glob of extra honest text files (quote it), checked paragraph by paragraph")
    e.add_argument("--skip-groups", action="append",
                   help="leave out `# ---` groups whose header contains this text (e.g. 'garak template')")
    e.add_argument("--local-docs", action="store_true", help="add LOCAL_DOCS to the honest corpus")
    m = sub.add_parser("missed")
    m.add_argument("--label", required=True, choices=["injection", "jailbreak"])
    m.add_argument("--phrases", action="append", required=True)
    m.add_argument("--word-boundary", action="store_true")
    m.add_argument("--n", type=int, default=15)
    m.add_argument("--chars", type=int, default=600)
    m.add_argument("--tail", action="store_true")
    m.add_argument("--seed", type=int, default=0)
    g = sub.add_parser("ngrams")
    g.add_argument("--label", required=True, choices=["injection", "jailbreak"])
    g.add_argument("--min-n", type=int, default=2)
    g.add_argument("--max-n", type=int, default=6)
    g.add_argument("--min-df", type=int, default=5)
    g.add_argument("--top", type=int, default=80)
    g.add_argument("--min-sources", type=int, default=1,
                   help="keep n-grams seen in at least this many distinct `source` values (templates)")
    g.add_argument("--rank", choices=["docs", "sources"], default="docs")
    g.add_argument("--exclude", action="append", help="phrase file(s): skip positives these already match")
    n = sub.add_parser("norm")
    n.add_argument("text")
    args = ap.parse_args()
    if args.cmd == "eval":
        cmd_eval(args)
    elif args.cmd == "missed":
        cmd_missed(args)
    elif args.cmd == "ngrams":
        cmd_ngrams(args)
    elif args.cmd == "norm":
        print(normalize(args.text))


if __name__ == "__main__":
    main()
