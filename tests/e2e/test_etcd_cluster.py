"""`kybern up --datastore etcd://...` as a user runs it: a real etcd, kubectl,
pods Running, and the objects still there after kybern restarts."""

from __future__ import annotations

import asyncio

import pytest

from kybern.storage.etcd import EtcdStore
from tests.conftest import free_port, start_cluster, stop_cluster
from tests.unit.storage.etcd_server import ETCD, EtcdServer

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(ETCD is None, reason="etcd binary not found: "
                                                  "`apt-get install etcd-server` (scripts/test does)")]


def etcd_keys(url: str, prefix: str) -> list[str]:
    async def run() -> list[str]:
        s = EtcdStore(url)
        try:
            return [kv.key for kv in (await s.list(prefix)).kvs]
        finally:
            await s.close()
    return asyncio.run(run())


def test_cluster_on_etcd_keeps_state_across_restart(tmp_path):
    etcd = EtcdServer(tmp_path / "etcd").start()
    try:
        url = etcd.url()
        c = start_cluster(tmp_path / "c", "--datastore", url)
        try:
            c.kubectl("create", "deployment", "web", "--image=demo:v1", "--replicas=2", "--", "python3", "-c",
                      "import time; print('up', flush=True); time.sleep(3600)")

            def running():
                pods = c.kjson("get", "pods")["items"]
                return len(pods) == 2 and all(p["status"].get("phase") == "Running" for p in pods) and pods
            pods = c.wait_for(running, timeout=30, what="2 pods Running")
        finally:
            stop_cluster(c)
        # the objects live in etcd, under the keys kube-apiserver uses
        keys = etcd_keys(url, "/registry/")
        assert "/registry/apps/deployments/default/web" in keys
        assert {f"/registry/core/pods/default/{p['metadata']['name']}" for p in pods} <= set(keys)
        assert not (tmp_path / "c" / "data" / "state.db").exists()

        c2 = start_cluster(tmp_path / "c", "--datastore", url)
        try:
            dep = c2.kjson("get", "deployment", "web")
            assert dep["spec"]["replicas"] == 2
            c2.wait_for(running, timeout=30, what="2 pods Running after restart")
            c2.kubectl("delete", "deployment", "web")
            c2.wait_for(lambda: not c2.kjson("get", "replicasets")["items"], timeout=20, what="replicaset gone")
        finally:
            stop_cluster(c2)
    finally:
        etcd.stop()


def test_two_servers_on_one_etcd_run_one_scheduler_and_controller_manager(tmp_path):
    """Two clusters processes on one etcd, as two control-plane machines: with etcd the
    scheduler, controller manager and ServiceLB are leader-elected, so the second server's
    stand by (a Deployment gets its replicas once, not twice); when the first is killed
    (no Lease released), the second's take over once the Leases run out and schedule and
    reconcile again. Upstream's --leader-elect-* timing flags shorten the Leases to 4 s."""
    import os
    import signal
    import time

    etcd = EtcdServer(tmp_path / "etcd").start()
    a = b = None
    try:
        url = etcd.url()
        timing = ("--leader-elect-lease-duration", "4", "--leader-elect-renew-deadline", "3",
                  "--leader-elect-retry-period", "0.5")
        def ingress_ports():
            return "--ingress-http-port", str(free_port()), "--ingress-https-port", str(free_port())
        a = start_cluster(tmp_path / "a", "--datastore", url, "--pod-network", "host", *timing, *ingress_ports())
        # the second "machine" publishes another address for Ingresses
        b = start_cluster(tmp_path / "b", "--datastore", url, "--no-node", "--address", "127.0.0.2", *timing,
                          *ingress_ports(), wait_node=False)

        def holders() -> dict[str, tuple[str, int]]:
            items = b.kjson("get", "leases", "-n", "kube-system")["items"]
            return {i["metadata"]["name"]: (i["spec"].get("holderIdentity"), i["spec"].get("leaseTransitions"))
                    for i in items}
        first = b.wait_for(lambda: len(holders()) == 4 and holders(), timeout=20, what="four Leases held")
        assert set(first) == {"kube-scheduler", "kube-controller-manager", "cloud-controller-manager",
                              "ingress-nginx-leader"}
        # both serve Ingresses; only the Lease holder writes their status, so the two
        # addresses do not overwrite each other
        a.kubectl("create", "ingress", "web", "--rule=web.example/*=web:80")

        def lb_status():
            o = a.kjson("get", "ingress", "web")
            return (o["metadata"]["resourceVersion"], o.get("status", {}).get("loadBalancer", {}).get("ingress"))
        rv, lb = a.wait_for(lambda: (lambda r: r if r[1] else None)(lb_status()), timeout=20, what="ingress status")
        time.sleep(1.5)
        assert lb_status() == (rv, lb), "the Ingress status is rewritten: the two servers fight over it"
        a.kubectl("create", "deployment", "web", "--image=demo:v1", "--replicas=2", "--", "sleep", "3600")
        a.wait_for(lambda: len(a.kjson("get", "pods")["items"]) == 2, timeout=30, what="2 pods")
        time.sleep(1)
        assert len(b.kjson("get", "pods")["items"]) == 2  # one controller manager made them

        os.killpg(a.proc.pid, signal.SIGKILL)  # the first machine is gone: nothing is released
        a.proc.wait(10)
        b.kubectl("scale", "deployment", "web", "--replicas=3")
        b.kubectl("run", "late", "--image=demo:v1", "--", "sleep", "1")
        t_killed = time.monotonic()
        b.wait_for(lambda: b.kjson("get", "pod", "late")["spec"].get("nodeName"), timeout=40,
                   what="the second server's scheduler binding a pod")
        b.wait_for(lambda: len(b.kjson("get", "pods", "-l", "app=web")["items"]) == 3, timeout=20,
                   what="the second server's controllers scaling up")
        # each Lease is taken over at the candidate's next try after it runs out
        def taken_over():
            h = holders()
            return h if all(h[n][0] != first[n][0] for n in first) else None
        after = b.wait_for(taken_over, timeout=15, what="all three Leases taken over")
        assert all(after[n][1] == 1 for n in first), (first, after)
        b.wait_for(lambda: b.kjson("get", "ingress", "web").get("status", {})
                   .get("loadBalancer", {}).get("ingress") == [{"ip": "127.0.0.2"}], timeout=10,
                   what="the second server publishing its address once it leads")
        assert time.monotonic() - t_killed < 12, "the 4 s Leases were taken over as if they lasted 15 s"
    finally:
        for c in (b, a):
            if c is not None:
                stop_cluster(c)
        etcd.stop()
