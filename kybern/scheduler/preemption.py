"""DefaultPreemption (upstream pkg/scheduler/framework/plugins/defaultpreemption
and framework/preemption): when a pod fits nowhere, find a node where removing
pods of lower priority would let it fit, nominate the pod to that node and
delete those pods (the victims).

- Eligible: not `preemptionPolicy: Never`, and not while a lower-priority pod
  this scheduler preempted is still terminating on the pod's nominated node.
- Candidates: nodes that failed with a resolvable status (Unschedulable, e.g.
  "Insufficient cpu"; not a taint or a selector). On each, every pod of lower
  priority is removed; if the pod then passes the filters, the removed pods are
  put back one by one, most important first (higher priority, then older), as
  long as the pod still fits: those that cannot be put back are the victims.
  Pods whose eviction would break a PodDisruptionBudget are put back first.
- The node: fewest PDB violations, then the lowest highest-victim priority, the
  smallest sum of victim priorities, the fewest victims, the latest start of the
  most important victims.
- Then each victim gets the DisruptionTarget condition (PreemptionByScheduler),
  an event `Preempted` ("Preempted by pod <uid> on node <node>") and is deleted
  with its grace period; the pod gets `status.nominatedNodeName`, and is tried
  again when the victims are gone (it goes to its nominated node first).
- Nominated pods hold their place: a pod of lower or equal priority is filtered
  on a node as if the pods nominated there (of higher or equal priority) ran on it.

Limits: filters that precompute over the whole cluster in PreFilter
(PodTopologySpread, InterPodAffinity) see the victims as still there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kybern.client.resources import Resource
from kybern.machinery.selectors import selector_matches
from kybern.scheduler.framework import (
    UNSCHEDULABLE,
    UNSCHEDULABLE_AND_UNRESOLVABLE,
    CycleState,
    NodeInfo,
    PodInfo,
    Status,
    fit_error_message,
)

PDBS = Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")
MAX_CANDIDATES = 100  # upstream: 10 % of the nodes, at least 100
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
TERMINATING_VICTIM = "not eligible due to a terminating pod on the nominated node."
NEVER = "not eligible due to preemptionPolicy=Never."


@dataclass
class Candidate:
    node: str
    victims: list[PodInfo]  # most important first
    pdb_violations: int


def terminating_by_preemption(pi: PodInfo) -> bool:
    if not pi.terminating:
        return False
    return any(c.get("type") == "DisruptionTarget" and c.get("reason") == "PreemptionByScheduler"
               for c in (pi.pod.get("status") or {}).get("conditions") or [])


def _start_time(pi: PodInfo) -> str:
    st = pi.pod.get("status") or {}
    return st.get("startTime") or pi.pod["metadata"].get("creationTimestamp") or ""


def _importance(pi: PodInfo) -> tuple[int, str]:
    """util.MoreImportantPod as a sort key: higher priority, then the older start first."""
    return (-pi.priority, _start_time(pi))


class Nominator:
    """Pods nominated to nodes by preemption (upstream's nominator), from our own
    decisions and from pending pods' status.nominatedNodeName."""

    def __init__(self) -> None:
        self.node_of: dict[str, str] = {}
        self.by_node: dict[str, dict[str, PodInfo]] = {}

    def add(self, pi: PodInfo, node: str) -> None:
        self.remove(pi.key)
        self.node_of[pi.key] = node
        self.by_node.setdefault(node, {})[pi.key] = pi

    def remove(self, key: str) -> None:
        node = self.node_of.pop(key, None)
        if node is not None:
            pods = self.by_node.get(node) or {}
            pods.pop(key, None)
            if not pods:
                self.by_node.pop(node, None)

    def holding(self, pi: PodInfo, node: NodeInfo) -> NodeInfo:
        """`node` with the pods nominated to it of at least `pi`'s priority added
        (RunFilterPluginsWithNominatedPods); `node` itself when there are none."""
        nominated = self.by_node.get(node.name)
        if not nominated:
            return node
        extra = [p for k, p in nominated.items() if k != pi.key and p.priority >= pi.priority]
        if not extra:
            return node
        clone = node.clone()
        for p in extra:
            clone.add_pod(p)
        return clone


def eligible(pi: PodInfo, nominated_node: NodeInfo | None, nominated_status: Status | None) -> str:
    """PodEligibleToPreemptOthers: "" when eligible, else why not."""
    if (pi.spec.get("preemptionPolicy") or "PreemptLowerPriority") == "Never":
        return NEVER
    unresolvable = nominated_status is not None and nominated_status.code == UNSCHEDULABLE_AND_UNRESOLVABLE
    if nominated_node is not None and not unresolvable:
        for p in nominated_node.pods.values():
            if p.priority < pi.priority and terminating_by_preemption(p):
                return TERMINATING_VICTIM
    return ""


def _pdb_violating(victims: list[PodInfo], pdbs: list[dict[str, Any]]) -> tuple[list[PodInfo], list[PodInfo]]:
    """filterPodsWithPDBViolation: (violating, non-violating), order kept."""
    allowed = [int((p.get("status") or {}).get("disruptionsAllowed") or 0) for p in pdbs]
    violating, ok = [], []
    for v in victims:
        breaks = False
        for i, pdb in enumerate(pdbs):
            if pdb["metadata"].get("namespace") != v.namespace:
                continue
            sel = (pdb.get("spec") or {}).get("selector")
            if not sel or (not sel.get("matchLabels") and not sel.get("matchExpressions")):
                continue  # an empty selector matches nothing here, as upstream
            if not selector_matches(sel, v.labels):
                continue
            if v.pod["metadata"]["name"] in ((pdb.get("status") or {}).get("disruptedPods") or {}):
                continue  # already being disrupted: counted
            allowed[i] -= 1
            if allowed[i] < 0:
                breaks = True
        (violating if breaks else ok).append(v)
    return violating, ok


def select_victims(pi: PodInfo, node: NodeInfo, fits: Any,
                   pdbs: list[dict[str, Any]]) -> tuple[Candidate | None, Status]:
    """SelectVictimsOnNode on a copy of `node`; `fits(node_info)` runs the filters."""
    trial = node.clone()
    removed = [p for p in node.pods.values() if p.priority < pi.priority]
    if not removed:
        return None, Status(UNSCHEDULABLE, NO_VICTIMS)
    for p in removed:
        trial.remove_pod(p.key)
    st = fits(trial)
    if st is not None:
        return None, st
    removed.sort(key=_importance)
    violating, ok = _pdb_violating(removed, pdbs)
    victims: list[PodInfo] = []
    n_violating = 0
    for group, counts in ((violating, True), (ok, False)):
        for p in group:
            trial.add_pod(p)
            if fits(trial) is not None:
                trial.remove_pod(p.key)
                victims.append(p)
                n_violating += counts
    victims.sort(key=_importance)
    return Candidate(node.name, victims, n_violating), Status(0)


def pick_one(candidates: list[Candidate]) -> Candidate:
    """pickOneNodeForPreemption: each rule narrows the ties of the one before."""
    for c in candidates:
        if not c.victims:
            return c

    def narrow(cs: list[Candidate], f: Any) -> list[Candidate]:
        best = min(f(c) for c in cs)
        return [c for c in cs if f(c) == best]

    cs = narrow(candidates, lambda c: c.pdb_violations)
    cs = narrow(cs, lambda c: c.victims[0].priority)
    cs = narrow(cs, lambda c: sum(v.priority + 2**31 for v in c.victims))
    cs = narrow(cs, lambda c: len(c.victims))

    def earliest_top(c: Candidate) -> str:  # GetEarliestPodStartTime of the top-priority victims
        top = c.victims[0].priority
        return min(_start_time(v) for v in c.victims if v.priority == top)
    latest = max(earliest_top(c) for c in cs)
    return next(c for c in cs if earliest_top(c) == latest)


def find_candidates(pi: PodInfo, nodes: list[NodeInfo], statuses: dict[str, Status], fits: Any,
                    pdbs: list[dict[str, Any]]) -> tuple[list[Candidate], dict[str, Status]]:
    """DryRunPreemption over the nodes whose failure is resolvable; the statuses of
    the others say preemption is not helpful."""
    out: dict[str, Status] = {}
    candidates: list[Candidate] = []
    for n in nodes:
        st = statuses.get(n.name)
        if st is None or st.code != UNSCHEDULABLE:
            out[n.name] = Status(st.code if st else UNSCHEDULABLE, NOT_HELPFUL)
            continue
        if len(candidates) >= MAX_CANDIDATES:
            continue
        c, why = select_victims(pi, n, fits, pdbs)
        if c is None:
            out[n.name] = why
        else:
            candidates.append(c)
    return candidates, out


def preempt(pi: PodInfo, nodes: list[NodeInfo], statuses: dict[str, Status], state: CycleState,
            filters: list[Any], run_filters: Any, nominator: Nominator,
            pdbs: list[dict[str, Any]]) -> tuple[Candidate | None, str]:
    """(the chosen candidate, "") or (None, the PostFilter message: "preemption: ...")."""
    by_name = {n.name: n for n in nodes}
    nominated = nominator.node_of.get(pi.key) or (pi.pod.get("status") or {}).get("nominatedNodeName")
    why = eligible(pi, by_name.get(nominated or ""), statuses.get(nominated or ""))
    if why:
        return None, "preemption: " + why

    def fits(node: NodeInfo) -> Status | None:
        return run_filters(filters, state, pi, nominator.holding(pi, node))

    candidates, per_node = find_candidates(pi, nodes, statuses, fits, pdbs)
    if not candidates:
        return None, "preemption: " + fit_error_message(len(nodes), per_node)
    return pick_one(candidates), ""
