"""Pod sandboxes of the process runtime: their records on disk and their
network (CRI's RunPodSandbox / StopPodSandbox / RemovePodSandbox).

A sandbox is what the pod's containers share. Here that is a record (config,
status) under `<data_dir>/runtime/sandboxes/<id>.json` and, when the node has a
CNI pod network (kybern/network/podnet.py) and the pod is not `hostNetwork`,
a network namespace with the pod's own IP: created by run(), torn down
(CNI DEL, netns deleted) by stop(). Without a pod network the sandbox's IP is
the node's address. As root, a pod not on the host's network also gets a UTS
namespace with its hostname (netns.uts_namespace), held by an fd of this
process, made and dropped alongside.

Containers do not outlive the agent, so neither do pod networks: shutdown()
tears them all down; start() of the next agent gives every sandbox that is
still `ready` a fresh namespace (the pod's IP may change, as after a node
reboot).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kybern.node.runtimes.base import ContainerError, PodSandboxConfig, PodSandboxStatus
from kybern.node.runtimes.records import write_record

if TYPE_CHECKING:
    from kybern.network.podnet import PodNetwork

log = logging.getLogger(__name__)


class Sandboxes:
    def __init__(self, root: Path, host_ip: str, network: PodNetwork | None = None, *,
                 own_uts: bool = False) -> None:
        self.dir = root / "sandboxes"
        self.host_ip = host_ip
        self.network = network
        self.own_uts = own_uts  # each pod not on the host's network gets a UTS namespace (root)
        self._uts_fds: dict[str, int] = {}  # sandbox id -> the fd keeping its UTS namespace
        self.entries: dict[str, tuple[PodSandboxConfig, PodSandboxStatus]] = {}

    def load(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for f in self.dir.glob("*.json"):
            try:
                d = json.loads(f.read_text())
                self.entries[f.stem] = (PodSandboxConfig(**d["config"]), PodSandboxStatus(**d["status"]))
            except (OSError, ValueError, TypeError, KeyError):
                log.warning("ignoring unreadable sandbox record %s", f)

    async def restore_networks(self) -> None:
        """After an agent restart: ready sandboxes that had a netns get a new one
        (what a crashed agent left is cleaned up first by PodNetwork.add), and
        their UTS namespace back if it is gone."""
        for sid, (config, status) in list(self.entries.items()):
            if not status.ready:
                continue
            if self._wants_uts(config):  # a new one: the path the record holds was the old agent's fd
                try:
                    status.utsns = self._uts(sid, config)
                except OSError as e:
                    log.warning("cannot restore the UTS namespace of pod %s/%s: %s", status.namespace,
                                status.name, e)
                    status.ready = False
            if status.netns or (self.network is not None and self.network.wants_netns(config.host_network)):
                try:
                    await self._attach(sid, config, status)
                except Exception as e:  # noqa: BLE001 -- the pod worker makes a new sandbox
                    log.warning("cannot restore the network of pod %s/%s: %s", status.namespace, status.name, e)
                    status.ready = False
                self.save(sid)

    async def _attach(self, sid: str, config: PodSandboxConfig, status: PodSandboxStatus) -> None:
        if self.network is None or not self.network.wants_netns(config.host_network):
            status.ip, status.netns = self.host_ip, ""
            return
        status.ip, status.netns = await self.network.add(
            sid, uid=config.uid, namespace=config.namespace, name=config.name,
            port_mappings=config.port_mappings or None)

    def _wants_uts(self, config: PodSandboxConfig) -> bool:
        return self.own_uts and not config.host_network

    def _uts(self, sid: str, config: PodSandboxConfig) -> str:
        """A UTS namespace with the pod's hostname: spec.hostname or the pod's name, cut
        to 63 characters as the kubelet does (hostNetwork pods keep the node's). This
        process holds it by an fd; the path to enter it is /proc/<our pid>/fd/<fd>."""
        from kybern.network.netns import uts_namespace

        self._close_uts(sid)
        fd = uts_namespace((config.hostname or config.name)[:63].rstrip("-."))
        self._uts_fds[sid] = fd
        return f"/proc/{os.getpid()}/fd/{fd}"

    def _close_uts(self, sid: str) -> None:
        fd = self._uts_fds.pop(sid, None)
        if fd is not None:
            os.close(fd)

    async def run(self, config: PodSandboxConfig) -> str:
        sid = secrets.token_hex(32)
        status = PodSandboxStatus(id=sid, name=config.name, namespace=config.namespace, uid=config.uid,
                                  attempt=config.attempt, ready=True, ip=self.host_ip, created_at=time.time())
        if self._wants_uts(config):
            status.utsns = self._uts(sid, config)
        try:
            await self._attach(sid, config, status)
        except BaseException:
            self._close_uts(sid)
            raise
        if config.log_directory:
            os.makedirs(config.log_directory, exist_ok=True)
        self.entries[sid] = (config, status)
        self.save(sid)
        return sid

    async def stop(self, sid: str) -> None:
        """Containers are already stopped: release the network and the UTS
        namespace, mark not ready."""
        if self.network is not None:
            await self.network.remove(sid)
        if sid in self.entries:
            status = self.entries[sid][1]
            status.ready = False
            status.netns = status.utsns = ""
            self._close_uts(sid)
            self.save(sid)

    def remove(self, sid: str) -> None:
        self.entries.pop(sid, None)
        self._close_uts(sid)
        (self.dir / f"{sid}.json").unlink(missing_ok=True)

    async def teardown_networks(self) -> None:
        """The agent is stopping: no netns, veth, address or UTS namespace is left
        behind. The records stay ready so the next agent re-attaches them."""
        for sid in list(self.entries):
            if self.network is not None:
                await self.network.remove(sid)
            self._close_uts(sid)  # the next agent makes a new one (restore_networks)

    def status(self, sid: str) -> PodSandboxStatus | None:
        entry = self.entries.get(sid)
        return entry[1] if entry else None

    def netns(self, sid: str) -> str:
        entry = self.entries.get(sid)
        return entry[1].netns if entry else ""

    def namespaces(self, sid: str) -> dict[str, str]:
        """The pod's own namespaces by kind ({"net": path, "uts": path}; none: the host's)."""
        entry = self.entries.get(sid)
        if entry is None:
            return {}
        st = entry[1]
        return {k: v for k, v in (("net", st.netns), ("uts", st.utsns)) if v}

    @staticmethod
    def preexec(spaces: dict[str, str], then: Any) -> tuple[Any, list[int]]:
        """A preexec_fn entering the namespaces `spaces` (kind -> path, as
        namespaces() gives them) before `then`, and the fds to close after the spawn."""
        if not spaces:
            return then, []
        from kybern.network.netns import setns
        from kybern.node.runtimes.spawnd import NSTYPES

        opened: list[tuple[int, int]] = []
        try:
            for kind, path in spaces.items():
                opened.append((os.open(path, os.O_RDONLY | os.O_CLOEXEC), NSTYPES[kind]))
        except OSError as e:
            for fd, _ in opened:
                os.close(fd)
            raise ContainerError("StartError", f"pod namespace {e.filename}: {e.strerror}") from e

        def preexec() -> None:
            for fd, nstype in opened:
                setns(fd, nstype)
            if then is not None:
                then()
        return preexec, [fd for fd, _ in opened]

    def list(self) -> list[PodSandboxStatus]:
        return [s for _, s in self.entries.values()]

    def save(self, sid: str) -> None:
        config, status = self.entries[sid]
        # vars(), not dataclasses.asdict (which deep-copies): the fields are plain JSON values
        write_record(self.dir / f"{sid}.json", {"config": vars(config), "status": vars(status)})
