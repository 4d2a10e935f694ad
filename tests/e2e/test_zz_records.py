"""15. Every request the suite sent through a warden client was recorded exactly once.

Named `test_zz_*` so that it runs last (pytest runs files in name order): by then every other
test has sent its requests. Run alone, it checks the requests of its own warm-up.
"""

from __future__ import annotations

import time
from collections import Counter

from helpers import LIVE, RECORD_TIMEOUT_S, Warden, assert_serves_normally


def test_every_request_has_exactly_one_record(warden):
    assert_serves_normally(warden)
    wardens = [p for p in LIVE if isinstance(p, Warden)]
    seen = {w.name: list(w.request_ids) for w in wardens}
    assert sum(len(v) for v in seen.values()) > 0
    deadline = time.monotonic() + RECORD_TIMEOUT_S
    while True:
        problems = []
        for w in wardens:
            counts = Counter(r["request_id"] for r in w.records())
            for rid in seen[w.name]:
                if counts[rid] != 1:
                    problems.append(f"{w.name}: {rid} has {counts[rid]} records")
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not problems, "\n".join(problems[:30])
