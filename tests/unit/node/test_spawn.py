"""Starting container processes without forking the agent (kybern/node/runtimes/spawn.py,
spawnd.py): what a process sees must not depend on which path started it — the agent's
event loop, the spawn worker process, or the fork path."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest

from kybern.node.runtimes import spawn as sp

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux process runtime")


@pytest.fixture(params=["agent", "worker"])
async def worker(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """None: the fast path on the event loop's thread; else a spawn worker."""
    if request.param == "agent":
        yield None
        return
    w = sp.SpawnWorker()
    w.start()
    yield w
    await w.close()


def _fast_class(worker: sp.SpawnWorker | None) -> type:
    return sp.RemoteChild if worker is not None else sp.Child


async def _run(argv: list[str], exe: str, cwd: str, env: dict[str, str],
               worker: sp.SpawnWorker | None = None) -> tuple[object, str]:
    r, w = os.pipe()
    dn = os.open(os.devnull, os.O_RDONLY)
    try:
        proc = await sp.spawn(argv, exe, cwd=cwd, env=env, stdio=[dn, w, w], namespaces={}, tty=False,
                              preexec=lambda: None, worker=worker)
    finally:
        os.close(w)
        os.close(dn)
    out = await sp.read_to_eof(r)
    await proc.wait()  # type: ignore[attr-defined]
    return proc, out.decode()


@pytest.mark.skipif(not sp._FAST, reason="no setpriv or pidfds here")
async def test_fast_path_keeps_argv0_cwd_and_exit_code(tmp_path: Path, worker: sp.SpawnWorker | None) -> None:
    script = tmp_path / "show"
    script.write_text('#!/bin/sh\necho "$0|$1|$(pwd)"; exit 7\n')
    script.chmod(0o755)
    proc, out = await _run(["./show", "arg"], str(script), str(tmp_path), {"PATH": "/usr/bin:/bin"}, worker)
    assert isinstance(proc, _fast_class(worker))
    assert proc.returncode == 7
    assert out.strip() == f"./show|arg|{tmp_path}"


@pytest.mark.skipif(not sp._FAST, reason="no setpriv or pidfds here")
async def test_fast_path_environment_is_exactly_the_given_one(tmp_path: Path,
                                                              worker: sp.SpawnWorker | None) -> None:
    exe = "/usr/bin/env" if os.path.exists("/usr/bin/env") else "/bin/env"
    env = {"PATH": os.path.dirname(exe), "A.B": "odd name kept", "X": "1", "UNICODE": "é ü ☃", "EMPTY": ""}
    proc, out = await _run(["env"], exe, str(tmp_path), env, worker)
    assert isinstance(proc, _fast_class(worker))
    assert sorted(out.splitlines()) == sorted(f"{k}={v}" for k, v in env.items())


@pytest.mark.skipif(not sp._FAST, reason="no setpriv or pidfds here")
async def test_argv0_of_a_path_lookup_is_the_word_given(tmp_path: Path, worker: sp.SpawnWorker | None) -> None:
    r, w = os.pipe()
    dn = os.open(os.devnull, os.O_RDONLY)
    exe = "/usr/bin/sleep" if os.path.exists("/usr/bin/sleep") else "/bin/sleep"
    env = {"PATH": os.path.dirname(exe)}
    proc = await sp.spawn(["sleep", "30"], exe, cwd=str(tmp_path), env=env, stdio=[dn, w, w], namespaces={},
                          tty=False, preexec=lambda: None, worker=worker)
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


async def test_an_executable_of_the_image_copy_keeps_its_argv0(tmp_path: Path, worker: sp.SpawnWorker | None) -> None:
    # execvp would not find it on PATH, so without a worker (whose children are exec'd
    # directly, not through setpriv's execvp) the fork path runs it: same result for the program
    rootfs_bin = tmp_path / "rootfs" / "bin"
    rootfs_bin.mkdir(parents=True)
    tool = rootfs_bin / "tool"
    tool.write_text('#!/bin/sh\necho "$0"\n')
    tool.chmod(0o755)
    proc, out = await _run(["tool"], str(tool), str(tmp_path), {"PATH": "/bin"}, worker)
    if worker is not None and sp._FAST:
        assert isinstance(proc, sp.RemoteChild)
    else:
        assert not isinstance(proc, sp.Child)
    assert out.strip() == str(tool)  # a script's $0 is the path the kernel ran, on either path


