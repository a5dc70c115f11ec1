"""Volume files as the kubelet writes them (AtomicWriter layout, modes, atomic
updates), hostPath type checks, mounts placed in a container's tree by the
process runtime, and the Service environment variables."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from kybern.node.env import service_vars
from kybern.node.images import ImageStore
from kybern.node.runtimes.base import EXITED, ContainerConfig, Mount, PodSandboxConfig
from kybern.node.runtimes.process import ProcessRuntime
from kybern.node.volumes import MountError, _host_path, write_atomic


def test_atomic_writer_layout_and_modes(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    assert write_atomic(vol, {"greeting": (b"hello", 0o644), "nested/key": (b"k", 0o400)})
    assert os.readlink(vol / "greeting") == "..data/greeting"
    assert os.readlink(vol / "nested") == "..data/nested"
    assert os.readlink(vol / "..data").startswith("..")
    assert (vol / "greeting").read_text() == "hello"
    assert (vol / "nested" / "key").stat().st_mode & 0o777 == 0o400
    assert not write_atomic(vol, {"greeting": (b"hello", 0o644), "nested/key": (b"k", 0o400)})


def test_atomic_writer_update_swaps_data_and_drops_removed_keys(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    write_atomic(vol, {"a": (b"1", 0o644), "b": (b"2", 0o644)})
    first = os.readlink(vol / "..data")
    assert write_atomic(vol, {"a": (b"changed", 0o644)})
    assert os.readlink(vol / "..data") != first
    assert (vol / "a").read_text() == "changed"
    assert not os.path.lexists(vol / "b")
    assert not (vol / first).exists()  # the old generation is gone
    assert sorted(p.name for p in vol.iterdir() if not p.name.startswith("..")) == ["a"]


def test_host_path_types(tmp_path: Path) -> None:
    d = tmp_path / "made"
    assert _host_path({"path": str(d), "type": "DirectoryOrCreate"}) == str(d) and d.is_dir()
    f = tmp_path / "file"
    _host_path({"path": str(f), "type": "FileOrCreate"})
    assert f.is_file()
    with pytest.raises(MountError, match="is not a directory"):
        _host_path({"path": str(f), "type": "Directory"})
    with pytest.raises(MountError, match="is not a file"):
        _host_path({"path": str(d), "type": "File"})
    assert _host_path({"path": str(tmp_path / "anything")}) == str(tmp_path / "anything")


async def test_mounts_appear_inside_the_containers_tree(tmp_path: Path) -> None:
    src = tmp_path / "img"
    (src / "etc" / "config").mkdir(parents=True)
    (src / "etc" / "config" / "from-image").write_text("shadowed")
    store = ImageStore(tmp_path / "node", seed_samples=False)
    store.import_dir("tool:1", src)
    vol = tmp_path / "vol"
    write_atomic(vol, {"greeting": (b"hello\n", 0o644)})
    rt = ProcessRuntime(tmp_path / "node", store)
    await rt.start()
    try:
        sc = PodSandboxConfig(name="p", namespace="default", uid="u", log_directory=str(tmp_path / "logs"))
        sid = await rt.run_pod_sandbox(sc)
        script = "cat etc/config/greeting; ls etc/config; cat $KYBERN_ROOTFS/etc/config/greeting"
        cid = await rt.create_container(sid, ContainerConfig(
            name="c", image="tool:1", command=["sh", "-c", script], log_path="c/0.log",
            mounts=[Mount("/etc/config", str(vol), readonly=True)]), sc)
        await rt.start_container(cid)
        for _ in range(200):
            st = await rt.container_status(cid)
            if st is not None and st.state == EXITED:
                break
            await asyncio.sleep(0.02)
        assert st is not None and st.exit_code == 0
        lines = [ln.split(" ", 3)[3] for ln in Path(st.log_path).read_text().splitlines()]
        assert lines == ["hello", "greeting", "hello"]  # the image's file is shadowed by the mount
    finally:
        await rt.shutdown(1)


def test_service_link_variables() -> None:
    spec = {"clusterIP": "10.96.0.7", "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                                                 {"port": 53, "protocol": "UDP"}]}
    env = service_vars("my-svc", spec)
    assert env == {
        "MY_SVC_SERVICE_HOST": "10.96.0.7", "MY_SVC_SERVICE_PORT": "80", "MY_SVC_SERVICE_PORT_HTTP": "80",
        "MY_SVC_PORT": "tcp://10.96.0.7:80",
        "MY_SVC_PORT_80_TCP": "tcp://10.96.0.7:80", "MY_SVC_PORT_80_TCP_PROTO": "tcp",
        "MY_SVC_PORT_80_TCP_PORT": "80", "MY_SVC_PORT_80_TCP_ADDR": "10.96.0.7",
        "MY_SVC_PORT_53_UDP": "udp://10.96.0.7:53", "MY_SVC_PORT_53_UDP_PROTO": "udp",
        "MY_SVC_PORT_53_UDP_PORT": "53", "MY_SVC_PORT_53_UDP_ADDR": "10.96.0.7"}
    assert service_vars("headless", {"clusterIP": "None", "ports": [{"port": 80}]}) == {}
