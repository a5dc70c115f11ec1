"""Starting container processes without forking the agent (kybern/node/runtimes/spawn.py):
what a process sees must not depend on which path started it."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import sys
from pathlib import Path

import pytest

from kybern.node.runtimes import spawn as sp

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux process runtime")


async def _run(argv: list[str], exe: str, cwd: str, env: dict[str, str]) -> tuple[object, str]:
    r, w = os.pipe()
    dn = os.open(os.devnull, os.O_RDONLY)
    try:
        proc = await sp.spawn(argv, exe, cwd=cwd, env=env, stdio=[dn, w, w], netns="", tty=False,
                              preexec=lambda: None)
    finally:
        os.close(w)
        os.close(dn)
    out = await sp.read_to_eof(r)
    await proc.wait()  # type: ignore[attr-defined]
    return proc, out.decode()


@pytest.mark.skipif(not sp._FAST, reason="no setpriv or pidfds here")
async def test_fast_path_keeps_argv0_cwd_and_exit_code(tmp_path: Path) -> None:
    script = tmp_path / "show"
    script.write_text('#!/bin/sh\necho "$0|$1|$(pwd)"; exit 7\n')
    script.chmod(0o755)
    proc, out = await _run(["./show", "arg"], str(script), str(tmp_path), {"PATH": "/usr/bin:/bin"})
    assert isinstance(proc, sp.Child)
    assert proc.returncode == 7
    assert out.strip() == f"./show|arg|{tmp_path}"


@pytest.mark.skipif(not sp._FAST, reason="no setpriv or pidfds here")
async def test_fast_path_environment_is_exactly_the_given_one(tmp_path: Path) -> None:
    exe = "/usr/bin/env" if os.path.exists("/usr/bin/env") else "/bin/env"
    env = {"PATH": os.path.dirname(exe), "A.B": "odd name kept", "X": "1"}
    proc, out = await _run(["env"], exe, str(tmp_path), env)
    assert isinstance(proc, sp.Child)
    assert sorted(out.splitlines()) == sorted(f"{k}={v}" for k, v in env.items())


@pytest.mark.skipif(not sp._FAST, reason="no setpriv or pidfds here")
async def test_argv0_of_a_path_lookup_is_the_word_given(tmp_path: Path) -> None:
    r, w = os.pipe()
    dn = os.open(os.devnull, os.O_RDONLY)
    exe = "/usr/bin/sleep" if os.path.exists("/usr/bin/sleep") else "/bin/sleep"
    env = {"PATH": os.path.dirname(exe)}
    proc = await sp.spawn(["sleep", "30"], exe, cwd=str(tmp_path), env=env, stdio=[dn, w, w], netns="",
                          tty=False, preexec=lambda: None)
    os.close(w)
    os.close(dn)
    os.close(r)
    try:
        for _ in range(100):  # setpriv execs the program a moment later
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
            if cmdline[0] == b"sleep":
                break
            await asyncio.sleep(0.01)
        assert cmdline[:2] == [b"sleep", b"30"]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
    assert await proc.wait() == -signal.SIGKILL


async def test_an_executable_of_the_image_copy_keeps_its_argv0(tmp_path: Path) -> None:
    # execvp would not find it on PATH, so the fork path runs it: same result for the program
    rootfs_bin = tmp_path / "rootfs" / "bin"
    rootfs_bin.mkdir(parents=True)
    tool = rootfs_bin / "tool"
    tool.write_text('#!/bin/sh\necho "$0"\n')
    tool.chmod(0o755)
    proc, out = await _run(["tool"], str(tool), str(tmp_path), {"PATH": "/bin"})
    assert not isinstance(proc, sp.Child)
    assert out.strip() == str(tool)  # a script's $0 is the path the kernel ran, on either path


@pytest.mark.skipif(not sp._FAST, reason="no setpriv or pidfds here")
@pytest.mark.parametrize("name, content, code", [
    ("notes", "just text\n", errno.ENOEXEC),  # neither ELF nor a script
    ("noint", "#!/no/such/interpreter\n", errno.ENOENT),  # a script whose interpreter is missing
])
async def test_a_file_that_cannot_be_executed_fails_like_execve(tmp_path: Path, name: str, content: str,
                                                                code: int) -> None:
    f = tmp_path / name
    f.write_text(content)
    f.chmod(0o755)
    with pytest.raises(OSError) as e:
        await _run([f"./{name}"], str(f), str(tmp_path), {"PATH": "/bin"})
    assert e.value.errno == code
