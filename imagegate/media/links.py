"""Finding image links in text: Markdown images first, else bare http(s) URLs."""

from __future__ import annotations

import re

_MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\((?P<url>[^)\s]+)\)")
_BARE_URL = re.compile(r"https?://[^\s)\"'<>\]]+")


def image_links(text: str) -> list[str]:
    """The URLs of ``![…](url)`` images in ``text``; without any, its bare URLs.

    Chat replies (an upstream's, or this gateway's own earlier answers) carry images either way.
    """
    urls = [match["url"] for match in _MARKDOWN_IMAGE.finditer(text)] or _BARE_URL.findall(text)
    # A bare link at the end of a sentence keeps no trailing punctuation.
    return [url.rstrip(".,;") for url in urls]
