"""VolumeZone (upstream pkg/scheduler/framework/plugins/volumezone): a pod whose
PersistentVolumeClaim is bound to a zonal PersistentVolume only fits nodes in
that volume's zone/region.

- PV labels `topology.kubernetes.io/zone|region` (and the deprecated
  `failure-domain.beta.kubernetes.io/zone|region`; values may list several
  zones joined by `__`) must match the node's label of the same key (a beta PV
  label also matches the node's GA label). A node with none of these labels
  fits, as upstream — "node(s) had no available volume zone".
- The PV's `spec.nodeAffinity.required` node selector terms must match the node
  — "node(s) had volume node affinity conflict". Upstream checks this in the
  VolumeBinding plugin; kybern has no VolumeBinding, so it is checked here with
  VolumeBinding's reason (local-path volumes are pinned to a node this way).
- Unbound claims do not constrain the pod (upstream's VolumeBinding would wait
  or provision; kybern's local-path provisioner follows the pod's node).
- A claim or bound volume that does not exist (yet) makes the pod
  unschedulable with upstream's message (`persistentvolumeclaim "x" not found`);
  it is retried when PVCs/PVs change.

PVCs and PVs are read from the scheduler's informers, once per cycle in PreFilter.
"""

from __future__ import annotations

from typing import Any

from kybern.machinery import nodeaffinity
from kybern.scheduler.framework import (
    STATUS_SKIP,
    UNSCHEDULABLE_AND_UNRESOLVABLE,
    CycleState,
    NodeInfo,
    PodInfo,
    Status,
)

ERR_REASON = "node(s) had no available volume zone"
ERR_NODE_AFFINITY = "node(s) had volume node affinity conflict"

BETA_ZONE = "failure-domain.beta.kubernetes.io/zone"
BETA_REGION = "failure-domain.beta.kubernetes.io/region"
ZONE = "topology.kubernetes.io/zone"
REGION = "topology.kubernetes.io/region"
TOPOLOGY_LABELS = (BETA_ZONE, BETA_REGION, ZONE, REGION)
GA_LABEL = {BETA_ZONE: ZONE, BETA_REGION: REGION}


def pv_topologies(pv: dict[str, Any]) -> list[tuple[str, frozenset[str]]]:
    """(label key, allowed values) for each topology label the volume carries."""
    labels = pv["metadata"].get("labels") or {}
    out = []
    for key in TOPOLOGY_LABELS:
        if key in labels:
            zones = frozenset(z.strip() for z in labels[key].split("__") if z.strip())
            if zones:
                out.append((key, zones))
    return out


class VolumeZone:
    name = "VolumeZone"

    def __init__(self) -> None:
        self._pvcs: Any = None  # Informers set by the scheduler (get(key) -> obj | None)
        self._pvs: Any = None

    def set_informers(self, informers: dict[str, Any]) -> None:
        self._pvcs = informers.get("persistentvolumeclaims")
        self._pvs = informers.get("persistentvolumes")

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        claims = [(v.get("persistentVolumeClaim") or {}).get("claimName", "")
                  for v in pod.spec.get("volumes") or () if "persistentVolumeClaim" in v]
        if not claims or self._pvcs is None or self._pvs is None:
            return STATUS_SKIP
        topologies: list[tuple[str, frozenset[str]]] = []
        node_terms: list[list[dict[str, Any]]] = []
        for claim in claims:
            if not claim:
                return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, "PersistentVolumeClaim had no pv name")
            pvc = self._pvcs.get(f"{pod.namespace}/{claim}")
            if pvc is None:
                return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, f'persistentvolumeclaim "{claim}" not found')
            pv_name = (pvc.get("spec") or {}).get("volumeName")
            if not pv_name:
                continue  # unbound: nothing pins it yet
            pv = self._pvs.get(pv_name)
            if pv is None:
                return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, f'persistentvolume "{pv_name}" not found')
            topologies.extend(pv_topologies(pv))
            req = ((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required")
            if req is not None:
                node_terms.append(req.get("nodeSelectorTerms") or [])
        if not topologies and not node_terms:
            return STATUS_SKIP
        state["VolumeZone"] = (topologies, node_terms)
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        topologies, node_terms = state["VolumeZone"]
        labels = node.labels
        if topologies and any(k in labels for k in TOPOLOGY_LABELS):
            for key, zones in topologies:
                v = labels.get(key)
                if v is None and key in GA_LABEL:
                    v = labels.get(GA_LABEL[key])
                if v is None or v not in zones:
                    return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON)
        for terms in node_terms:
            if not nodeaffinity.any_term_matches(terms, labels, node.name):
                return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_NODE_AFFINITY)
        return None
