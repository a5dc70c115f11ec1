"""`kybern up` as a process: refuses a busy data dir, keeps state across a
restart, and loses no acknowledged write when killed mid-burst."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

import pytest

from tests.conftest import start_cluster, stop_cluster

pytestmark = pytest.mark.e2e


def test_second_up_on_same_data_dir_refuses(cluster):
    p = subprocess.run([sys.executable, "-m", "kybern.cli.main", "up", "--data-dir", str(cluster.dir / "data"),
                        "--port", "0", "--kubeconfig", str(cluster.dir / "other-kubeconfig")],
                       capture_output=True, text=True, timeout=30, env=cluster.env)
    assert p.returncode != 0
    assert "in use by another kybern" in p.stderr
    # the running cluster is unharmed
    assert "node-1" in cluster.kubectl("get", "nodes").stdout


def test_restart_keeps_state_and_acknowledged_writes_survive_sigkill(tmp_path):
    c = start_cluster(tmp_path / "c")
    try:
        c.kubectl("create", "namespace", "keep")
        c.kubectl("create", "configmap", "before", "-n", "keep", "--from-literal=a=1")
        # a burst of writes from a client; kill -9 the server while it runs
        from kubernetes import client

        api = client.CoreV1Api(c.api_client())
        acked: list[str] = []
        stop = threading.Event()

        def writer():
            i = 0
            while not stop.is_set():
                name = f"w-{i:05d}"
                try:
                    api.create_namespaced_config_map("keep", {"metadata": {"name": name}, "data": {"i": str(i)}},
                                                     _request_timeout=5)
                except Exception:
                    return
                acked.append(name)
                i += 1

        t = threading.Thread(target=writer)
        t.start()
        c.wait_for(lambda: len(acked) > 200, timeout=60, what="200 acknowledged writes")
        c.proc.send_signal(signal.SIGKILL)
        c.proc.wait()
        stop.set()
        t.join(10)
        assert len(acked) > 200
    finally:
        stop_cluster(c)

    c2 = start_cluster(tmp_path / "c", wait_node=True)
    try:
        cms = json.loads(c2.kubectl("get", "configmaps", "-n", "keep", "-o", "json").stdout)["items"]
        names = {cm["metadata"]["name"] for cm in cms}
        assert "before" in names
        missing = [n for n in acked if n not in names]
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
        # in order: resourceVersions increase with the order writes were acknowledged
        rv = {cm["metadata"]["name"]: int(cm["metadata"]["resourceVersion"]) for cm in cms}
        seq = [rv[n] for n in acked]
        assert seq == sorted(seq)
    finally:
        stop_cluster(c2)
