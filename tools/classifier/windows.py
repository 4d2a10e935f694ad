"""Sentence windows, shared with Warden's Rust side (standard library only).

A long text is scored per window and the score of each label is the maximum over its windows.
The Rust implementation must give the same windows for the same text.
"""

WINDOW_BYTES = 512  # UTF-8 bytes of the original (un-preprocessed) text
_ENDS = frozenset(".!?\n\u3002\uff01\uff1f")


def _blen(s: str) -> int:
    return len(s.encode("utf-8"))


def sentences(text: str):
    """Split AFTER each of . ! ? \\n 。 ！ ？; a whitespace-only sentence is appended to the
    previous one; a sentence longer than WINDOW_BYTES is cut into pieces of at most WINDOW_BYTES
    bytes at character boundaries."""
    raw, cur = [], []
    for c in text:
        cur.append(c)
        if c in _ENDS:
            raw.append("".join(cur))
            cur = []
    if cur:
        raw.append("".join(cur))
    merged = []
    for s in raw:
        if merged and s.strip() == "":
            merged[-1] += s
        else:
            merged.append(s)
    out = []
    for s in merged:
        if _blen(s) <= WINDOW_BYTES:
            out.append(s)
            continue
        piece, size = [], 0
        for c in s:
            b = _blen(c)
            if size + b > WINDOW_BYTES:
                out.append("".join(piece))
                piece, size = [], 0
            piece.append(c)
            size += b
        if piece:
            out.append("".join(piece))
    return out


def windows(text: str):
    if _blen(text) <= WINDOW_BYTES:
        return [text]
    sents = sentences(text)
    sizes = [_blen(s) for s in sents]
    out = []
    i, n = 0, len(sents)
    while i < n:
        j = i + 1
        size = sizes[i]
        while j < n and size + sizes[j] <= WINDOW_BYTES:
            size += sizes[j]
            j += 1
        out.append("".join(sents[i:j]))
        if j >= n:
            break
        i = j - 1 if j - 1 > i else j  # consecutive windows share one sentence
    return out
