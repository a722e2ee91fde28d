"""Log lines: the standard format, each second's stamp made once, one loop turn's lines in one write."""

from __future__ import annotations

import asyncio
import io
import logging

from imagegate.log_output import LoopBatchedStreamHandler, SecondCachingFormatter

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def make_logger(name: str) -> tuple[logging.Logger, CountingStream]:
    stream = CountingStream()
    handler = LoopBatchedStreamHandler(stream)
    handler.setFormatter(SecondCachingFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"imagegate.tests.{name}")
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, stream


def test_the_time_stamp_is_the_standard_formatters() -> None:
    standard, cached = logging.Formatter(FORMAT), SecondCachingFormatter(FORMAT)
    for created in (1_795_227_534.0, 1_795_227_534.999, 1_795_227_535.0004, 1_795_227_534.5):
        record = logging.LogRecord("imagegate.access", logging.INFO, __file__, 1, "一行", None, None)
        record.created, record.msecs = created, (created - int(created)) * 1000
        assert cached.format(record) == standard.format(record)


def test_lines_of_one_loop_turn_are_written_together_after_it() -> None:
    logger, stream = make_logger("turn")

    async def turn() -> str:
        for number in range(5):
            logger.info("line %d", number)
        before = stream.getvalue()
        await asyncio.sleep(0)  # the turn ends; the handler's flush runs
        return before

    assert asyncio.run(turn()) == ""
    assert stream.getvalue() == "".join(f"INFO line {number}\n" for number in range(5))
    assert stream.writes == 1


def test_a_warning_is_written_at_once_after_the_lines_before_it() -> None:
    logger, stream = make_logger("warning")

    async def turn() -> str:
        logger.info("first")
        logger.warning("second")
        return stream.getvalue()

    assert asyncio.run(turn()) == "INFO first\nWARNING second\n"


def test_outside_a_loop_each_line_is_written_at_once() -> None:
    logger, stream = make_logger("plain")
    logger.info("alone")
    assert stream.getvalue() == "INFO alone\n"


def test_lines_left_by_a_loop_that_ended_go_out_with_the_next_loops_or_at_flush() -> None:
    logger, stream = make_logger("ended")
    loop = asyncio.new_event_loop()

    def log_then_stop() -> None:
        logger.info("from a loop that ends")
        loop.stop()  # the loop ends with this turn: the flush the line scheduled never runs

    try:
        loop.call_soon(log_then_stop)
        loop.run_forever()
    finally:
        loop.close()
    assert stream.getvalue() == ""

    async def next_loop() -> None:
        logger.info("from the next loop")
        await asyncio.sleep(0)

    asyncio.run(next_loop())
    assert stream.getvalue() == "INFO from a loop that ends\nINFO from the next loop\n"

    asyncio.run(_log(logger, "at shutdown"))
    logger.handlers[0].flush()  # what logging.shutdown does at exit
    assert stream.getvalue().endswith("INFO at shutdown\n")


async def _log(logger: logging.Logger, message: str) -> None:
    logger.info(message)
