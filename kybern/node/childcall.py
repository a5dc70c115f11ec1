"""Running one step of the agent's start in a short-lived child process
(`python -m <module>`, JSON in on stdin, JSON out on stdout): the certificate
bootstrap and the CA discovery need the x509 library, which would otherwise stay
in the long-running agent's memory. The child dies with the agent (a stop during
the step must not leave it polling the apiserver) and is killed if the step is
cancelled."""

from __future__ import annotations

import asyncio
import ctypes
import json
import signal
import sys
from typing import Any

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ChildFailed(RuntimeError):
    """The child gave no answer (it crashed): its stderr's end."""


async def call(module: str, args: dict[str, Any]) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, preexec_fn=_die_with_parent)
    try:
        out, err = await proc.communicate(json.dumps(args).encode())
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    try:
        answer = json.loads(out)
    except ValueError:
        raise ChildFailed(err.decode(errors="replace").strip()[-2000:]) from None
    return answer if isinstance(answer, dict) else {}
