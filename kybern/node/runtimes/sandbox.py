"""Pod sandboxes of the process runtime: their records on disk and their
network (CRI's RunPodSandbox / StopPodSandbox / RemovePodSandbox).

A sandbox is what the pod's containers share. Here that is a record (config,
status) under `<data_dir>/runtime/sandboxes/<id>.json` and, when the node has a
CNI pod network (kybern/network/podnet.py) and the pod is not `hostNetwork`,
a network namespace with the pod's own IP: created by run(), torn down
(CNI DEL, netns deleted) by stop(). Without a pod network the sandbox's IP is
the node's address. As root, a pod not on the host's network also gets a UTS
namespace with its hostname (netns.utsns_add), made and removed alongside.

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
            if self._wants_uts(config) and not (status.utsns and os.path.exists(status.utsns)):
                try:
                    status.utsns = await self._uts(sid, config)
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

    async def _uts(self, sid: str, config: PodSandboxConfig) -> str:
        """A UTS namespace with the pod's hostname: spec.hostname or the pod's name, cut
        to 63 characters as the kubelet does (hostNetwork pods keep the node's)."""
        from kybern.network.netns import utsns_add

        hostname = (config.hostname or config.name)[:63].rstrip("-.")
        return await utsns_add(f"kybern-{sid[:16]}", hostname)

    async def run(self, config: PodSandboxConfig) -> str:
        sid = secrets.token_hex(32)
        status = PodSandboxStatus(id=sid, name=config.name, namespace=config.namespace, uid=config.uid,
                                  attempt=config.attempt, ready=True, ip=self.host_ip, created_at=time.time())
        if self._wants_uts(config):
            status.utsns = await self._uts(sid, config)
        try:
            await self._attach(sid, config, status)
        except BaseException:
            self._drop_uts(status)
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
            status.netns = ""
            self._drop_uts(status)
            self.save(sid)

    @staticmethod
    def _drop_uts(status: PodSandboxStatus) -> None:
        if status.utsns:
            from kybern.network.netns import ns_delete

            ns_delete(status.utsns)
            status.utsns = ""

    def remove(self, sid: str) -> None:
        entry = self.entries.pop(sid, None)
        if entry is not None:
            self._drop_uts(entry[1])
        (self.dir / f"{sid}.json").unlink(missing_ok=True)

    async def teardown_networks(self) -> None:
        """The agent is stopping: no netns, veth, address or UTS namespace is left
        behind. The records stay ready so the next agent re-attaches them."""
        for sid, (_, status) in list(self.entries.items()):
            if self.network is not None:
                await self.network.remove(sid)
            if status.utsns:
                from kybern.network.netns import ns_delete

                ns_delete(status.utsns)  # the record keeps the path: restore makes it again

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

    def preexec(self, sandbox_id: str, then: Any) -> tuple[Any, list[int]]:
        """A preexec_fn entering the sandbox's namespaces (if it has any) before
        `then`, and the fds to close after the spawn."""
        spaces = self.namespaces(sandbox_id)
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
