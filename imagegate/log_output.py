"""Where the gateway's log lines go: standard error, in the standard format, cheaply.

Every API request logs one access line, so the per-line cost of the logging module is a cost of
every request. Two parts of it are repeated work, and are done once here:

- the time stamp: ``time.strftime`` of the same second, for every line of that second;
- the write: a ``write`` system call per line. Lines logged while the event loop runs its
  callbacks are written together when those callbacks are done (one ``call_soon``), which under
  load is many lines to a call. A line at WARNING or above, and any line logged outside the
  loop's thread, is written at once, after whatever was waiting, so the order never changes.

    handler = LoopBatchedStreamHandler()                      # sys.stderr
    handler.setFormatter(SecondCachingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TextIO


class SecondCachingFormatter(logging.Formatter):
    """``logging.Formatter`` whose default time stamp formats each second once."""

    def __init__(self, fmt: str | None = None) -> None:
        super().__init__(fmt)
        # One tuple, replaced whole: a thread never reads one second's text with another's number.
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached, text = self._second
        if cached != second:
            text = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = (second, text)
        return f"{text},{int(record.msecs):03d}"


class LoopBatchedStreamHandler(logging.StreamHandler[TextIO]):
    """``logging.StreamHandler`` that writes the lines of one event-loop turn in one call."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        #: The loop a flush of the pending lines is scheduled on (a loop that ended without
        #: running it leaves them to the next line's loop, or to logging's shutdown).
        self._flush_on: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        # Called with the handler's lock held (logging.Handler.handle).
        try:
            self._pending.append(self.format(record) + self.terminator)
            loop = _running_loop()
            if loop is None or record.levelno >= logging.WARNING:
                self._write_pending()
            elif self._flush_on is not loop:
                loop.call_soon(self.flush)
                self._flush_on = loop
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Write what is waiting (the loop's callback; logging's shutdown)."""
        with self.lock:  # type: ignore[union-attr]  # created in Handler.__init__
            self._write_pending()

    def _write_pending(self) -> None:
        self._flush_on = None
        if self._pending:
            text = "".join(self._pending)
            self._pending.clear()
            self.stream.write(text)
        super().flush()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
