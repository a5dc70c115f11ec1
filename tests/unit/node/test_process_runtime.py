"""The process runtime with real processes: command semantics, logs in the CRI
format, exit codes, stopping whole process trees, and reaping leftovers."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from kybern.node.images import ImageStore
from kybern.node.runtimes import proctree
from kybern.node.runtimes.base import (
    EXITED,
    RUNNING,
    ContainerConfig,
    ContainerError,
    ImagePullError,
    PodSandboxConfig,
    Runtime,
)
from kybern.node.runtimes.process import ProcessRuntime

CRI_LINE = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) [FP] .*$")


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[ProcessRuntime]:
    src = tmp_path / "img"
    src.mkdir()
    (src / "data.txt").write_text("original\n")
    (src / "run.sh").write_text("#!/bin/sh\necho from-image-script \"$@\"\n")
    (src / "run.sh").chmod(0o755)
    store = ImageStore(tmp_path / "node", seed_samples=False)
    store.import_dir("tool:1", src, config={"entrypoint": ["/run.sh"], "cmd": ["default-arg"],
                                            "env": ["GREETING=hello", "PATH=/usr/bin:/bin"],
                                            "workingDir": "/work"})
    runtime = ProcessRuntime(tmp_path / "node", store, host_ip="127.0.0.1")
    await runtime.start()
    yield runtime
    await runtime.shutdown(1)


async def _run(rt: ProcessRuntime, tmp_path: Path, name: str, **kw: object) -> str:
    sc = PodSandboxConfig(name="p", namespace="default", uid="uid-1", log_directory=str(tmp_path / "logs"))
    sid = await rt.run_pod_sandbox(sc)
    cid = await rt.create_container(sid, ContainerConfig(name=name, image="tool:1", log_path=f"{name}/0.log",
                                                         **kw), sc)  # type: ignore[arg-type]
    await rt.start_container(cid)
    return cid


async def _wait_exit(rt: ProcessRuntime, cid: str, timeout: float = 10) -> None:
    async def poll() -> None:
        while (s := await rt.container_status(cid)) is not None and s.state != EXITED:
            await asyncio.sleep(0.02)
    await asyncio.wait_for(poll(), timeout)


async def test_is_a_runtime(rt: ProcessRuntime) -> None:
    assert isinstance(rt, Runtime)


async def test_image_entrypoint_and_cmd_by_default(rt: ProcessRuntime, tmp_path: Path) -> None:
    cid = await _run(rt, tmp_path, "c")
    await _wait_exit(rt, cid)
    s = await rt.container_status(cid)
    assert s is not None and s.exit_code == 0 and s.reason == "Completed"
    assert s.image == "docker.io/library/tool:1"
    assert s.image_ref.startswith("docker.io/library/tool@sha256:")
    assert s.started_at <= s.finished_at
    lines = Path(s.log_path).read_bytes().splitlines()
    assert all(CRI_LINE.match(x) for x in lines)
    assert lines[0].endswith(b" stdout F from-image-script default-arg")


async def test_args_replace_cmd_and_command_replaces_entrypoint(rt: ProcessRuntime, tmp_path: Path) -> None:
    a = await _run(rt, tmp_path, "a", args=["x", "y"])
    b = await _run(rt, tmp_path, "b", command=["sh", "-c", "echo $GREETING $EXTRA; pwd; cat ../data.txt"],
                   env=[("EXTRA", "world")])
    await _wait_exit(rt, a)
    await _wait_exit(rt, b)
    sa, sb = await rt.container_status(a), await rt.container_status(b)
    assert sa and sb
    assert Path(sa.log_path).read_text().endswith("stdout F from-image-script x y\n")
    out = [ln.split(" ", 3)[3] for ln in Path(sb.log_path).read_text().splitlines()]
    assert out[0] == "hello world"
    assert out[1].endswith("/rootfs/work")  # workingDir from the image, inside the container's copy
    assert out[2] == "original"


async def test_containers_cannot_change_the_image(rt: ProcessRuntime, tmp_path: Path) -> None:
    cid = await _run(rt, tmp_path, "w", command=["sh", "-c", "echo mutated > ../data.txt"])
    await _wait_exit(rt, cid)
    img = rt.images.get("tool:1")
    assert img is not None and (img.rootfs / "data.txt").read_text() == "original\n"


async def test_exit_codes_and_stderr(rt: ProcessRuntime, tmp_path: Path) -> None:
    cid = await _run(rt, tmp_path, "e", command=["sh", "-c", "echo oops >&2; printf 'no newline'; exit 3"])
    await _wait_exit(rt, cid)
    s = await rt.container_status(cid)
    assert s is not None and s.exit_code == 3 and s.reason == "Error"
    text = Path(s.log_path).read_text()
    assert " stderr F oops\n" in text
    assert " stdout F no newline\n" in text


async def test_missing_executable_is_a_start_error(rt: ProcessRuntime, tmp_path: Path) -> None:
    with pytest.raises(ContainerError) as e:
        await _run(rt, tmp_path, "m", command=["no-such-binary-xyz"])
    assert e.value.reason == "StartError"
    assert 'exec: "no-such-binary-xyz": executable file not found in $PATH' in e.value.message
    (s,) = [c for c in await rt.list_containers() if c.name == "m"]
    assert s.state == EXITED and s.exit_code == 128 and s.reason == "StartError"


async def test_stop_kills_the_whole_tree(rt: ProcessRuntime, tmp_path: Path) -> None:
    # a child that ignores SIGTERM, and one that escaped into its own session
    script = ("trap '' TERM; (trap '' TERM; sleep 300) & setsid sleep 300 & "
              "echo started; while true; do sleep 0.1; done")
    cid = await _run(rt, tmp_path, "tree", command=["sh", "-c", script])
    s = await rt.container_status(cid)
    assert s is not None and s.state == RUNNING
    await asyncio.sleep(0.3)
    tree = [s.pid] + [p.pid for p in psutil.Process(s.pid).children(recursive=True)]
    assert len(tree) >= 3
    t0 = asyncio.get_running_loop().time()
    await rt.stop_container(cid, 0.5)
    took = asyncio.get_running_loop().time() - t0
    assert 0.4 < took < 5
    s = await rt.container_status(cid)
    assert s is not None and s.state == EXITED and s.exit_code == 137
    await asyncio.sleep(0.1)
    alive = [p for p in tree if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == []


async def test_sigterm_is_sent_first(rt: ProcessRuntime, tmp_path: Path) -> None:
    cid = await _run(rt, tmp_path, "t", command=["sh", "-c", ("trap 'echo bye; exit 0' TERM; "
                                                   "while true; do sleep 0.05; done")])
    await asyncio.sleep(0.2)
    await rt.stop_container(cid, 5)
    s = await rt.container_status(cid)
    assert s is not None and s.exit_code == 0 and s.reason == "Completed"
    assert "stdout F bye" in Path(s.log_path).read_text()


async def test_background_processes_die_with_the_main_process(rt: ProcessRuntime, tmp_path: Path) -> None:
    cid = await _run(rt, tmp_path, "bg", command=["sh", "-c", "sleep 300 & echo $!"])
    await _wait_exit(rt, cid)
    s = await rt.container_status(cid)
    assert s is not None
    child = int(Path(s.log_path).read_text().split(" ", 3)[3])
    await asyncio.sleep(0.1)
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


async def test_events_are_reported(rt: ProcessRuntime, tmp_path: Path) -> None:
    seen: list[str] = []
    rt.add_event_handler(lambda s: seen.append(s.state))
    cid = await _run(rt, tmp_path, "ev", command=["true"])
    await _wait_exit(rt, cid)
    assert seen == [RUNNING, EXITED]


async def test_leftovers_of_a_dead_agent_are_reaped(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "node", seed_samples=False)
    (tmp_path / "img").mkdir()
    store.import_dir("tool:1", tmp_path / "img")
    first = ProcessRuntime(tmp_path / "node", store)
    await first.start()
    cid = await _run(first, tmp_path, "long", command=["sh", "-c", "sleep 300 & sleep 300"])
    s = await first.container_status(cid)
    assert s is not None
    pids = [s.pid] + [p.pid for p in psutil.Process(s.pid).children(recursive=True)]
    # a second runtime on the same data dir (the agent restarted) finds and kills them
    second = ProcessRuntime(tmp_path / "node", store)
    await second.start()
    await asyncio.sleep(0.2)
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    s2 = await second.container_status(cid)
    assert s2 is not None and s2.state == EXITED and s2.exit_code == 137
    await first.shutdown(0)


async def test_remove_container_removes_files(rt: ProcessRuntime, tmp_path: Path) -> None:
    cid = await _run(rt, tmp_path, "rm", command=["true"])
    await _wait_exit(rt, cid)
    s = await rt.container_status(cid)
    assert s is not None and os.path.exists(s.log_path)
    await rt.remove_container(cid)
    assert await rt.container_status(cid) is None
    assert not os.path.exists(s.log_path)


async def test_pull_unknown_image_says_how_to_import(rt: ProcessRuntime) -> None:
    with pytest.raises(ImagePullError) as e:
        await rt.pull_image("nginx")
    assert 'image "docker.io/library/nginx:latest" is not in the local image store' in e.value.message
    assert "kybern image import nginx:latest DIR" in e.value.message
    assert (await rt.pull_image("tool:1")).ref == "docker.io/library/tool:1"


async def test_sandbox_ip_is_the_host(rt: ProcessRuntime, tmp_path: Path) -> None:
    sid = await rt.run_pod_sandbox(PodSandboxConfig("p", "ns", "u"))
    st = await rt.pod_sandbox_status(sid)
    assert st is not None and st.ip == "127.0.0.1" and st.ready
    await rt.stop_pod_sandbox(sid)
    await rt.remove_pod_sandbox(sid)
    assert await rt.pod_sandbox_status(sid) is None




async def test_descendant_pids_match_a_full_process_scan() -> None:
    # grandchildren in their own session and process group included
    p = await asyncio.create_subprocess_exec(
        "sh", "-c", "sleep 30 & setsid sh -c 'sleep 30 & sleep 30' & echo go; wait",
        stdout=asyncio.subprocess.PIPE)
    try:
        assert p.stdout is not None
        await p.stdout.readline()
        want: set[int] = set()
        for _ in range(50):  # the setsid'd shell forks its sleeps a moment later
            want = {c.pid for c in psutil.Process(p.pid).children(recursive=True)}
            if len(want) >= 4:
                break
            await asyncio.sleep(0.05)
        assert len(want) >= 4
        assert set(proctree.descendant_pids(p.pid)) == want
        assert {c.pid for c in proctree.descendants(p.pid)} == want
    finally:
        for c in psutil.Process(p.pid).children(recursive=True):
            c.kill()
        p.kill()
        await p.wait()


def test_start_time_is_psutils_create_time() -> None:
    # kill_tree compares it with psutil's create_time of candidates (within 0.05 s)
    assert proctree.start_time(os.getpid()) == psutil.Process().create_time()
    assert proctree.start_time(2 ** 22 + 12345) == 0.0  # no such process
