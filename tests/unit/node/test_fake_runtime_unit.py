"""The fake runtime (hollow nodes): the runtime contract with nothing running."""

from __future__ import annotations

import asyncio

import pytest

from kybern.node.runtimes.base import (
    EXITED,
    RUNNING,
    ContainerConfig,
    ContainerError,
    PodSandboxConfig,
    Runtime,
)
from kybern.node.runtimes.fake import FakeRuntime


async def _started(rt: FakeRuntime, tmp_path, env=()):
    sb_cfg = PodSandboxConfig(name="p", namespace="default", uid="u1", log_directory=str(tmp_path / "logs"))
    sid = await rt.run_pod_sandbox(sb_cfg)
    cid = await rt.create_container(sid, ContainerConfig(name="c", image="nginx", env=list(env),
                                                         log_path="c/0.log"), sb_cfg)
    await rt.start_container(cid)
    return sid, cid


async def test_runs_until_stopped_and_reports_events(tmp_path):
    rt = FakeRuntime(host_ip="10.0.0.7")
    assert isinstance(rt, Runtime)
    seen = []
    rt.add_event_handler(lambda st: seen.append(st.state))
    sid, cid = await _started(rt, tmp_path)
    st = await rt.container_status(cid)
    assert st.state == RUNNING and st.pid == 0 and st.image == "docker.io/library/nginx:latest"
    assert (await rt.pod_sandbox_status(sid)).ip == "10.0.0.7"
    assert (tmp_path / "logs" / "c" / "0.log").read_bytes() == b""
    assert await rt.exec_sync(cid, ["cat", "/tmp/ready"], 1) == (0, b"")
    with pytest.raises(ContainerError):
        await rt.exec(cid, ["sh"], tty=False, stdin=False)
    await rt.stop_container(cid, 30)
    st = await rt.container_status(cid)
    assert st.state == EXITED and st.exit_code == 143
    assert seen == [RUNNING, EXITED]
    await rt.remove_pod_sandbox(sid)
    assert await rt.list_containers() == [] and await rt.list_pod_sandboxes() == []
    assert not (tmp_path / "logs" / "c" / "0.log").exists()


async def test_exits_when_told_to(tmp_path):
    rt = FakeRuntime()
    exited = asyncio.Event()
    rt.add_event_handler(lambda st: st.state == EXITED and exited.set())
    _, cid = await _started(rt, tmp_path, [("KYBERN_FAKE_EXIT_CODE", "3"), ("KYBERN_FAKE_RUN_SECONDS", "0.05")])
    assert (await rt.container_status(cid)).state == RUNNING
    await asyncio.wait_for(exited.wait(), 10)
    st = await rt.container_status(cid)
    assert (st.state, st.exit_code, st.reason) == (EXITED, 3, "Error")


async def test_every_valid_image_is_present(tmp_path):
    rt = FakeRuntime()
    st = await rt.pull_image("registry.example:5000/team/app:1.2")
    assert st.repo_digest.startswith("registry.example:5000/team/app@sha256:")
    assert await rt.image_status("Not/Valid") is None
