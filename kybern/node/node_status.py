"""What this node tells the cluster about itself: the Node object (labels,
capacity, addresses, nodeInfo, conditions, kubelet endpoint) and the heartbeat
Lease in kube-node-lease, as the kubelet's nodestatus setters and lease
controller produce them."""

from __future__ import annotations

import platform
import uuid
from pathlib import Path
from typing import Any

import psutil

from kybern.machinery import meta

KUBELET_VERSION = "v1.32.0-kybern"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40
MAX_PODS = 110  # the kubelet's default maxPods (--max-pods)
EVICTION_MEMORY = 100 * 1024 * 1024  # memory.available<100Mi, the kubelet's default hard eviction
EVICTION_NODEFS = 0.10  # nodefs.available<10%

_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
           "armv6l": "arm", "i386": "386", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x",
           "riscv64": "riscv64"}


def goarch() -> str:
    m = platform.machine().lower()
    return _GOARCH.get(m, m)


def goos() -> str:
    return platform.system().lower() or "linux"


def node_labels(name: str, zone: str | None, extra: dict[str, str] | None) -> dict[str, str]:
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": goos(),
        "kubernetes.io/arch": goarch(),
        "beta.kubernetes.io/os": goos(),
        "beta.kubernetes.io/arch": goarch(),
    }
    if zone:
        labels["topology.kubernetes.io/zone"] = zone
    labels.update(extra or {})
    return labels


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return f"{platform.system()} {platform.release()}"


def system_uuid(data_dir: str) -> str:
    """Stable per data dir, so several agents on one machine are told apart."""
    p = Path(data_dir) / "node-uuid"
    try:
        return p.read_text().strip()
    except OSError:
        u = str(uuid.uuid4())
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(u)
        return u


def capacity(data_dir: str, max_pods: int = MAX_PODS) -> tuple[dict[str, str], dict[str, str]]:
    """(capacity, allocatable). Allocatable subtracts the kubelet's default hard
    eviction thresholds, as upstream does with no reservations configured."""
    mem = psutil.virtual_memory().total
    try:
        disk = psutil.disk_usage(data_dir).total
    except OSError:
        disk = 0
    cpus = psutil.cpu_count() or 1
    cap = {"cpu": str(cpus), "memory": f"{mem // 1024}Ki", "pods": str(max_pods),
           "ephemeral-storage": f"{disk // 1024}Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0"}
    alloc = dict(cap)
    alloc["memory"] = f"{max(0, mem - EVICTION_MEMORY) // 1024}Ki"
    alloc["ephemeral-storage"] = str(int(disk * (1 - EVICTION_NODEFS)))
    return cap, alloc


def is_extended_resource(name: str) -> bool:
    """v1helper.IsExtendedResourceName: a domain-qualified name outside kubernetes.io
    (and not a quota's `requests.` form), e.g. example.com/dongle."""
    return "/" in name and "kubernetes.io/" not in name and not name.startswith("requests.")


def extended_allocatable(alloc: dict[str, Any], old: dict[str, Any] | None) -> None:
    """The kubelet's MachineInfo setter for resources it does not own: an extended
    resource an operator added to status.capacity (kubectl patch --subresource=status)
    becomes allocatable as is (no reservation), and one no longer in capacity leaves
    allocatable. `old` is the Node's status as last read. Capacity itself is not sent:
    the status is a merge patch, so the operator's entry stays until they remove it,
    and a stale read cannot bring a removed one back. A removal is sent as null (a
    merge patch's delete)."""
    old_cap = (old or {}).get("capacity") or {}
    old_alloc = (old or {}).get("allocatable") or {}
    for k, v in old_cap.items():
        if is_extended_resource(k) and k not in alloc:
            alloc[k] = v
    for k in old_alloc:
        if is_extended_resource(k) and k not in old_cap:
            alloc[k] = None


def _condition(typ: str, ok: bool, reason: str, message: str, old: dict[str, dict[str, Any]],
               now: str) -> dict[str, Any]:
    status = "True" if ok else "False"
    prev = old.get(typ)
    ltt = prev["lastTransitionTime"] if prev and prev.get("status") == status and prev.get(
        "lastTransitionTime") else now
    return {"type": typ, "status": status, "lastHeartbeatTime": now, "lastTransitionTime": ltt,
            "reason": reason, "message": message}


def node_status(*, name: str, address: str, port: int, data_dir: str, runtime_version: str,
                images: list[dict[str, Any]], old: dict[str, Any] | None = None,
                max_pods: int = MAX_PODS) -> dict[str, Any]:
    now = meta.now()
    prev = {c.get("type"): c for c in ((old or {}).get("conditions") or [])}
    cap, alloc = capacity(data_dir, max_pods)
    extended_allocatable(alloc, old)
    # pressure conditions are reported False: there is no eviction manager to act on them yet
    conditions = [
        _condition("MemoryPressure", False, "KubeletHasSufficientMemory",
                   "kubelet has sufficient memory available", prev, now),
        _condition("DiskPressure", False, "KubeletHasNoDiskPressure", "kubelet has no disk pressure",
                   prev, now),
        _condition("PIDPressure", False, "KubeletHasSufficientPID", "kubelet has sufficient PID available",
                   prev, now),
        _condition("Ready", True, "KubeletReady", "kubelet is posting ready status", prev, now),
    ]
    machine_id = _read("/etc/machine-id") or _read("/var/lib/dbus/machine-id")
    return {
        "capacity": cap,
        "allocatable": alloc,
        "conditions": conditions,
        "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {
            "machineID": machine_id,
            "systemUUID": system_uuid(data_dir),
            "bootID": _read("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": platform.release(),
            "osImage": _os_image(),
            "containerRuntimeVersion": runtime_version,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": goos(),
            "architecture": goarch(),
        },
        "images": [{"names": [i["name"], i["repo_digest"]], "sizeBytes": i["size"]} for i in images[:50]],
    }


def node_object(*, name: str, labels: dict[str, str], status: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels,
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                     "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": {},
        "status": status,
    }


def lease_object(name: str, node_uid: str | None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                 "renewTime": meta.now_micro()},
    }
    if node_uid:
        obj["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": name,
                                               "uid": node_uid}]
    return obj

