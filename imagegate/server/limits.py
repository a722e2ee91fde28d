"""The bounds a client meets at the edge, from the settings, and the open-file limit behind them."""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass

from imagegate.settings import Settings

logger = logging.getLogger("imagegate.server")

#: Descriptors kept for everything that is not a client socket: the database, Redis, log and
#: image files, the listening socket.
_RESERVED_FDS = 256


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    header_timeout_s: float
    body_timeout_s: float
    max_connections: int
    shutdown_grace_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> EdgeLimits:
        return cls(
            header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s,
            max_connections=fitting_connection_cap(settings.max_connections),
            shutdown_grace_s=settings.shutdown_grace_s,
        )


def raise_open_file_limit() -> int:
    """Raise the soft limit on open files to the hard one; return the soft limit now in force.

    The usual soft limit (1024) would make the 2,000th idle socket fail with EMFILE, after which
    the server cannot accept anything, health probes included.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft
    return hard


def fitting_connection_cap(wanted: int) -> int:
    """The connection cap, lowered where the open-file limit could not hold it.

    Each client connection may hold an upstream connection too, hence two descriptors each.
    """
    nofile = raise_open_file_limit()
    fitting = max(1, (nofile - _RESERVED_FDS) // 2)
    if wanted > fitting:
        logger.warning(
            "open-file limit is %d: connections capped at %d instead of %d (raise `ulimit -n`)",
            nofile,
            fitting,
            wanted,
        )
        return fitting
    return wanted
