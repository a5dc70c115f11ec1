"""Pod sandboxes of the process runtime: their records on disk and their
network (CRI's RunPodSandbox / StopPodSandbox / RemovePodSandbox).

A sandbox is what the pod's containers share. Here that is a record (config,
status) under `<data_dir>/runtime/sandboxes/<id>.json` and, when the node has a
CNI pod network (kybern/network/podnet.py) and the pod is not `hostNetwork`,
a network namespace with the pod's own IP: created by run(), torn down
(CNI DEL, netns deleted) by stop(). Without a pod network the sandbox's IP is
the node's address.

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
    def __init__(self, root: Path, host_ip: str, network: PodNetwork | None = None) -> None:
        self.dir = root / "sandboxes"
        self.host_ip = host_ip
        self.network = network
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
        (what a crashed agent left is cleaned up first by PodNetwork.add)."""
        for sid, (config, status) in list(self.entries.items()):
            if not status.ready:
                continue
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

    async def run(self, config: PodSandboxConfig) -> str:
        sid = secrets.token_hex(32)
        status = PodSandboxStatus(id=sid, name=config.name, namespace=config.namespace, uid=config.uid,
                                  attempt=config.attempt, ready=True, ip=self.host_ip, created_at=time.time())
        await self._attach(sid, config, status)
        if config.log_directory:
            os.makedirs(config.log_directory, exist_ok=True)
        self.entries[sid] = (config, status)
        self.save(sid)
        return sid

    async def stop(self, sid: str) -> None:
        """Containers are already stopped: release the network, mark not ready."""
        if self.network is not None:
            await self.network.remove(sid)
        if sid in self.entries:
            self.entries[sid][1].ready = False
            self.entries[sid][1].netns = ""
            self.save(sid)

    def remove(self, sid: str) -> None:
        self.entries.pop(sid, None)
        (self.dir / f"{sid}.json").unlink(missing_ok=True)

    async def teardown_networks(self) -> None:
        """The agent is stopping: no netns, veth or address is left behind. The
        records stay ready so the next agent re-attaches them."""
        if self.network is None:
            return
        for sid in list(self.entries):
            await self.network.remove(sid)

    def status(self, sid: str) -> PodSandboxStatus | None:
        entry = self.entries.get(sid)
        return entry[1] if entry else None

    def netns(self, sid: str) -> str:
        entry = self.entries.get(sid)
        return entry[1].netns if entry else ""

    def preexec(self, sandbox_id: str, then: Any) -> tuple[Any, int | None]:
        """A preexec_fn entering the sandbox's netns (if it has one) before `then`,
        and the fd to close after the spawn."""
        path = self.netns(sandbox_id)
        if not path:
            return then, None
        from kybern.network.netns import setns

        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            raise ContainerError("StartError", f"pod network namespace {path}: {e.strerror}") from e

        def preexec() -> None:
            setns(fd)
            if then is not None:
                then()
        return preexec, fd

    def list(self) -> list[PodSandboxStatus]:
        return [s for _, s in self.entries.values()]

    def save(self, sid: str) -> None:
        config, status = self.entries[sid]
        # vars(), not dataclasses.asdict (which deep-copies): the fields are plain JSON values
        write_record(self.dir / f"{sid}.json", {"config": vars(config), "status": vars(status)})
