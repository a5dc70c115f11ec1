"""Signalling a container's process tree (the process runtime's stand-in for a
PID namespace): its process group, and descendants that left the group."""

from __future__ import annotations

import os

import psutil


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


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
