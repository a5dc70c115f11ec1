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
from collections.abc import Awaitable, Callable
from typing import Any

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ChildFailed(RuntimeError):
    """The child gave no answer (it crashed): its stderr's end."""


async def call(module: str, args: dict[str, Any], refused: type[Exception]) -> dict[str, Any]:
    """The child's answer; `refused(message)` raised when the step refused (serve's "error")."""
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
    if not isinstance(answer, dict):
        raise ChildFailed(f"not an answer: {answer!r}")
    if "error" in answer:
        raise refused(answer["error"])
    return answer


def serve(step: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]], *refusals: type[Exception]) -> None:
    """The child's side: `step` of the JSON read from stdin, its answer (or the message of
    one of `refusals` as "error") printed as JSON."""
    args = json.loads(sys.stdin.read())
    try:
        answer = asyncio.run(step(args))
    except refusals as e:
        answer = {"error": str(e)}
    print(json.dumps(answer))
