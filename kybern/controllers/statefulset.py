"""The StatefulSet controller (upstream pkg/controller/statefulset): pods with a
stable identity `<set>-<ordinal>`, each with its own PersistentVolumeClaims
`<claim>-<set>-<ordinal>` that outlive the pod and are reused by its successor.

- OrderedReady: create ordinals in increasing order, each only once all lower
  ones are Running and Ready; remove surplus ordinals highest first, one at a
  time, only while the others are healthy. Parallel: create and remove at once.
- Updates through ControllerRevisions (history.py): a pod's
  `controller-revision-hash` label names its revision. RollingUpdate replaces
  pods from the highest ordinal down to `partition`, one at a time; OnDelete
  only gives a pod the new template when someone deletes it.
- Status as upstream: replicas, readyReplicas, availableReplicas, currentReplicas,
  updatedReplicas, currentRevision, updateRevision, collisionCount,
  observedGeneration.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from kybern.client.events import EventRecorder
from kybern.client.http import Client
from kybern.client.informer import key_of
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import CONTROLLERREVISIONS, PERSISTENTVOLUMECLAIMS, PODS, STATEFULSETS
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.controllers import history, podutil
from kybern.controllers.ownership import claim, fresh_owner_check
from kybern.controllers.podcontrol import PodIndex, deep_copy, pod_from_template
from kybern.machinery import errors, meta
from kybern.machinery.selectors import selector_matches

log = logging.getLogger(__name__)

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def ordinal_of(set_name: str, pod: dict[str, Any]) -> int | None:
    m = re.fullmatch(re.escape(set_name) + r"-(\d+)", pod["metadata"]["name"])
    return int(m.group(1)) if m else None


def claim_name(template: dict[str, Any], set_name: str, ordinal: int) -> str:
    return f"{template['metadata']['name']}-{set_name}-{ordinal}"


def running_and_ready(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and podutil.is_ready(pod)


def revision_name(pod: dict[str, Any]) -> str:
    return (pod["metadata"].get("labels") or {}).get(history.REVISION_HASH_LABEL, "")


class StatefulSetController:
    name = "statefulset"

    def __init__(self, client: Client, informers: InformerFactory, *, workers: int = 5) -> None:
        self.client = client
        self.workers = workers
        self.sts_informer = informers.informer(STATEFULSETS)
        self.pod_informer = informers.informer(PODS)
        self.rev_informer = informers.informer(CONTROLLERREVISIONS)
        self.pvc_informer = informers.informer(PERSISTENTVOLUMECLAIMS)
        self.pods = PodIndex(self.pod_informer)
        self.queue = WorkQueue("statefulset")
        self.recorder = EventRecorder(client, "statefulset-controller")
        self.sts_informer.add_handler(lambda t, o, n: self.queue.add(key_of(n)))
        self.pod_informer.add_handler(self._on_pod)

    async def run(self) -> None:
        await run_workers(self.queue, self.reconcile, self.workers)

    def _on_pod(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        ref = meta.controller_of(new)
        ns = new["metadata"].get("namespace")
        if ref is not None:
            if ref.get("kind") == "StatefulSet":
                self.queue.add(f"{ns}/{ref.get('name')}")
                if typ != "DELETED" and old is not None and not podutil.is_ready(old) and \
                        podutil.is_ready(new):
                    sts = self.sts_informer.get(f"{ns}/{ref.get('name')}")
                    mrs = int(((sts or {}).get("spec") or {}).get("minReadySeconds") or 0)
                    if mrs:
                        self.queue.add_after(f"{ns}/{ref.get('name')}", float(mrs))
            return
        if typ != "DELETED":
            labels = new["metadata"].get("labels") or {}
            for s in self.sts_informer.list(ns):
                if selector_matches((s.get("spec") or {}).get("selector"), labels):
                    self.queue.add(key_of(s))

    # -- reconcile -----------------------------------------------------------------
    async def reconcile(self, key: str) -> None:
        cached = self.sts_informer.get(key)
        if cached is None:
            return
        sts = deep_copy(cached)
        m = sts["metadata"]
        ns = m.get("namespace") or ""
        spec = sts.get("spec") or {}
        candidates = self.pods.owned(m["uid"]) + self.pods.orphans(ns)
        pods = await claim(self.client, PODS, sts, spec.get("selector"), candidates,
                           fresh_owner_check(self.client, STATEFULSETS, sts))
        revisions = history.owned(self.rev_informer.list(ns), sts)
        status = deep_copy(sts.get("status") or {})
        # upstream's newRevision labels a revision with the pod template's labels
        labels = dict(((spec.get("template") or {}).get("metadata") or {}).get("labels") or {})
        update_rev, collisions = await history.ensure(self.client, sts, revisions, labels,
                                                      int(status.get("collisionCount") or 0))
        revisions = history.owned(self.rev_informer.list(ns), sts)
        by_name = {r["metadata"]["name"]: r for r in revisions}
        by_name[update_rev["metadata"]["name"]] = update_rev
        current_rev = by_name.get(status.get("currentRevision") or "") or update_rev
        try:
            if not meta.is_deleting(sts):
                await self._update(sts, pods, current_rev, update_rev)
        finally:
            pods = [p for p in self.pods.owned(m["uid"])]
            await self._write_status(sts, pods, current_rev, update_rev, collisions)
            live = {current_rev["metadata"]["name"], update_rev["metadata"]["name"]} | \
                {revision_name(p) for p in pods}
            limit = spec.get("revisionHistoryLimit")
            await history.truncate(self.client, history.owned(self.rev_informer.list(ns), sts), live,
                                   10 if limit is None else int(limit))

    async def _update(self, sts: dict[str, Any], pods: list[dict[str, Any]],
                      current_rev: dict[str, Any], update_rev: dict[str, Any]) -> None:
        spec = sts.get("spec") or {}
        name = sts["metadata"]["name"]
        replicas = int(spec.get("replicas") if spec.get("replicas") is not None else 1)
        start = int((spec.get("ordinals") or {}).get("start") or 0)
        ordered = (spec.get("podManagementPolicy") or "OrderedReady") == "OrderedReady"
        strategy = spec.get("updateStrategy") or {}
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        rolling = (strategy.get("type") or "RollingUpdate") == "RollingUpdate"
        slots: dict[int, dict[str, Any]] = {}
        condemned: list[dict[str, Any]] = []
        for p in pods:
            o = ordinal_of(name, p)
            if o is None:
                continue
            if start <= o < start + replicas:
                slots[o] = p
            else:
                condemned.append(p)
        condemned.sort(key=lambda p: -(ordinal_of(name, p) or 0))
        unhealthy = any(not running_and_ready(p) or meta.is_deleting(p) for p in pods)

        for o in range(start, start + replicas):
            pod = slots.get(o)
            if pod is not None and (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded") \
                    and not meta.is_deleting(pod):
                await self._delete_pod(sts, pod)  # recreated on the next pass, same identity
                if ordered:
                    return
                continue
            if pod is None:
                use_current = rolling and o < start + partition
                rev = current_rev if use_current else update_rev
                await self._create_pod(sts, o, rev)
                if ordered:
                    return
                continue
            if ordered and (meta.is_deleting(pod) or not running_and_ready(pod)):
                return  # the next ordinal waits for this one
        for p in condemned:
            if meta.is_deleting(p):
                if ordered:
                    return
                continue
            if ordered and any(not running_and_ready(q) for q in pods if q is not p):
                return
            await self._delete_pod(sts, p)
            if ordered:
                return
        if not rolling or unhealthy:
            return
        target = update_rev["metadata"]["name"]
        for o in range(start + replicas - 1, start + partition - 1, -1):
            pod = slots.get(o)
            if pod is not None and revision_name(pod) != target:
                await self._delete_pod(sts, pod)
                return  # one at a time (maxUnavailable 1)

    async def _create_pod(self, sts: dict[str, Any], ordinal: int, rev: dict[str, Any]) -> None:
        m = sts["metadata"]
        name = f"{m['name']}-{ordinal}"
        tmpl = history.template_of(rev)
        pod = pod_from_template(sts, tmpl, name=name)
        pm = pod["metadata"]
        pm["labels"].update({POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal),
                             history.REVISION_HASH_LABEL: rev["metadata"]["name"]})
        pspec = pod["spec"]
        pspec["hostname"] = name
        if (sts.get("spec") or {}).get("serviceName"):
            pspec["subdomain"] = sts["spec"]["serviceName"]
        await self._ensure_claims(sts, ordinal, pod)
        try:
            await self.client.create(PODS, pod, m.get("namespace"))
        except errors.StatusError as e:
            if e.code == 409:
                return
            self.recorder.event(sts, "Warning", "FailedCreate",
                                f"create Pod {name} in StatefulSet {m['name']} failed error: {e.message}")
            raise
        self.recorder.event(sts, "Normal", "SuccessfulCreate",
                            f"create Pod {name} in StatefulSet {m['name']} successful")

    async def _ensure_claims(self, sts: dict[str, Any], ordinal: int, pod: dict[str, Any]) -> None:
        """Each volumeClaimTemplate becomes a claim, created if missing and mounted
        in place of the template's volume of the same name."""
        m = sts["metadata"]
        ns = m.get("namespace")
        spec = sts.get("spec") or {}
        policy = spec.get("persistentVolumeClaimRetentionPolicy") or {}
        volumes = [v for v in pod["spec"].get("volumes") or []]
        for t in spec.get("volumeClaimTemplates") or []:
            cname = claim_name(t, m["name"], ordinal)
            volumes = [v for v in volumes if v.get("name") != t["metadata"]["name"]]
            volumes.append({"name": t["metadata"]["name"], "persistentVolumeClaim": {"claimName": cname}})
            if self.pvc_informer.get(f"{ns}/{cname}") is not None:
                continue
            labels = dict(t["metadata"].get("labels") or {})
            labels.update((spec.get("selector") or {}).get("matchLabels") or {})
            pvc: dict[str, Any] = {
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": cname, "namespace": ns, "labels": labels,
                             **({"annotations": t["metadata"]["annotations"]}
                                if t["metadata"].get("annotations") else {})},
                "spec": deep_copy(t.get("spec") or {})}
            if policy.get("whenDeleted") == "Delete":
                ref = meta.owner_ref(sts, controller=True)
                pvc["metadata"]["ownerReferences"] = [ref]
            try:
                await self.client.create(PERSISTENTVOLUMECLAIMS, pvc, ns)
            except errors.StatusError as e:
                if e.code == 409:
                    continue
                self.recorder.event(sts, "Warning", "FailedCreate",
                                    f"create Claim {cname} for Pod {pod['metadata']['name']} in StatefulSet "
                                    f"{m['name']} failed error: {e.message}")
                raise
            self.recorder.event(sts, "Normal", "SuccessfulCreate",
                                f"create Claim {cname} Pod {pod['metadata']['name']} in StatefulSet "
                                f"{m['name']} success")
        if volumes:
            pod["spec"]["volumes"] = volumes

    async def _delete_pod(self, sts: dict[str, Any], pod: dict[str, Any]) -> None:
        m = sts["metadata"]
        name = pod["metadata"]["name"]
        policy = ((sts.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {})
        o = ordinal_of(m["name"], pod)
        replicas = int((sts.get("spec") or {}).get("replicas") or 0)
        if policy.get("whenScaled") == "Delete" and o is not None and o >= replicas:
            await self._claims_owned_by_pod(sts, pod, o)
        try:
            await self.client.delete(PODS, name, m.get("namespace"),
                                     preconditions={"uid": pod["metadata"]["uid"]})
        except errors.StatusError as e:
            if e.code in (404, 409):
                return
            self.recorder.event(sts, "Warning", "FailedDelete",
                                f"delete Pod {name} in StatefulSet {m['name']} failed error: {e.message}")
            raise
        self.recorder.event(sts, "Normal", "SuccessfulDelete",
                            f"delete Pod {name} in StatefulSet {m['name']} successful")

    async def _claims_owned_by_pod(self, sts: dict[str, Any], pod: dict[str, Any], o: int) -> None:
        """whenScaled: Delete — the condemned pod's claims go with it (the GC deletes them)."""
        ns = sts["metadata"].get("namespace")
        ref = {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"],
               "uid": pod["metadata"]["uid"]}
        for t in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
            cname = claim_name(t, sts["metadata"]["name"], o)
            pvc = self.pvc_informer.get(f"{ns}/{cname}")
            if pvc is None:
                continue
            refs = [r for r in pvc["metadata"].get("ownerReferences") or [] if r.get("kind") != "StatefulSet"]
            refs.append(ref)
            try:
                await self.client.patch(PERSISTENTVOLUMECLAIMS, cname, {"metadata": {"ownerReferences": refs}}, ns)
            except errors.StatusError as e:
                if e.code != 404:
                    raise

    async def _write_status(self, sts: dict[str, Any], pods: list[dict[str, Any]],
                            current_rev: dict[str, Any], update_rev: dict[str, Any], collisions: int) -> None:
        spec = sts.get("spec") or {}
        mrs = int(spec.get("minReadySeconds") or 0)
        now = podutil.utcnow()
        cur, upd = current_rev["metadata"]["name"], update_rev["metadata"]["name"]
        live = [p for p in pods if not meta.is_deleting(p)]
        st: dict[str, Any] = {
            "replicas": len(live),
            "readyReplicas": sum(1 for p in live if running_and_ready(p)),
            "availableReplicas": sum(1 for p in live if running_and_ready(p)
                                     and podutil.is_available(p, mrs, now)),
            "currentReplicas": sum(1 for p in live if revision_name(p) == cur),
            "updatedReplicas": sum(1 for p in live if revision_name(p) == upd),
            "currentRevision": cur, "updateRevision": upd, "collisionCount": collisions,
            "observedGeneration": int(sts["metadata"].get("generation") or 0),
        }
        want = int(spec.get("replicas") if spec.get("replicas") is not None else 1)
        if st["updatedReplicas"] == want and st["readyReplicas"] == want and st["replicas"] == want:
            st["currentRevision"] = upd  # the rollout is complete (completeRollingUpdate)
            st["currentReplicas"] = st["updatedReplicas"]
        for k in ("readyReplicas", "currentReplicas", "updatedReplicas"):
            if not st[k]:
                st.pop(k)
        if (sts.get("status") or {}).get("conditions"):
            st["conditions"] = sts["status"]["conditions"]
        if st == (sts.get("status") or {}):
            return
        body = dict(sts)
        body["status"] = st
        try:
            await self.client.update(STATEFULSETS, body, subresource="status")
        except errors.StatusError as e:
            if e.code != 404:
                raise
