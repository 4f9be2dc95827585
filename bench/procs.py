"""What the benchmarks read of running processes: CPU time and peak memory, from /proc."""

from __future__ import annotations

import os
from pathlib import Path


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a server's worker processes, if any)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            found += process_tree(int(child))
    return found


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds used so far by ``pid`` and its descendants."""
    ticks = 0
    for member in process_tree(pid):
        # Fields after the command name: state is field 3, utime 14 and stime 15.
        fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """Peak RSS of a server: summed over its processes when it runs several workers."""
    total = 0.0
    for member in process_tree(pid):
        for line in Path(f"/proc/{member}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) / 1024
    return total


def reset_peak(pid: int) -> None:
    """Reset VmHWM so the next peak measured belongs to the next phase (Linux ≥ 4.0)."""
    for member in process_tree(pid):
        Path(f"/proc/{member}/clear_refs").write_text("5")
