"""JSON with multi-megabyte base64 strings, without running those strings through a JSON codec.

An image response is a few hundred bytes of structure around megabytes of base64. Parsing and
re-serialising those megabytes costs more CPU than everything else a request does, and they
never need it: base64 has no characters JSON escapes. So the long ``b64_json`` values are cut
out by a byte search, the small remainder is parsed, and on the way out they are spliced back.

    body = loads(raw)              # like orjson.loads; long b64_json values come back as str
    body = loads(raw, views=True)  # ... or as memoryviews of ``raw``: no copy at all
    raw = dumps(body)              # like orjson.dumps; bytes and views are spliced, not encoded

``dumps`` splices ``bytes`` / ``memoryview`` values verbatim: they must be JSON-safe text
(base64), which is all this gateway ever puts there. A body without them goes through orjson
whole (long strings then among the rest); with them, long strings are spliced too.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

_KEY = b'"b64_json"'
_WHITESPACE = b" \t\r\n"
#: Strings shorter than this go through orjson as usual: splicing pays only for large ones.
LARGE = 64 * 1024
#: Placeholder markers only have to be unguessable by whoever wrote the body's other strings,
#: who never sees them; this generator is seeded from the OS once and costs no system call.
_markers = random.Random()


def _new_marker() -> str:
    return f"\x00{_markers.getrandbits(32):08x}"


def loads(raw: bytes, *, views: bool = False) -> Any:
    """Parse JSON; raises ``orjson.JSONDecodeError`` like ``orjson.loads``.

    With ``views``, long ``b64_json`` values are read-only memoryviews into ``raw`` (which
    they keep alive) instead of str copies.
    """
    if len(raw) < LARGE:
        return orjson.loads(raw)  # no value in it can be large
    skeleton_parts: list[bytes] = []
    values: list[str | memoryview] = []
    view = memoryview(raw)
    marker = _new_marker()
    copied = 0  # raw[:copied] is already in skeleton_parts
    search = 0
    while (found := raw.find(_KEY, search)) >= 0:
        start = _value_start(raw, found + len(_KEY))
        if start < 0:
            search = found + len(_KEY)
            continue
        end = raw.find(b'"', start)
        if end < 0:
            break
        search = end + 1
        if end - start < LARGE or raw.find(b"\\", start, end) >= 0:
            continue
        value: str | memoryview = view[start:end]
        if not views:
            try:
                # Decoding straight from a view copies the megabytes once, into the str.
                value = str(view[start:end], "ascii")
            except UnicodeDecodeError:
                continue
        skeleton_parts.append(raw[copied:start])
        skeleton_parts.append(orjson.dumps(f"{marker}{len(values)}")[1:-1])
        values.append(value)
        copied = end
    if not values:
        return orjson.loads(raw)
    skeleton_parts.append(raw[copied:])
    body = orjson.loads(b"".join(skeleton_parts))
    restored = _restore(body, marker, values)
    if restored != len(values):
        # A marker landed somewhere unexpected; the slow path is always right.
        return orjson.loads(raw)
    return body


def dumps(body: Any, *, prefix: bytes = b"", suffix: bytes = b"") -> bytes:
    """Serialise like ``orjson.dumps``, splicing in large strings instead of encoding them.

    ``prefix`` and ``suffix`` are joined in the same single copy (e.g. an SSE frame's lines).
    """
    parts = dump_parts(body, prefix=prefix, suffix=suffix)
    return parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else b"".join(parts)


def dump_parts(body: Any, *, prefix: bytes = b"", suffix: bytes = b"") -> list[bytes | memoryview]:
    """Like :func:`dumps`, but the pieces unjoined: large values are sent without any copy."""
    try:
        encoded = orjson.dumps(body)
    except orjson.JSONEncodeError:
        pass  # bytes or views of base64 in it (orjson takes neither): spliced below
    else:
        # Without them one orjson pass is cheapest: 20 times cheaper than the walk below for a
        # small answer. A large base64 str (an image this gateway re-encoded) costs ~1 ms more
        # per 5 MB than splicing, beside a conversion that cost a hundred times that.
        return [prefix + encoded + suffix] if len(encoded) < LARGE else [prefix, encoded, suffix]
    large: list[str | bytes | memoryview] = []
    marker = _new_marker()
    skeleton = _extract(body, marker, large)
    out = orjson.dumps(skeleton)  # with nothing extracted, orjson refuses it again, as it should
    parts: list[bytes | memoryview] = [prefix]
    pos = 0
    for index, value in enumerate(large):
        token = orjson.dumps(f"{marker}{index}")
        at = out.index(token, pos)
        parts.append(out[pos : at + 1])
        parts.append(value.encode("ascii") if isinstance(value, str) else value)
        pos = at + len(token) - 1
    parts.append(out[pos:] + suffix)
    return parts


def _value_start(raw: bytes, pos: int) -> int:
    """Index just past the opening quote of the value after a key, or -1 if it is no string."""
    length = len(raw)
    while pos < length and raw[pos] in _WHITESPACE:
        pos += 1
    if pos >= length or raw[pos] != ord(":"):
        return -1
    pos += 1
    while pos < length and raw[pos] in _WHITESPACE:
        pos += 1
    if pos >= length or raw[pos] != ord('"'):
        return -1
    return pos + 1


def _restore(node: Any, marker: str, values: list[str | memoryview]) -> int:
    count = 0
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        if isinstance(value, str) and value.startswith(marker):
            node[key] = values[int(value[len(marker) :])]
            count += 1
        elif isinstance(value, dict | list):
            count += _restore(value, marker, values)
    return count


def _extract(node: Any, marker: str, large: list[str | bytes | memoryview]) -> Any:
    if isinstance(node, dict):
        return {key: _extract(value, marker, large) for key, value in node.items()}
    if isinstance(node, list):
        return [_extract(value, marker, large) for value in node]
    if isinstance(node, bytes | memoryview) or (
        isinstance(node, str)
        and len(node) >= LARGE
        and node.isascii()
        and '"' not in node
        and "\\" not in node
    ):
        large.append(node)
        return f"{marker}{len(large) - 1}"
    return node
