"""The replication manager (upstream pkg/controller/replication): v1
ReplicationControllers get what ReplicaSets get — spec.replicas pods from the
template, adopted and released by selector, status counted the same way —
because upstream runs the ReplicaSet controller on them through an adapter.
The one difference in shape: an RC's selector is a plain label map."""

from __future__ import annotations

from typing import Any

from kybern.client.resources import REPLICATIONCONTROLLERS
from kybern.controllers.replicaset import ReplicaSetController


class ReplicationManager(ReplicaSetController):
    name = "replicationcontroller"
    resource = REPLICATIONCONTROLLERS
    component = "replication-controller"

    def selector(self, rc: dict[str, Any]) -> Any:
        sel = rc.get("spec", {}).get("selector")
        return {"matchLabels": sel} if isinstance(sel, dict) else None
