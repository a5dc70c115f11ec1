"""Jobs, CronJobs, DaemonSets and StatefulSets as a user drives them with kubectl."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import start_agent, start_cluster, stop_agent, stop_cluster

pytestmark = pytest.mark.e2e

SH_JOB = """
apiVersion: batch/v1
kind: Job
metadata: {name: %(name)s}
spec:
  parallelism: %(parallelism)d
  completions: %(completions)d
  %(extra)s
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: demo:v1
        command: ["sh", "-c", %(script)s]
"""


def job(name: str, script: str, parallelism: int, completions: int, extra: str = "") -> str:
    return SH_JOB % {"name": name, "script": json.dumps(script), "parallelism": parallelism,
                     "completions": completions, "extra": extra}


def test_job_two_by_four_completes(cluster, namespace):
    ns = ["-n", namespace]
    cluster.kubectl("apply", *ns, "-f", "-", input=job("pi", "sleep 0.3; echo done", 2, 4))
    cluster.kubectl("wait", *ns, "--for=condition=complete", "job/pi", "--timeout=60s")
    j = cluster.kjson("get", *ns, "job", "pi")
    st = j["status"]
    assert st["succeeded"] == 4 and not st.get("failed") and st.get("completionTime")
    assert {c["type"] for c in st["conditions"]} >= {"Complete", "SuccessCriteriaMet"}
    pods = cluster.kjson("get", *ns, "pods", "-l", "job-name=pi")["items"]
    assert len(pods) == 4 and all(p["status"]["phase"] == "Succeeded" for p in pods)
    labels = pods[0]["metadata"]["labels"]
    assert labels["batch.kubernetes.io/job-name"] == "pi"
    assert labels["batch.kubernetes.io/controller-uid"] == j["metadata"]["uid"]
    assert all("batch.kubernetes.io/job-tracking" not in (p["metadata"].get("finalizers") or []) for p in pods)
    assert "4/4" in cluster.kubectl("get", *ns, "job", "pi").stdout


def test_indexed_job_gives_each_pod_its_index(cluster, namespace):
    ns = ["-n", namespace]
    cluster.kubectl("apply", *ns, "-f", "-",
                    input=job("idx", "echo $JOB_COMPLETION_INDEX $HOSTNAME", 3, 3, "completionMode: Indexed"))
    cluster.kubectl("wait", *ns, "--for=condition=complete", "job/idx", "--timeout=60s")
    assert cluster.kjson("get", *ns, "job", "idx")["status"]["completedIndexes"] == "0-2"
    out = set()
    for p in cluster.kjson("get", *ns, "pods", "-l", "job-name=idx")["items"]:
        out.add(cluster.kubectl("logs", *ns, p["metadata"]["name"]).stdout.strip())
    assert out == {"0 idx-0", "1 idx-1", "2 idx-2"}


def test_failing_job_hits_its_backoff_limit(cluster, namespace):
    ns = ["-n", namespace]
    cluster.kubectl("apply", *ns, "-f", "-", input=job("bad", "exit 42", 1, 1, """backoffLimit: 3
  podFailurePolicy:
    rules: [{action: FailJob, onExitCodes: {operator: In, values: [42]}}]"""))
    cluster.kubectl("wait", *ns, "--for=condition=failed", "job/bad", "--timeout=60s")
    conds = {c["type"]: c for c in cluster.kjson("get", *ns, "job", "bad")["status"]["conditions"]}
    assert conds["Failed"]["reason"] == "PodFailurePolicy"
    assert "failed with exit code 42 matching FailJob rule at index 0" in conds["Failed"]["message"]


def test_cronjob_runs_a_job_from_its_template(cluster, namespace):
    ns = ["-n", namespace]
    cluster.kubectl("create", "cronjob", "tick", *ns, "--image=demo:v1", "--schedule=0 3 * * *",
                    "--", "sh", "-c", "echo tick")
    cluster.kubectl("create", "job", "tick-now", *ns, "--from=cronjob/tick")
    cluster.kubectl("wait", *ns, "--for=condition=complete", "job/tick-now", "--timeout=60s")
    cluster.wait_for(lambda: cluster.kjson("get", *ns, "cronjob", "tick").get("status", {})
                     .get("lastSuccessfulTime"), what="lastSuccessfulTime")
    bad = cluster.kubectl("create", "cronjob", "bad", *ns, "--image=demo:v1", "--schedule=61 * * * *",
                          check=False)
    assert bad.returncode != 0
    assert 'spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61' in bad.stderr


STS = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: demo:v1
        command: ["sh", "-c", "echo $HOSTNAME >> data/log; cat data/log; exec sleep 3600"]
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      storageClassName: local-path
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 10Mi}}
"""


