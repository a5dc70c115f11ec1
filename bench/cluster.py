"""Starting a fresh `kybern up` for a benchmark and talking to it: shared by the
bench scripts so each one measures, not sets up."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kybern.client.http import Client  # noqa: E402


def client_for(kubeconfig: Path, ca: Path, connections: int | None = None) -> Client:
    cfg = yaml.safe_load(kubeconfig.read_text())
    server = cfg["clusters"][0]["cluster"]["server"]
    token = cfg["users"][0]["user"]["token"]
    if connections is None:
        return Client(server, token=token, ca_file=str(ca))
    return Client(server, token=token, ca_file=str(ca), connections=connections)


def start_up(base: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], Client]:
    """`kybern up` in `base` on a free port; returns once it printed its API URL."""
    proc = subprocess.Popen([sys.executable, "-m", "kybern.cli.main", "up", "--data-dir", str(base / "data"),
                             "--port", "0", "--kubeconfig", str(base / "kubeconfig"), "--node-name", "bench"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout
    for line in proc.stdout:
        if re.search(r"API at https://", line):
            break
    return proc, client_for(base / "kubeconfig", base / "data" / "pki" / "ca.crt")


def cpu_seconds(p: psutil.Process) -> float:
    """User + system CPU of a process and its children (apiserver workers)."""
    total = 0.0
    for q in (p, *p.children(recursive=True)):
        try:
            t = q.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total