@pytest.mark.skipif(not sp._FAST, reason="no setpriv or pidfds here")
@pytest.mark.parametrize("name, content, code", [
    ("notes", "just text\n", errno.ENOEXEC),  # neither ELF nor a script
    ("noint", "#!/no/such/interpreter\n", errno.ENOENT),  # a script whose interpreter is missing
])
async def test_a_file_that_cannot_be_executed_fails_like_execve(tmp_path: Path, name: str, content: str,
                                                                code: int, worker: sp.SpawnWorker | None) -> None:
    f = tmp_path / name
    f.write_text(content)
    f.chmod(0o755)
    with pytest.raises(OSError) as e:
        await _run([f"./{name}"], str(f), str(tmp_path), {"PATH": "/bin"}, worker)
    assert e.value.errno == code


# -- the spawn worker (spawnd.py) ---------------------------------------------

SLEEP = "/usr/bin/sleep" if os.path.exists("/usr/bin/sleep") else "/bin/sleep"


async def _sleep(worker: sp.SpawnWorker, tmp_path: Path, seconds: str = "30", *,
                 env: dict[str, str] | None = None, cgroup_procs: list[str] | None = None) -> object:
    dn = os.open(os.devnull, os.O_RDWR)
    try:
        return await sp.spawn(["sleep", seconds], SLEEP, cwd=str(tmp_path), env=env or {"PATH": os.path.dirname(SLEEP)},
                              stdio=[dn, dn, dn], namespaces={}, tty=False, preexec=lambda: None, worker=worker,
                              cgroup_procs=cgroup_procs)
    finally:
        os.close(dn)


async def _gone(pid: int) -> bool:
    import psutil

    for _ in range(200):
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                await asyncio.sleep(0.02)
                continue
        except psutil.NoSuchProcess:
            return True
        await asyncio.sleep(0.02)
    return False


fast_only = pytest.mark.skipif(not sp._FAST, reason="no setpriv or pidfds here")


@pytest.fixture
async def live_worker():  # type: ignore[no-untyped-def]
    w = sp.SpawnWorker()
    w.start()
    yield w
    await w.close()


@fast_only
async def test_the_worker_is_the_parent_reads_psutils_start_time_and_reports_the_exit(tmp_path: Path, live_worker: sp.SpawnWorker) -> None:
    import psutil

    proc = await _sleep(live_worker, tmp_path)
    assert isinstance(proc, sp.RemoteChild)
    p = psutil.Process(proc.pid)
    assert p.ppid() == live_worker.pid
    assert proc.start_time == pytest.approx(p.create_time(), abs=1e-6)  # kill_tree's identity check
    status = dict(line.split(":\t", 1) for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                  if ":\t" in line)
    assert int(status["SigBlk"], 16) == 0 and int(status["SigIgn"], 16) == 0  # signals as a fresh process
    os.kill(proc.pid, signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 5) == -signal.SIGTERM
    assert proc.returncode == -signal.SIGTERM


@fast_only
async def test_a_killed_worker_takes_its_processes_along_and_the_next_spawn_starts_another(tmp_path: Path, live_worker: sp.SpawnWorker) -> None:
    proc = await _sleep(live_worker, tmp_path)
    old = live_worker.pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    assert await asyncio.wait_for(proc.wait(), 5) == -signal.SIGKILL  # reported as killed...
    assert await _gone(proc.pid)  # ...and it is: PDEATHSIG
    again = await _sleep(live_worker, tmp_path)
    assert isinstance(again, sp.RemoteChild) and live_worker.pid not in (None, old)
    os.kill(again.pid, signal.SIGKILL)
    assert await asyncio.wait_for(again.wait(), 5) == -signal.SIGKILL


