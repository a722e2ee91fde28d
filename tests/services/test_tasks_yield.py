"""The runner yields the CPU to submits: while submits are being answered in a saturated process
(or a busy one on a saturated machine) it starts one task at a time, and all of its slots again
once it is calm or no submit is waiting (``TaskRunner._slots``). The process's clocks and the
machine's counters are stood in for, so that the test does not depend on what else runs."""

from __future__ import annotations

import time

from imagegate.services.cpu_use import CpuUse, MachineCpu, read_proc_stat
from imagegate.services.tasks_runner import TaskRunner
from imagegate.settings import load_settings


class Clocks:
    """Wall and CPU time that move only when told to."""

    def __init__(self) -> None:
        self.now = self.used = 0.0
        #: The machine's /proc/stat counters (two cores): user, nice, system, idle.
        self.machine = [0, 0, 0, 0]

    def run(self, seconds: float, *, busy: float, machine: float | None = None) -> None:
        """Pass ``seconds``: this process busy ``busy`` of a core, the machine's two cores
        ``machine`` busy (default: as busy as this process alone makes them)."""
        self.now += seconds
        self.used += seconds * busy
        ticks = round(seconds * 100 * 2)  # 100 ticks a second, per core
        machine = busy / 2 if machine is None else machine
        self.machine[0] += round(ticks * machine)
        self.machine[3] += ticks - round(ticks * machine)


def runner(clocks: Clocks) -> TaskRunner:
    tasks = TaskRunner(None, None, None, None, load_settings(task_concurrency=8), None)  # type: ignore[arg-type]
    tasks._cpu_use = CpuUse(0.1, wall=lambda: clocks.now, cpu=lambda: clocks.used)
    tasks._machine_cpu = MachineCpu(0.1, wall=lambda: clocks.now, read=lambda: list(clocks.machine))
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


def test_the_machines_share_is_its_busy_ticks_over_all_ticks() -> None:
    clocks = Clocks()
    machine = MachineCpu(0.1, wall=lambda: clocks.now, read=lambda: list(clocks.machine))
    clocks.run(0.2, busy=0.5, machine=0.95)
    assert round(machine.share(), 6) == 0.95
    clocks.run(0.2, busy=0.5, machine=0.3)
    assert round(machine.share(), 6) == 0.3


def test_the_machines_share_reads_the_real_counters() -> None:
    counters = read_proc_stat()
    assert counters is not None and len(counters) >= 4  # Linux, where the suite runs
    machine = MachineCpu(0.05)
    time.sleep(0.1)
    assert 0.0 <= machine.share() <= 1.0


def test_a_busy_process_on_a_saturated_machine_yields_too() -> None:
    # Two gateway processes and their database on a full machine: each gets ~0.75 of a core,
    # and submits wait for cores the others hold.
    clocks = Clocks()
    tasks = runner(clocks)
    with tasks.answering_submit():
        clocks.run(0.2, busy=0.75, machine=0.5)
        assert tasks._slots() == 8  # the machine has cores to spare
        clocks.run(0.2, busy=0.75, machine=0.97)
        assert tasks._slots() == 1
        clocks.run(0.2, busy=0.75, machine=0.6)
        assert tasks._slots() == 1  # yielding until this process is calm
        clocks.run(0.2, busy=0.3, machine=0.6)
        assert tasks._slots() == 8
        clocks.run(0.2, busy=0.3, machine=0.99)
        assert tasks._slots() == 8  # nearly idle here: others' load holds nothing back
