"""The runner yields the CPU to submits: while submits are being answered in a saturated process
it starts one task at a time, and all of its slots again once the process is calm or no submit
is waiting (``TaskRunner._slots``). The process's clocks are stood in for, so that the test does
not depend on what else the machine runs."""

from __future__ import annotations

import time

from imagegate.services.tasks_runner import CpuUse, TaskRunner
from imagegate.settings import load_settings


class Clocks:
    """Wall and CPU time that move only when told to."""

    def __init__(self) -> None:
        self.now = self.used = 0.0

    def run(self, seconds: float, *, busy: float) -> None:
        self.now += seconds
        self.used += seconds * busy


def runner(clocks: Clocks) -> TaskRunner:
    tasks = TaskRunner(None, None, None, None, load_settings(task_concurrency=8), None)  # type: ignore[arg-type]
    tasks._cpu_use = CpuUse(0.1, wall=lambda: clocks.now, cpu=lambda: clocks.used)
    return tasks


def test_cpu_use_is_cpu_time_over_wall_time_per_window() -> None:
    clocks = Clocks()
    use = CpuUse(0.1, wall=lambda: clocks.now, cpu=lambda: clocks.used)
    clocks.run(0.2, busy=0.9)
    assert use.share() == 0.9
    clocks.run(0.06, busy=0.1)
    assert use.share() == 0.9  # the window has not ended: the last share stands
    clocks.run(0.06, busy=0.1)
    assert round(use.share(), 6) == 0.1


def test_cpu_use_reads_the_real_clocks() -> None:
    use = CpuUse(0.05)
    time.sleep(0.1)
    assert 0 <= use.share() < 0.5  # asleep: (almost) no CPU


def test_the_runner_yields_only_while_submits_wait_in_a_busy_process() -> None:
    clocks = Clocks()
    tasks = runner(clocks)
    clocks.run(0.2, busy=1.0)
    assert tasks._slots() == 8  # busy, but no submit is waiting: every slot
    with tasks.answering_submit(), tasks.answering_submit():
        clocks.run(0.2, busy=0.95)
        assert tasks._slots() == 1  # submits wait for the CPU: one task at a time
        clocks.run(0.2, busy=0.6)
        assert tasks._slots() == 1  # still busy enough: no flip at every look
        clocks.run(0.2, busy=0.2)
        assert tasks._slots() == 8  # calm again
        clocks.run(0.2, busy=0.9)
        assert tasks._slots() == 1
    assert tasks.submitting == 0
    assert tasks._slots() == 8


def test_waiting_submits_in_a_calm_process_hold_nothing_back() -> None:
    # Tasks that wait on their upstream leave the process idle: submits never slow them.
    clocks = Clocks()
    tasks = runner(clocks)
    with tasks.answering_submit():
        clocks.run(0.2, busy=0.1)
        assert tasks._slots() == 8
