"""Give large freed blocks back to the OS at once, so peak RSS follows the images in flight.

Every image request allocates a few blocks of megabytes (the upstream's answer, the decoded
image) and frees them moments later, from the event loop and from worker threads. glibc's
malloc serves blocks above its mmap threshold with their own mappings, returned on free, but it
raises that threshold to the size of each such block freed (up to 32 MB): after the first few
images, multi-megabyte blocks come from the heap and per-thread arenas instead, where freed
space stays mapped. The url-mode benchmark (bench/storage.py, 20 concurrent 4 MB images) then
peaked ~60 MB above what was live. A fixed threshold keeps every block of 256 KiB or more in
its own mapping; the page faults of fresh mappings cost far less than the images' own work.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

logger = logging.getLogger("imagegate.server")

#: glibc's mallopt parameter number for M_MMAP_THRESHOLD (malloc.h).
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 256 * 1024


def return_large_blocks() -> bool:
    """Fix glibc's mmap threshold for this process; False where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl (Alpine) has no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) != 1:
        logger.info("mallopt(M_MMAP_THRESHOLD) was refused; large blocks stay in malloc's heap")
        return False
    return True
