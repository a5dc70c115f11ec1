"""Small helpers on object metadata shared by the apiserver and the components."""

from __future__ import annotations

import copy
import datetime as _dt
import os
import time
from typing import Any

import orjson

# the service account credentials every pod gets, as upstream names them: the
# ConfigMap with the cluster's CA in every namespace, the token volume's name prefix
# and where it is mounted (ServiceAccount admission, the root CA publisher, the node)
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
TOKEN_VOLUME_PREFIX = "kube-api-access-"
SERVICE_ACCOUNT_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
# on a static pod's mirror pod (the kubelet makes it; kybern/node/staticpods.py)
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"

_now_second = -1
_now_text = ""


def now() -> str:
    """An RFC 3339 timestamp at second precision, as metav1.Time serialises.
    Formatted once per second: every write asks for it (creationTimestamp,
    managedFields), and strftime is a visible share of a create's CPU."""
    global _now_second, _now_text
    second = int(time.time())
    if second != _now_second:
        _now_text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        _now_second = second
    return _now_text


def clone_json(value: Any) -> Any:
    """A deep copy of a JSON value (what objects read from storage or a request
    body are): an orjson round trip, ~10x faster than copy.deepcopy on an
    object, with the same keys in the same order, the same values and types.
    Anything orjson cannot encode (an int past 64 bits, a non-JSON type) is
    deep-copied instead."""
    try:
        return orjson.loads(orjson.dumps(value))
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return copy.deepcopy(value)


def now_micro() -> str:
    """metav1.MicroTime (used by Leases and events.k8s.io)."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def new_uid() -> str:
    """A random (version 4) UUID, as str(uuid.uuid4()) without building a UUID
    object (a tenth of the cost, on every create)."""
    b = bytearray(os.urandom(16))
    b[6] = b[6] & 0x0F | 0x40  # version 4
    b[8] = b[8] & 0x3F | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def owner_ref(owner: dict[str, Any], *, controller: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def is_deleting(obj: dict[str, Any]) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


def is_active_namespace(ns: dict[str, Any] | None) -> bool:
    """A namespace that exists and is not being deleted (what per-namespace
    controllers keep their objects in)."""
    return ns is not None and not is_deleting(ns) and (ns.get("status") or {}).get("phase") != "Terminating"
