"""The multi-zone example: three agents labelled with three zones; a Deployment of
6 replicas ends with 2 pods per zone (the scheduler's default topology spread)."""

from __future__ import annotations

import collections

import pytest

from tests.conftest import start_agent, start_cluster, stop_agent, stop_cluster

pytestmark = pytest.mark.e2e


def test_six_replicas_spread_two_per_zone(tmp_path):
    # as the example: a cluster without a node of its own, three agents in three zones
    c = start_cluster(tmp_path / "mz", "--no-node", wait_node=False)
    agents = [start_agent(c, f"node-{z}", tmp_path / f"agent-{z}", "--zone", f"zone-{z}") for z in "abc"]
    try:
        c.wait_for(lambda: c.kubectl("get", "nodes", "--no-headers").stdout.count(" Ready ") == 3,
                   timeout=40, what="three nodes Ready")
        zones = {n["metadata"]["name"]: n["metadata"]["labels"]["topology.kubernetes.io/zone"]
                 for n in c.kjson("get", "nodes")["items"]}
        assert sorted(zones.values()) == ["zone-a", "zone-b", "zone-c"]
        c.kubectl("create", "deployment", "spread", "--image=demo:v1", "--replicas=6", "--", "sleep", "3600")
        c.kubectl("rollout", "status", "deployment/spread", "--timeout=60s")
        pods = c.kjson("get", "pods", "-l", "app=spread")["items"]
        per_zone = collections.Counter(zones[p["spec"]["nodeName"]] for p in pods)
        assert per_zone == {"zone-a": 2, "zone-b": 2, "zone-c": 2}, per_zone
    finally:
        for a in agents:
            stop_agent(a)
        stop_cluster(c)
