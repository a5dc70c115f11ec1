"""Pod CIDRs across machines: an agent never claims another Node's podCIDR, and
routes go to the podCIDRs of nodes whose InternalIP is not on this machine."""

from __future__ import annotations

import os

import kybern.network.podnet as podnet
from kybern.network.noderoutes import wanted


def node(name: str, cidr: str | None, ip: str | None) -> dict:
    return {"metadata": {"name": name}, "spec": {"podCIDR": cidr} if cidr else {},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}] if ip else []}}


def test_routes_only_to_nodes_on_other_machines():
    nodes = [node("me", "10.244.0.0/24", "198.51.100.10"),
             node("remote", "10.244.1.0/24", "198.51.100.11"),  # TEST-NET-2: not an address of this machine
             node("same-machine", "10.244.2.0/24", "127.0.0.1"),  # its bridge is in this host's namespace
             node("no-cidr", None, "198.51.100.12"),
             node("clash", "10.244.0.0/24", "198.51.100.13")]  # our own CIDR: never routed away
    assert wanted(nodes, "me", "10.244.0.0/24") == {"10.244.1.0/24": "198.51.100.11"}


def test_claim_skips_other_nodes_cidrs_but_keeps_our_own(tmp_path, monkeypatch):
    monkeypatch.setattr(podnet, "LOCK_DIR", tmp_path / "locks")
    a = podnet.PodNetwork(tmp_path / "a", "a")
    a._claim(None, taken={"10.244.0.0/24", "10.244.1.0/24"})  # two nodes on other machines
    assert a.pod_cidr == "10.244.2.0/24"
    b = podnet.PodNetwork(tmp_path / "b", "b")
    b._claim("10.244.5.0/24", taken={"10.244.5.0/24"})  # ours already, even if another Node shows it too
    assert b.pod_cidr == "10.244.5.0/24"
    c = podnet.PodNetwork(tmp_path / "a", "a")  # a's last CIDR, now another Node's: not reused
    os.close(a._lock_fd)  # a stops
    c._claim(None, taken={"10.244.2.0/24"})
    assert c.pod_cidr != "10.244.2.0/24"
