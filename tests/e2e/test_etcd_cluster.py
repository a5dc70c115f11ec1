"""`kybern up --datastore etcd://...` as a user runs it: a real etcd, kubectl,
pods Running, and the objects still there after kybern restarts."""

from __future__ import annotations

import asyncio

import pytest

from kybern.storage.etcd import EtcdStore
from tests.conftest import start_cluster, stop_cluster
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
