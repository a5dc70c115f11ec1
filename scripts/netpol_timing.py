#!/usr/bin/env python3
"""How long one NetworkPolicy sync takes (docs/networking.md, "NetworkPolicy"):
P policies x N pods, synthetic (10 namespaces, every pod on this node's podCIDR,
each policy selecting pods by label with ingress and egress rules: pod and
namespace selectors, an ipBlock with except, a named port). Prints the time to
build and render the table (the enforcer's CPU on the event loop) and, with
--apply (root, nft), the `nft -f` that replaces it, twice; the table
`inet kybern-netpol-timing` is deleted afterwards.

    python3 scripts/netpol_timing.py 100 200 --apply
"""

from __future__ import annotations

import argparse
import subprocess
import time

from kybern.network import netpol_rules


def cluster(policies: int, pods: int) -> tuple[list, list, list]:
    nss = [f"ns{i}" for i in range(10)]
    pod_objs = [{"metadata": {"namespace": nss[i % 10], "name": f"p{i}",
                              "labels": {"app": f"a{i % 20}", "tier": f"t{i % 3}"}},
                 "spec": {"nodeName": "n1",
                          "containers": [{"ports": [{"name": "http", "containerPort": 8000 + i % 5}]}]},
                 "status": {"podIP": f"10.244.{i // 250}.{i % 250 + 2}", "phase": "Running"}} for i in range(pods)]
    pols = [{"metadata": {"namespace": nss[j % 10], "name": f"pol{j}"}, "spec": {
        "podSelector": {"matchLabels": {"app": f"a{j % 20}"}}, "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"tier": f"t{j % 3}"}}},
                              {"namespaceSelector": {"matchLabels": {"team": "x"}}}],
                     "ports": [{"port": "http", "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}], "ports": [{"port": 443}]},
                   {"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": f"a{(j + 1) % 20}"}}}]}]}}
            for j in range(policies)]
    namespaces = [{"metadata": {"name": n, "labels": {"team": "x" if i % 2 else "y"}}} for i, n in enumerate(nss)]
    return pols, pod_objs, namespaces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("policies", type=int)
    ap.add_argument("pods", type=int)
    ap.add_argument("--apply", action="store_true", help="also time `nft -f` (root)")
    a = ap.parse_args()
    pols, pods, namespaces = cluster(a.policies, a.pods)
    rounds = 5
    t = time.perf_counter()
    for _ in range(rounds):
        plan = netpol_rules.build(pols, pods, namespaces, pod_cidr="10.244.0.0/24", node_name="n1")
        script = netpol_rules.render_nft("kybern-netpol-timing", plan)
    ms = (time.perf_counter() - t) / rounds * 1000
    print(f"{a.policies} policies x {a.pods} pods: {len(plan.isolated)} isolated, {len(script)} bytes of rules, "
          f"build+render {ms:.1f} ms")
    if a.apply:
        try:
            for what in ("create", "replace"):
                t = time.perf_counter()
                subprocess.run(["nft", "-f", "-"], input=script.encode(), check=True)
                print(f"nft -f ({what}): {(time.perf_counter() - t) * 1000:.1f} ms")
        finally:
            subprocess.run(["nft", "delete", "table", "inet", "kybern-netpol-timing"], check=False,
                           stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
