"""CPU time of a process tree (Linux ``/proc``), to report CPU per request next to requests per second.

On a shared machine req/s moves with everyone else's load; CPU seconds a server spends per request
move much less, and say whether a server or the load generator was the limit. Clock-tick resolution
(``SC_CLK_TCK``, usually 10 ms) is plenty over a multi-second run.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def stat_cpu_ticks(stat: str) -> int:
    """utime + stime (fields 14 and 15) of a ``/proc/<pid>/stat`` line, all threads included."""
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces and ')'
    return int(fields[11]) + int(fields[12])  # fields[0] is field 3 (state)


def _children(pid: int) -> list[int]:
    pids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            pids += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return pids


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants; 0 if it is gone."""
    total, todo, seen = 0, [pid], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            total += stat_cpu_ticks(Path(f"/proc/{current}/stat").read_text())
        except (OSError, ValueError, IndexError):
            continue
        todo += _children(current)
    return total / CLOCK_TICKS


def waited_children_cpu_s() -> float:
    """CPU seconds of every child this process has waited for (the diff around a run is wrk's)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
