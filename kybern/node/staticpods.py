"""Static pods: the kubelet's `staticPodPath` (`kybern agent --pod-manifest-path DIR`).

Every file in DIR whose name does not start with a dot holds one Pod (YAML or
JSON). The agent keeps a **mirror pod** of each in the API, as the kubelet does:
named `<name>-<node>`, in the manifest's namespace (default `default`), bound to
this node, owned by the Node, with the manifest's labels and the annotations
`kubernetes.io/config.source: file`, `kubernetes.io/config.hash` and
`kubernetes.io/config.mirror` (a hash of the manifest and the node, as upstream's
pod UID) and `kubernetes.io/config.seen`, and a toleration of every NoExecute
taint. The directory is scanned every 20 s (the kubelet's fileCheckFrequency;
KYBERN_STATIC_POD_INTERVAL) and at once when a mirror pod is deleted: a new file
makes its pod, a changed one replaces it, a removed one deletes it.

Unlike the kubelet, the agent runs a static pod through its mirror pod (the one
path every pod takes here), so a mirror pod deleted with kubectl stops its
containers before it is made again, and a static pod does not run while the API
is unreachable. docs/node.md, Static pods.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from kybern.client.resources import PODS
from kybern.machinery import errors, meta

if TYPE_CHECKING:
    from kybern.node.agent import NodeAgent

log = logging.getLogger(__name__)

SOURCE = "kubernetes.io/config.source"
HASH = "kubernetes.io/config.hash"
MIRROR = meta.MIRROR_POD_ANNOTATION
SEEN = "kubernetes.io/config.seen"


def is_mirror(pod: dict[str, Any]) -> bool:
    return MIRROR in ((pod.get("metadata") or {}).get("annotations") or {})


def mirror_pod(manifest: dict[str, Any], node: str, node_uid: str | None) -> dict[str, Any]:
    """The mirror pod of one manifest on `node` (kubelet config/common.go applyDefaults)."""
    pod = copy.deepcopy(manifest)
    m = pod.setdefault("metadata", {})
    digest = hashlib.md5(json.dumps(manifest, sort_keys=True).encode() + f"host:{node}".encode(),  # noqa: S324
                         usedforsecurity=False).hexdigest()
    m["name"] = f"{m.get('name', '')}-{node}"
    m["namespace"] = m.get("namespace") or "default"
    for k in ("uid", "resourceVersion", "creationTimestamp", "generateName", "selfLink"):
        m.pop(k, None)
    m["annotations"] = {**(m.get("annotations") or {}), SOURCE: "file", HASH: digest, MIRROR: digest,
                        SEEN: dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")}
    if node_uid:
        m["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid,
                                 "controller": True}]
    spec = pod.setdefault("spec", {})
    spec["nodeName"] = node
    tol = {"operator": "Exists", "effect": "NoExecute"}
    if tol not in (spec.get("tolerations") or []):
        spec["tolerations"] = [*(spec.get("tolerations") or []), tol]
    pod.pop("status", None)
    pod["apiVersion"], pod["kind"] = "v1", "Pod"
    return pod


def read_manifests(path: str) -> dict[str, dict[str, Any]]:
    """file name -> its Pod; unreadable or non-Pod files are logged and skipped."""
    out: dict[str, dict[str, Any]] = {}
    try:
        names = sorted(os.listdir(path))
    except FileNotFoundError:
        return out
    for name in names:
        f = Path(path) / name
        if name.startswith(".") or not f.is_file():
            continue
        try:
            obj = yaml.safe_load(f.read_text())
        except (OSError, yaml.YAMLError) as e:
            log.warning("static pod %s: cannot read it: %s", f, e)
            continue
        if not isinstance(obj, dict) or obj.get("kind") != "Pod" or not (obj.get("metadata") or {}).get("name"):
            log.warning("static pod %s: not a Pod with a name", f)
            continue
        out[name] = obj
    return out


class StaticPods:
    interval = float(os.environ.get("KYBERN_STATIC_POD_INTERVAL") or 20.0)

    def __init__(self, agent: NodeAgent, path: str) -> None:
        self.agent, self.path = agent, path
        self.wake = asyncio.Event()
        self._refused: dict[str, str] = {}  # file -> the last refusal, logged once

    def mirror_deleted(self) -> None:
        self.wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self.sync()
            except Exception as e:  # noqa: BLE001 -- the next scan tries again
                log.warning("static pods: %r", e)
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), self.interval)
            except TimeoutError:
                pass

    async def sync(self) -> None:
        agent = self.agent
        manifests = await asyncio.to_thread(read_manifests, self.path)
        want = {}
        for fname, manifest in manifests.items():
            pod = mirror_pod(manifest, agent.name, agent.node_uid)
            want[(pod["metadata"]["namespace"], pod["metadata"]["name"])] = (fname, pod)
        have = {(p["metadata"].get("namespace"), p["metadata"]["name"]): p
                for p in agent.informer.list() if is_mirror(p)}
        for key, (fname, pod) in want.items():
            cur = have.get(key)
            if cur is not None and cur["metadata"]["annotations"].get(MIRROR) == pod["metadata"]["annotations"][MIRROR]:
                continue
            if cur is not None:  # the manifest changed: this pod goes, the new one comes at the next scan
                if not cur["metadata"].get("deletionTimestamp"):
                    await self._delete(cur)
                continue
            try:
                await agent.client.create(PODS, pod, key[0])
                self._refused.pop(fname, None)
                log.info("static pod %s: mirror pod %s/%s created", fname, *key)
            except errors.StatusError as e:
                if e.code != 409 and self._refused.get(fname) != e.message:
                    self._refused[fname] = e.message
                    log.warning("static pod %s: the API refused its mirror pod: %s", fname, e.message)
        for key, cur in have.items():
            if key not in want and not cur["metadata"].get("deletionTimestamp"):
                await self._delete(cur)  # its file is gone

    async def _delete(self, pod: dict[str, Any]) -> None:
        m = pod["metadata"]
        try:
            await self.agent.client.delete(PODS, m["name"], m["namespace"])
        except errors.StatusError as e:
            if e.code != 404:
                raise
