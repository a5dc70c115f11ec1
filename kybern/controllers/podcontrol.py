"""Making pods from a workload's template and removing them, with the events
upstream's PodControl records ("Created pod: x", "Error creating: ..."). Shared by
the Job, DaemonSet and StatefulSet controllers (pkg/controller/controller_utils.go
GetPodFromTemplate / RealPodControl)."""

from __future__ import annotations

from typing import Any

import orjson

from kybern.client.events import EventRecorder
from kybern.client.http import Client
from kybern.client.resources import PODS
from kybern.machinery import errors, meta


def deep_copy(obj: Any) -> Any:
    return orjson.loads(orjson.dumps(obj))


def pod_from_template(owner: dict[str, Any], template: dict[str, Any], *,
                      name: str | None = None, generate_name: str | None = None) -> dict[str, Any]:
    """A pod with the template's labels, annotations, finalizers and spec and a
    controller ownerReference to `owner` (GetPodFromTemplate)."""
    tmeta = template.get("metadata") or {}
    m: dict[str, Any] = {"namespace": owner["metadata"].get("namespace"),
                         "labels": dict(tmeta.get("labels") or {}),
                         "ownerReferences": [meta.owner_ref(owner, controller=True)]}
    if name:
        m["name"] = name
    else:
        m["generateName"] = generate_name or f"{owner['metadata']['name']}-"
    if tmeta.get("annotations"):
        m["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        m["finalizers"] = list(tmeta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": m,
            "spec": deep_copy(template.get("spec") or {})}


class PodControl:
    """Create and delete pods on behalf of an owner, recording events on it."""

    def __init__(self, client: Client, recorder: EventRecorder) -> None:
        self.client = client
        self.recorder = recorder

    async def create(self, owner: dict[str, Any], pod: dict[str, Any]) -> dict[str, Any]:
        try:
            created: dict[str, Any] = await self.client.create(PODS, pod, owner["metadata"].get("namespace"))
        except errors.StatusError as e:
            if e.code != 409 or not pod["metadata"].get("name"):
                self.recorder.event(owner, "Warning", "FailedCreate", f"Error creating: {e.message}")
            raise
        self.recorder.event(owner, "Normal", "SuccessfulCreate",
                            f"Created pod: {created['metadata']['name']}")
        return created

    async def delete(self, owner: dict[str, Any], pod: dict[str, Any]) -> bool:
        """Delete; False if it was already gone."""
        name = pod["metadata"]["name"]
        try:
            await self.client.delete(PODS, name, pod["metadata"].get("namespace"),
                                     preconditions={"uid": pod["metadata"]["uid"]})
        except errors.StatusError as e:
            if e.code in (404, 409):
                return False
            self.recorder.event(owner, "Warning", "FailedDelete", f"Error deleting: {e.message}")
            raise
        self.recorder.event(owner, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")
        return True


def pods_owned_by(pods: list[dict[str, Any]], uid: str) -> list[dict[str, Any]]:
    return [p for p in pods if (meta.controller_of(p) or {}).get("uid") == uid]


class PodIndex:
    """The pods of each controller (by owner uid), kept current from the shared pod
    informer, so a controller finds its pods without scanning every pod."""

    def __init__(self, informer: Any) -> None:
        self.informer = informer
        self._by_owner: dict[str, set[str]] = {}
        informer.add_handler(self._on_pod)

    def _on_pod(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        m = new["metadata"]
        key = f"{m.get('namespace')}/{m['name']}"
        if old is not None:
            prev = (meta.controller_of(old) or {}).get("uid")
            if prev and prev != (meta.controller_of(new) or {}).get("uid"):
                self._by_owner.get(prev, set()).discard(key)
        uid = (meta.controller_of(new) or {}).get("uid")
        if not uid:
            return
        if typ == "DELETED":
            keys = self._by_owner.get(uid)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_owner[uid]
        else:
            self._by_owner.setdefault(uid, set()).add(key)

    def owned(self, uid: str) -> list[dict[str, Any]]:
        out = []
        for k in self._by_owner.get(uid, ()):
            p = self.informer.get(k)
            if p is not None and (meta.controller_of(p) or {}).get("uid") == uid:
                out.append(p)
        return out

    def orphans(self, namespace: str) -> list[dict[str, Any]]:
        return [p for p in self.informer.list(namespace) if meta.controller_of(p) is None]