@fast_only
async def test_closing_the_worker_lets_it_exit_and_kills_what_is_left(tmp_path: Path) -> None:
    w = sp.SpawnWorker()
    w.start()
    proc = await _sleep(w, tmp_path)
    pid = w.pid
    await w.close()
    assert pid is not None and await _gone(pid)
    assert await _gone(proc.pid)


@fast_only
async def test_a_cancelled_spawn_does_not_leave_its_process_running(tmp_path: Path, live_worker: sp.SpawnWorker) -> None:
    import psutil

    marker = f"{os.getpid() % 1000 + 3000}.{id(live_worker) % 997}"
    task = asyncio.create_task(_sleep(live_worker, tmp_path, marker))
    await asyncio.sleep(0)  # the request is sent
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.3)  # the answer arrives; the process is killed
    left = [p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [])[-1:] == [marker]]
    for p in left:
        assert await _gone(p.pid)


@fast_only
async def test_a_request_too_big_for_the_worker_is_spawned_by_the_agent(tmp_path: Path, live_worker: sp.SpawnWorker) -> None:
    # an environment over the worker's message size (one string may be at most 128 KiB)
    env = {"PATH": "/usr/bin:/bin", **{f"BIG{i}": "x" * 100_000 for i in range(12)}}
    r, wr = os.pipe()
    dn = os.open(os.devnull, os.O_RDONLY)
    try:
        proc = await sp.spawn(["sh", "-c", 'echo ${#BIG11}'], shutil.which("sh", path=env["PATH"]) or "sh", cwd=str(tmp_path), env=env,
                              stdio=[dn, wr, wr], namespaces={}, tty=False, preexec=lambda: None, worker=live_worker)
    finally:
        os.close(wr)
        os.close(dn)
    out = await sp.read_to_eof(r)
    assert isinstance(proc, sp.Child)
    assert await proc.wait() == 0 and out.strip() == b"100000"


@fast_only
@pytest.mark.skipif(os.geteuid() != 0 or not os.access("/sys/fs/cgroup/cpu", os.W_OK),
                    reason="needs root and the cgroup v1 cpu hierarchy")
async def test_the_worker_moves_the_process_into_its_cgroup(tmp_path: Path, live_worker: sp.SpawnWorker) -> None:
    cg = Path(f"/sys/fs/cgroup/cpu/kybern-test-spawn-{os.getpid()}")
    cg.mkdir()
    try:
        proc = await _sleep(live_worker, tmp_path, cgroup_procs=[str(cg / "cgroup.procs")])
        assert isinstance(proc, sp.RemoteChild)
        assert str(proc.pid) in (cg / "cgroup.procs").read_text().split()
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        assert await _gone(proc.pid)
    finally:
        for _ in range(50):
            try:
                cg.rmdir()
                break
            except OSError:
                await asyncio.sleep(0.05)


AGENT = """
import asyncio, os, sys
from kybern.node.runtimes import spawn as sp

async def main():
    w = sp.SpawnWorker()
    w.start()
    dn = os.open(os.devnull, os.O_RDWR)
    p = await sp.spawn(["sleep", "60"], sys.argv[1], cwd="/", env={"PATH": "/usr/bin:/bin"}, stdio=[dn, dn, dn],
                       namespaces={}, tty=False, preexec=lambda: None, worker=w)
    print(w.pid, p.pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


@fast_only
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
async def test_when_the_agent_dies_the_worker_takes_its_processes_along(tmp_path: Path, how: int) -> None:
    agent = await asyncio.create_subprocess_exec(sys.executable, "-c", AGENT, SLEEP, stdout=asyncio.subprocess.PIPE)
    assert agent.stdout is not None
    worker_pid, child_pid = map(int, (await asyncio.wait_for(agent.stdout.readline(), 20)).split())
    assert Path(f"/proc/{child_pid}").exists()
    agent.send_signal(how)
    await agent.wait()
    assert await _gone(worker_pid)
    assert await _gone(child_pid)
