"""Large freed blocks go back to the OS (`imagegate.server.memory`), so RSS follows live images.

Each check runs in a fresh interpreter: the setting is process-wide and one-way. Linux with glibc,
like every machine the gateway is built and tested for (it reads /proc).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

MIB = 1024 * 1024

# Twenty 4 MiB blocks, as twenty images in flight; then every other one is freed, as requests
# end in any order. Prints the RSS held above the start, in MiB, with ten blocks still live.
_SCRIPT = textwrap.dedent(
    """
    import sys
    from imagegate.server.memory import return_large_blocks

    def rss_mib():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024

    if sys.argv[1] == "fixed":
        assert return_large_blocks()
    warm = bytearray(8 << 20)  # freeing one big mapped block raises glibc's dynamic threshold
    del warm
    start = rss_mib()
    blocks = [bytearray(b"x" * (4 << 20)) for _ in range(20)]
    del blocks[::2]
    print(rss_mib() - start)
    """
)


def held_mib(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True, check=True)
    return float(out.stdout)


def test_freed_image_sized_blocks_are_returned_at_once() -> None:
    live = 10 * 4
    assert held_mib("fixed") < live + 8
    # What the setting is for: by default the freed half stays mapped in malloc's heap.
    assert held_mib("default") > live + 30
