"""How a Deployment rolls out (upstream rolling.go and recreate.go).

RollingUpdate: grow the new ReplicaSet while the total stays within
replicas + maxSurge, shrink old ones while at least replicas - maxUnavailable
stay available (unhealthy old replicas go first). Recreate: scale every old
ReplicaSet to zero, wait until their pods are gone, then scale the new one up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kybern.controllers import deployment_util as du

if TYPE_CHECKING:
    from kybern.controllers.deployment import DeploymentController, Sync


async def rollout_rolling(dc: DeploymentController, s: Sync, rss: list[dict[str, Any]]) -> None:
    new_rs, old = await dc.new_and_old(s, rss, create=True)
    assert new_rs is not None
    scaled, new_rs = await _reconcile_new(dc, s, old + [new_rs], new_rs)
    if scaled:
        await dc.sync_status(s, old + [new_rs], new_rs)
        return
    scaled, old = await _reconcile_old(dc, s, old, new_rs)
    if scaled:
        await dc.sync_status(s, old + [new_rs], new_rs)
        return
    if du.complete(s.d, s.d.get("status") or {}):
        await dc.cleanup(s, old)
    await dc.sync_status(s, old + [new_rs], new_rs)


async def _reconcile_new(dc: DeploymentController, s: Sync, all_rss: list[dict[str, Any]],
                         new_rs: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    want = du.replicas(s.d)
    cur = du.rs_replicas(new_rs)
    if cur == want:
        return False, new_rs
    if cur > want:
        return await dc.scale_rs(s, new_rs, want)
    return await dc.scale_rs(s, new_rs, du.new_rs_new_replicas(s.d, all_rss, new_rs))


def max_scaled_down(d: dict[str, Any], all_rss: list[dict[str, Any]], new_rs: dict[str, Any]) -> int:
    """How many old replicas may go now without dropping below minAvailable,
    counting the new RS's not-yet-available pods as unavailable."""
    min_available = du.replicas(d) - du.max_unavailable(d)
    new_unavailable = du.rs_replicas(new_rs) - du.rs_status(new_rs, "availableReplicas")
    return du.sum_spec(all_rss) - min_available - new_unavailable


async def _reconcile_old(dc: DeploymentController, s: Sync, old: list[dict[str, Any]],
                         new_rs: dict[str, Any]) -> tuple[bool, list[dict[str, Any]]]:
    if du.sum_spec(old) == 0:
        return False, old
    budget = max_scaled_down(s.d, old + [new_rs], new_rs)
    if budget <= 0:
        return False, old
    updated: dict[str, dict[str, Any]] = {}
    cleaned = 0
    # 1. unhealthy old replicas first: they cost no availability
    for rs in du.by_creation(du.active(old)):
        if cleaned >= budget:
            break
        unhealthy = du.rs_replicas(rs) - du.rs_status(rs, "availableReplicas")
        if unhealthy <= 0:
            continue
        n = min(budget - cleaned, unhealthy)
        _, updated[rs["metadata"]["uid"]] = await dc.scale_rs(s, rs, du.rs_replicas(rs) - n)
        cleaned += n
    old = [updated.get(rs["metadata"]["uid"], rs) for rs in old]
    # 2. then healthy ones, oldest first, down to minAvailable
    min_available = du.replicas(s.d) - du.max_unavailable(s.d)
    available = du.sum_status(old + [new_rs], "availableReplicas")
    scaled = 0
    if available > min_available:
        total = available - min_available
        for rs in du.by_creation(du.active(old)):
            if scaled >= total:
                break
            n = min(du.rs_replicas(rs), total - scaled)
            _, updated[rs["metadata"]["uid"]] = await dc.scale_rs(s, rs, du.rs_replicas(rs) - n)
            scaled += n
    old = [updated.get(rs["metadata"]["uid"], rs) for rs in old]
    return cleaned + scaled > 0, old


async def rollout_recreate(dc: DeploymentController, s: Sync, rss: list[dict[str, Any]]) -> None:
    new_rs, old = await dc.new_and_old(s, rss, create=False)
    scaled = False
    updated: dict[str, dict[str, Any]] = {}
    for rs in du.active(old):
        changed, updated[rs["metadata"]["uid"]] = await dc.scale_rs(s, rs, 0)
        scaled = scaled or changed
    old = [updated.get(rs["metadata"]["uid"], rs) for rs in old]
    if scaled:
        await dc.sync_status(s, old + [new_rs], new_rs)
        return
    if old_pods_running(old, dc.pods_of(old)):
        await dc.sync_status(s, old + [new_rs], new_rs)
        return
    if new_rs is None:
        new_rs, old = await dc.new_and_old(s, rss, create=True)
    assert new_rs is not None
    _, new_rs = await dc.scale_rs(s, new_rs, du.replicas(s.d))
    if du.complete(s.d, s.d.get("status") or {}):
        await dc.cleanup(s, old)
    await dc.sync_status(s, old + [new_rs], new_rs)


def old_pods_running(old: list[dict[str, Any]], pods: list[dict[str, Any]]) -> bool:
    """Any old pod not yet terminal (a terminating pod still runs: wait for it)."""
    if du.sum_status(old, "replicas") > 0:
        return True
    for p in pods:
        phase = p.get("status", {}).get("phase")
        if phase in ("Failed", "Succeeded"):
            continue
        return True  # Unknown counts too: it might still run
    return False
