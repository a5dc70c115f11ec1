"""Signalling a container's process tree (the process runtime's stand-in for a
PID namespace): its process group, and descendants that left the group."""

from __future__ import annotations

import os

import psutil

from kybern.node.runtimes.spawnd import descendant_pids, start_ticks

# CONFIG_PROC_CHILDREN: every distribution kernel has it; without it, psutil's /proc scan
_HAVE_CHILDREN_FILES = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_boot_time: float | None = None


def start_time(pid: int) -> float:
    """The process's start time as psutil's Process.create_time() gives it (the
    same formula: start ticks from /proc/<pid>/stat over the clock rate, plus
    the boot time), for the identity checks of kill_tree; one file read instead
    of a psutil.Process per container start. 0.0 if the process is gone."""
    return from_ticks(start_ticks(pid))


def from_ticks(ticks: int) -> float:
    """A start time in clock ticks since boot (spawnd.start_ticks) as psutil's create_time()."""
    global _boot_time
    if not ticks:
        return 0.0
    if _boot_time is None:
        _boot_time = psutil.boot_time()
    return ticks / _CLOCK_TICKS + _boot_time


def descendants(pid: int) -> list[psutil.Process]:
    """The descendants as psutil processes, which check before a signal that the
    pid is still the process they were made for."""
    if not _HAVE_CHILDREN_FILES:
        try:
            return psutil.Process(pid).children(recursive=True)
        except psutil.Error:
            return []
    out = []
    for child in descendant_pids(pid):
        try:
            out.append(psutil.Process(child))
        except psutil.Error:
            continue
    return out


def kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_tree(pid: int, create_time: float, sig: int) -> None:
    """Kill a recorded process group, checking start times so a reused pid or
    process group id is never mistaken for ours."""
    victims: list[psutil.Process] = []
    for p in psutil.process_iter(["pid", "create_time"]):
        try:
            if (p.pid == pid or os.getpgid(p.pid) == pid) and (
                    not create_time or p.info["create_time"] >= create_time - 0.05):
                victims.append(p)
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    for p in list(victims):
        try:
            victims.extend(p.children(recursive=True))
        except psutil.Error:
            pass
    for p in victims:
        try:
            p.send_signal(sig)
        except psutil.Error:
            pass
