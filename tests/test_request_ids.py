"""Request ids: ``req_`` with the time first, so they sort by start and the log's key grows at its end."""

from __future__ import annotations

import re
import time

from imagegate.domain import new_request_id


def test_an_id_is_the_millisecond_then_64_random_bits() -> None:
    before = time.time_ns() // 1_000_000
    request_id = new_request_id()
    after = time.time_ns() // 1_000_000
    assert re.fullmatch(r"req_[0-9a-f]{28}", request_id), request_id
    assert before <= int(request_id[4:16], 16) <= after


def test_ids_sort_by_when_they_were_made_and_never_repeat() -> None:
    made = []
    for _ in range(3):
        made += [new_request_id() for _ in range(5000)]
        time.sleep(0.002)
    assert len(set(made)) == len(made)
    # Within one millisecond the order is random; across milliseconds it is the order made.
    assert [request_id[:16] for request_id in made] == sorted(request_id[:16] for request_id in made)
