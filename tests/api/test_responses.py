"""Large bodies go out in bounded pieces and arrive byte-identical."""

from __future__ import annotations

import base64
import os

from imagegate.api.responses import PIECE, pieces


def test_pieces_are_bounded_and_lossless() -> None:
    big = base64.b64encode(os.urandom(3 * PIECE)).decode().encode()
    parts: list[bytes | memoryview] = [b'{"b64_json":"', memoryview(big), b'"}', b""]

    out = list(pieces(parts))

    assert all(isinstance(piece, bytes) and 0 < len(piece) <= PIECE for piece in out)
    assert b"".join(out) == b'{"b64_json":"' + big + b'"}'