def test_statefulset_order_identity_and_claims(cluster, namespace):
    ns = ["-n", namespace]
    cluster.kubectl("apply", *ns, "-f", "-", input=STS)
    cluster.kubectl("rollout", "status", *ns, "sts/web", "--timeout=60s")
    pods = {p["metadata"]["name"]: p for p in cluster.kjson("get", *ns, "pods", "-l", "app=web")["items"]}
    assert sorted(pods) == ["web-0", "web-1", "web-2"]
    for i in range(1, 3):  # each ordinal was created only once the previous one was Ready
        ready = next(c for c in pods[f"web-{i - 1}"]["status"]["conditions"] if c["type"] == "Ready")
        assert ready["lastTransitionTime"] <= pods[f"web-{i}"]["metadata"]["creationTimestamp"]
    p1 = pods["web-1"]
    assert p1["spec"]["hostname"] == "web-1" and p1["spec"]["subdomain"] == "web"
    assert p1["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "1"
    assert p1["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "web-1"
    claims = cluster.kjson("get", *ns, "pvc")["items"]
    assert sorted(c["metadata"]["name"] for c in claims) == ["data-web-0", "data-web-1", "data-web-2"]
    assert all(c["status"]["phase"] == "Bound" for c in claims)
    st = cluster.kjson("get", *ns, "sts", "web")["status"]
    assert st["readyReplicas"] == 3 and st["currentRevision"] == st["updateRevision"]

    # the claim outlives its pod; the successor mounts the same data. Not `--wait=true`:
    # kubectl 1.32 waits for a DELETED event and can miss it when the pod is gone and
    # recreated under its name between its GET and its LIST (newer kubectl compares
    # UIDs; docs/node.md "Deleting a pod")
    cluster.kubectl("delete", *ns, "pod", "web-1", "--wait=false")
    cluster.wait_for(lambda: cluster.kubectl("get", *ns, "pod", "web-1", "-o", "jsonpath={.metadata.uid}",
                                             check=False).stdout not in ("", p1["metadata"]["uid"]),
                     what="web-1 replaced")
    cluster.wait_for(lambda: cluster.kubectl("logs", *ns, "web-1", check=False).stdout.split() == ["web-1", "web-1"],
                     what="web-1 back with its data")

    # scale down removes the highest ordinal first, one at a time
    cluster.kubectl("scale", *ns, "sts/web", "--replicas=1")
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        names = {p["metadata"]["name"]: bool(p["metadata"].get("deletionTimestamp"))
                 for p in cluster.kjson("get", *ns, "pods", "-l", "app=web")["items"]}
        assert not ("web-2" in names and names.get("web-1")), f"web-1 went before web-2: {names}"
        if list(names) == ["web-0"]:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("scale down did not finish")
    assert len(cluster.kjson("get", *ns, "pvc")["items"]) == 3  # Retain: claims stay


DS = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: c, image: demo:v1, command: ["sh", "-c", "exec sleep 3600"]}]
"""


def test_daemonset_runs_one_pod_per_node(tmp_path):
    c = start_cluster(tmp_path / "ds")
    agent = start_agent(c, "node-2", tmp_path / "agent2")
    try:
        c.wait_for(lambda: c.kubectl("get", "nodes", "--no-headers").stdout.count(" Ready ") == 2,
                   what="two nodes Ready")
        c.kubectl("apply", "-f", "-", input=DS)
        c.kubectl("rollout", "status", "ds/agent", "--timeout=60s")
        pods = c.kjson("get", "pods", "-l", "app=agent")["items"]
        assert sorted(p["spec"]["nodeName"] for p in pods) == ["node-1", "node-2"]
        st = c.kjson("get", "ds", "agent")["status"]
        assert st["desiredNumberScheduled"] == st["numberReady"] == st["updatedNumberScheduled"] == 2
        # a node that no longer matches loses its pod
        c.kubectl("label", "node", "node-2", "role=db")
        c.kubectl("patch", "ds", "agent", "-p", json.dumps({"spec": {"template": {"spec": {
            "nodeSelector": {"kubernetes.io/hostname": "node-1"}}}}}))
        c.wait_for(lambda: [p["spec"].get("nodeName") for p in c.kjson("get", "pods", "-l", "app=agent")["items"]
                            if not p["metadata"].get("deletionTimestamp")] == ["node-1"], what="one pod")
        c.kubectl("rollout", "status", "ds/agent", "--timeout=60s")
    finally:
        stop_agent(agent)
        stop_cluster(c)
