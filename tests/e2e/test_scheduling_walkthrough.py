"""A user's walk through joining nodes and scheduling, on a private three-zone
cluster (`kybern up --zone zone-a --region r1` plus two `kybern agent`s), with
the real kubectl, checked against what upstream Kubernetes v1.32 shows:
joined nodes' labels and leases, FailedScheduling messages and their retry when
a node is labelled, topology spread held to the zones node affinity allows, and
preemption by a higher-priority pod."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import start_agent, start_cluster, stop_agent, stop_cluster

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def zones(tmp_path_factory):
    base: Path = tmp_path_factory.mktemp("zones")
    c = start_cluster(base / "c", "--zone", "zone-a", "--region", "r1")
    agents = [start_agent(c, f"node-{z}", base / f"agent-{z}", "--zone", f"zone-{z}", "--region", "r1",
                          log=base / f"agent-{z}.log") for z in "bc"]
    try:
        c.wait_for(lambda: c.kubectl("get", "nodes", "--no-headers").stdout.count(" Ready ") == 3,
                   timeout=40, what="three nodes Ready")
        yield c
    finally:
        for a in agents:
            stop_agent(a)
        stop_cluster(c)


def _pods(c, ns: str, selector: str) -> list[dict]:
    return c.kjson("get", "pods", "-n", ns, "-l", selector)["items"]


def _events(c, ns: str, name: str, reason: str) -> list[str]:
    items = c.kjson("get", "events", "-n", ns, "--field-selector",
                    f"involvedObject.name={name},reason={reason}")["items"]
    return [e["message"] for e in items]


def test_joined_nodes_show_their_zone_region_and_lease(zones):
    c = zones
    wide = c.kubectl("get", "nodes", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP",
                               "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    assert sorted(r.split()[0] for r in wide[1:]) == ["node-1", "node-b", "node-c"]
    table = c.kubectl("get", "nodes", "-L", "topology.kubernetes.io/zone,topology.kubernetes.io/region",
                      "--no-headers").stdout
    rows = {r.split()[0]: r.split()[-2:] for r in table.splitlines()}
    assert rows == {"node-1": ["zone-a", "r1"], "node-b": ["zone-b", "r1"], "node-c": ["zone-c", "r1"]}
    described = c.kubectl("describe", "node", "node-b").stdout
    for text in ("kubernetes.io/hostname=node-b", "kubernetes.io/os=linux", "topology.kubernetes.io/zone=zone-b",
                 "topology.kubernetes.io/region=r1", "HolderIdentity:  node-b", "KubeletReady",
                 "kubelet is posting ready status", "Non-terminated Pods:", "Allocated resources:"):
        assert text in described, text
    leases = c.kubectl("get", "leases", "-n", "kube-node-lease", "--no-headers").stdout
    assert sorted((r.split()[0], r.split()[1]) for r in leases.splitlines()) == [
        ("node-1", "node-1"), ("node-b", "node-b"), ("node-c", "node-c")]


def test_a_second_agent_under_a_running_nodes_name_is_refused(zones, tmp_path):
    # two agents as one node would both run every pod bound to it
    c = zones
    token = (c.dir / "data" / "node.token").read_text().strip()
    p = subprocess.run([sys.executable, "-m", "kybern.cli.main", "agent", "--server", c.server, "--token", token,
                        "--ca-file", str(c.dir / "data" / "pki" / "ca.crt"), "--name", "node-b",
                        "--data-dir", str(tmp_path / "dup")], env=c.env, capture_output=True, text=True, timeout=60,
                       check=False)
    assert p.returncode == 1
    assert "node 'node-b' is already served by a running agent" in p.stderr
    assert "another name with --name" in p.stderr

def test_failed_scheduling_says_why_and_retries_when_a_node_is_labelled(zones, tmp_path):
    c = zones
    c.kubectl("create", "namespace", "sel")
    c.kubectl("run", "ssd", "-n", "sel", "--image=demo:v1", '--overrides={"spec":{"nodeSelector":{"disk":"ssd"}}}',
              "--", "sleep", "3600")
    want = ("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. preemption: "
            "0/3 nodes are available: 3 Preemption is not helpful for scheduling.")
    c.wait_for(lambda: want in _events(c, "sel", "ssd", "FailedScheduling"), timeout=20, what="FailedScheduling")
    cond = next(x for x in c.kjson("get", "pod", "ssd", "-n", "sel")["status"]["conditions"]
                if x["type"] == "PodScheduled")
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Unschedulable", want)
    c.kubectl("label", "node", "node-c", "disk=ssd")
    try:
        c.wait_for(lambda: c.kjson("get", "pod", "ssd", "-n", "sel")["spec"].get("nodeName") == "node-c",
                   timeout=20, what="the pod scheduled once a node has the label")
        assert _events(c, "sel", "ssd", "Scheduled") == ["Successfully assigned sel/ssd to node-c"]
    finally:
        c.kubectl("label", "node", "node-c", "disk-")
        c.kubectl("delete", "namespace", "sel", "--wait=false")


def test_a_pod_waiting_for_pod_affinity_is_retried_when_that_pod_arrives(zones):
    c = zones
    ns = ["-n", "affinity"]
    c.kubectl("create", "namespace", "affinity")
    web = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "affinity"},
           "spec": {"terminationGracePeriodSeconds": 1,
                    "affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                        "labelSelector": {"matchLabels": {"app": "db"}},
                        "topologyKey": "topology.kubernetes.io/zone"}]}},
                    "containers": [{"name": "c", "image": "demo:v1", "command": ["sleep", "3600"]}]}}
    try:
        c.kubectl("apply", "-f", "-", input=json.dumps(web))
        want = ("0/3 nodes are available: 3 node(s) didn't match pod affinity rules. preemption: 0/3 nodes are "
                "available: 3 Preemption is not helpful for scheduling.")
        c.wait_for(lambda: want in _events(c, "affinity", "web", "FailedScheduling"), timeout=20,
                   what="FailedScheduling")
        c.kubectl("run", "db", *ns, "--image=demo:v1", "--labels=app=db",
                  '--overrides={"spec":{"nodeSelector":{"topology.kubernetes.io/zone":"zone-c"}}}',
                  "--", "sleep", "3600")
        # retried when db is bound (not after the 5-minute unschedulable flush)
        c.wait_for(lambda: c.kjson("get", "pod", "web", *ns)["spec"].get("nodeName") == "node-c", timeout=15,
                   what="web scheduled next to db")
    finally:
        c.kubectl("delete", "namespace", "affinity", "--wait=false")

def test_a_host_port_in_use_keeps_a_second_pod_off_that_node(zones):
    c = zones
    c.kubectl("create", "namespace", "ports")

    def pod(name: str) -> dict:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ports"},
                "spec": {"nodeSelector": {"kubernetes.io/hostname": "node-b"}, "terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "c", "image": "demo:v1", "command": ["sleep", "3600"],
                                         "ports": [{"containerPort": 8080, "hostPort": 38123}]}]}}
    try:
        c.kubectl("apply", "-f", "-", input=json.dumps(pod("first")))
        c.wait_for(lambda: c.kjson("get", "pod", "first", "-n", "ports")["spec"].get("nodeName") == "node-b",
                   timeout=20, what="the first pod on node-b")
        c.kubectl("apply", "-f", "-", input=json.dumps(pod("second")))
        want = ("0/3 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, "
                "2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: "
                "1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling.")
        c.wait_for(lambda: want in _events(c, "ports", "second", "FailedScheduling"), timeout=20,
                   what="FailedScheduling for the port")
        c.kubectl("delete", "pod", "first", "-n", "ports", "--wait=false")
        c.wait_for(lambda: c.kjson("get", "pod", "second", "-n", "ports")["spec"].get("nodeName") == "node-b",
                   timeout=30, what="the second pod placed once the port is free")
    finally:
        c.kubectl("delete", "namespace", "ports", "--wait=false")

def test_spread_constraint_counts_only_the_zones_node_affinity_allows(zones):
    # upstream's nodeAffinityPolicy (default Honor): the empty zone-c, which the pods
    # may not use, is not the "emptiest domain" that would block every node
    c = zones
    c.kubectl("create", "namespace", "spread")
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "spread"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                         "nodeSelectorTerms": [{"matchExpressions": [{
                             "key": "topology.kubernetes.io/zone", "operator": "In",
                             "values": ["zone-a", "zone-b"]}]}]}}},
                     "topologySpreadConstraints": [{
                         "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                         "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}},
                         "matchLabelKeys": ["pod-template-hash"]}],
                     "containers": [{"name": "c", "image": "demo:v1", "command": ["sleep", "3600"]}]}}}}
    c.kubectl("apply", "-f", "-", input=json.dumps(deployment))
    try:
        c.kubectl("rollout", "status", "deployment/web", "-n", "spread", "--timeout=60s")
        nodes = sorted(p["spec"]["nodeName"] for p in _pods(c, "spread", "app=web"))
        assert nodes == ["node-1", "node-1", "node-b", "node-b"]
    finally:
        c.kubectl("delete", "namespace", "spread", "--wait=false")


def test_a_higher_priority_pod_preempts_a_lower_one(zones):
    c = zones
    def millicores(q: str) -> int:
        return int(q[:-1]) if q.endswith("m") else int(float(q) * 1000)
    alloc = min(millicores(n["status"]["allocatable"]["cpu"]) for n in c.kjson("get", "nodes")["items"])
    share = f"{alloc * 6 // 10}m"  # two never fit on one node
    c.kubectl("create", "namespace", "prio")
    objs = [
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "walk-low"},
         "value": 10},
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "walk-high"},
         "value": 1000},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "filler", "namespace": "prio"},
         "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "filler"}}, "template": {
             "metadata": {"labels": {"app": "filler"}},
             "spec": {"priorityClassName": "walk-low", "terminationGracePeriodSeconds": 1,
                      "containers": [{"name": "c", "image": "demo:v1", "command": ["sleep", "3600"],
                                      "resources": {"requests": {"cpu": share}}}]}}}}]
    c.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))
    try:
        c.kubectl("rollout", "status", "deployment/filler", "-n", "prio", "--timeout=60s")
        before = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in _pods(c, "prio", "app=filler")}
        assert sorted(before.values()) == ["node-1", "node-b", "node-c"]
        vip = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "vip", "namespace": "prio"},
               "spec": {"priorityClassName": "walk-high",
                        "containers": [{"name": "c", "image": "demo:v1", "command": ["sleep", "3600"],
                                        "resources": {"requests": {"cpu": share}}}]}}
        c.kubectl("apply", "-f", "-", input=json.dumps(vip))
        c.kubectl("wait", "--for=condition=Ready", "pod/vip", "-n", "prio", "--timeout=60s")
        pod = c.kjson("get", "pod", "vip", "-n", "prio")
        node = pod["spec"]["nodeName"]
        assert pod["spec"]["priority"] == 1000
        assert pod["status"]["nominatedNodeName"] == node
        row = c.kubectl("get", "pod", "vip", "-n", "prio", "-o", "wide", "--no-headers").stdout.split()
        assert row[6:8] == [node, node]  # NODE, NOMINATED NODE
        # no "preemption:" part once victims were found; a retry while the victim still
        # terminates says so, as upstream
        first, *retries = _events(c, "prio", "vip", "FailedScheduling")
        assert first == "0/3 nodes are available: 3 Insufficient cpu."
        assert set(retries) <= {("0/3 nodes are available: 3 Insufficient cpu. preemption: not eligible due "
                                 "to a terminating pod on the nominated node.")}
        [victim] = [name for name, n in before.items() if n == node]
        assert _events(c, "prio", victim, "Preempted") == [
            f"Preempted by pod {pod['metadata']['uid']} on node {node}"]
        # events.k8s.io's Eventf(victim, preemptor, ..., "Preempting", ...): the event names both
        [ev] = c.kjson("get", "events", "-n", "prio", "--field-selector",
                       f"involvedObject.name={victim},reason=Preempted")["items"]
        assert (ev["action"], ev["related"]["kind"], ev["related"]["name"], ev["related"]["uid"]) == (
            "Preempting", "Pod", "vip", pod["metadata"]["uid"])
        # the ReplicaSet's replacement has nowhere to go, and preempting cannot help it
        want = ("0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: "
                "3 No preemption victims found for incoming pod.")

        def pending_says_why():
            for p in _pods(c, "prio", "app=filler"):
                if p["metadata"]["name"] not in before:
                    return want in _events(c, "prio", p["metadata"]["name"], "FailedScheduling")
            return False
        c.wait_for(pending_says_why, timeout=20, what="the replacement's FailedScheduling")
    finally:
        c.kubectl("delete", "namespace", "prio", "--wait=false")
        c.kubectl("delete", "priorityclass", "walk-low", "walk-high")


def test_a_gated_pod_waits_until_its_scheduling_gates_are_removed(zones):
    c = zones
    ns = ["-n", "gates"]
    c.kubectl("create", "namespace", "gates")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gated", "namespace": "gates"},
           "spec": {"schedulingGates": [{"name": "example.com/quota"}, {"name": "example.com/review"}],
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "c", "image": "demo:v1", "command": ["sleep", "3600"]}]}}
    try:
        c.kubectl("apply", "-f", "-", input=json.dumps(pod))
        row = c.kubectl("get", "pod", "gated", *ns, "--no-headers").stdout.split()
        assert row[1:3] == ["0/1", "SchedulingGated"]
        [cond] = c.kjson("get", "pod", "gated", *ns)["status"]["conditions"]
        assert (cond["type"], cond["status"], cond["reason"], cond["message"]) == (
            "PodScheduled", "False", "SchedulingGated", "Scheduling is blocked due to non-empty scheduling gates")
        # while gated, the pod's node selector may still be narrowed; gates only removed
        c.kubectl("patch", "pod", "gated", *ns, "-p", '{"spec":{"nodeSelector":{"kubernetes.io/hostname":"node-b"}}}')
        added = c.kubectl("patch", "pod", "gated", *ns, "--type=json", "-p",
                          '[{"op":"add","path":"/spec/schedulingGates/-","value":{"name":"example.com/more"}}]',
                          check=False)
        assert added.returncode != 0
        assert "only deletion is allowed, but found new scheduling gate 'example.com/more'" in added.stderr
        c.kubectl("patch", "pod", "gated", *ns, "--type=json", "-p", '[{"op":"remove","path":"/spec/schedulingGates/0"}]')
        time.sleep(1)
        assert not c.kjson("get", "pod", "gated", *ns)["spec"].get("nodeName")  # one gate left
        assert not _events(c, "gates", "gated", "FailedScheduling")
        c.kubectl("patch", "pod", "gated", *ns, "--type=json", "-p", '[{"op":"remove","path":"/spec/schedulingGates"}]')
        c.kubectl("wait", "--for=condition=Ready", "pod/gated", *ns, "--timeout=30s")
        assert c.kjson("get", "pod", "gated", *ns)["spec"]["nodeName"] == "node-b"
    finally:
        c.kubectl("delete", "namespace", "gates", "--wait=false")

def test_drain_refuses_what_it_must_then_honours_flags_dry_run_and_budgets(zones):
    c = zones
    ns = ["-n", "drain"]
    c.kubectl("create", "namespace", "drain")
    sleep = {"name": "c", "image": "demo:v1", "command": ["sleep", "3600"]}
    on_c = {"nodeSelector": {"kubernetes.io/hostname": "node-c"}, "terminationGracePeriodSeconds": 1}
    objs = [
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agentd"},
         "spec": {"selector": {"matchLabels": {"app": "agentd"}}, "template": {
             "metadata": {"labels": {"app": "agentd"}}, "spec": {**on_c, "containers": [sleep]}}}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare"},
         "spec": {**on_c, "containers": [sleep]}},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "scratch"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "scratch"}}, "template": {
             "metadata": {"labels": {"app": "scratch"}},
             "spec": {**on_c, "volumes": [{"name": "tmp", "emptyDir": {}}],
                      "containers": [{**sleep, "volumeMounts": [{"name": "tmp", "mountPath": "/scratch"}]}]}}}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "guarded"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "guarded"}}, "template": {
             "metadata": {"labels": {"app": "guarded"}}, "spec": {**on_c, "containers": [sleep]}}}}]
    c.kubectl("apply", *ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))
    try:
        c.wait_for(lambda: all(p["status"].get("phase") == "Running" for p in c.kjson("get", "pods", *ns)["items"])
                   and len(c.kjson("get", "pods", *ns)["items"]) == 4, timeout=60, what="four pods on node-c")
        names = {p["metadata"]["name"] for p in c.kjson("get", "pods", *ns)["items"]}
        refused = c.kubectl("drain", "node-c", "--timeout=20s", check=False)
        assert refused.returncode != 0
        for text in ("cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): drain/agentd-",
                     ("cannot delete Pods with local storage (use --delete-emptydir-data to override): "
                      "drain/scratch-"),
                     "Pods that declare no controller (use --force to override): drain/bare"):
            assert text in refused.stderr, (text, refused.stderr)
        flags = ("--ignore-daemonsets", "--delete-emptydir-data", "--force", "--timeout=20s")
        dry = c.kubectl("drain", "node-c", *flags, "--dry-run=server", timeout=60)
        assert "evicting pod drain/bare (server dry run)" in dry.stdout + dry.stderr
        assert "node/node-c drained (server dry run)" in dry.stdout
        after = c.kjson("get", "pods", *ns)["items"]
        assert {p["metadata"]["name"] for p in after} == names  # a dry run evicts nothing
        assert not any(p["metadata"].get("deletionTimestamp") for p in after)

        c.kubectl("create", "pdb", "guarded", *ns, "--selector=app=guarded", "--min-available=1")
        c.wait_for(lambda: c.kjson("get", "pdb", "guarded", *ns).get("status", {}).get("observedGeneration"),
                   timeout=20, what="the budget observed by the disruption controller")
        blocked = c.kubectl("drain", "node-c", *flags[:3], "--timeout=3s", check=False, timeout=60)
        assert blocked.returncode != 0
        assert "(will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget." \
            in blocked.stderr, blocked.stderr
        left = {p["metadata"]["name"].rsplit("-", 1)[0] for p in c.kjson("get", "pods", *ns)["items"]
                if not p["metadata"].get("deletionTimestamp") and p["spec"].get("nodeName") == "node-c"}
        assert "bare" not in left and "agentd" in left and any(n.startswith("guarded") for n in left)
        # uncordon: the node lifecycle controller drops the unschedulable taint at once (as
        # upstream's event-driven tainting), so new pods may land there right away
        c.kubectl("uncordon", "node-c")
        c.wait_for(lambda: not any(t["key"] == "node.kubernetes.io/unschedulable"
                                   for t in c.kjson("get", "node", "node-c")["spec"].get("taints") or []),
                   timeout=2.5, interval=0.1, what="the unschedulable taint removed at once")
    finally:
        c.kubectl("uncordon", "node-c")
        c.kubectl("delete", "namespace", "drain", "--wait=false")

def test_unhealthy_pods_are_evicted_as_the_budgets_unhealthy_pod_eviction_policy_says(zones):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    c = zones
    c.kubectl("create", "namespace", "unhealthy")
    never_ready = {"name": "c", "image": "demo:v1", "command": ["sleep", "3600"],
                   "readinessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1}}
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "sick", "namespace": "unhealthy"},
              "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "sick"}}, "template": {
                  "metadata": {"labels": {"app": "sick"}},
                  "spec": {"terminationGracePeriodSeconds": 1, "containers": [never_ready]}}}}
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "sick", "namespace": "unhealthy"},
           "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "sick"}}}}
    c.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [deploy, pdb]}))
    core = client.CoreV1Api(c.api_client())
    try:
        c.wait_for(lambda: [p["status"].get("phase") for p in _pods(c, "unhealthy", "app=sick")] == ["Running"] * 2
                   and c.kjson("get", "pdb", "sick", "-n", "unhealthy").get("status", {}).get("expectedPods") == 2,
                   timeout=60, what="two running, never ready pods and the budget's status")
        name = _pods(c, "unhealthy", "app=sick")[0]["metadata"]["name"]
        eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace="unhealthy"))
        # IfHealthyBudget (the default): the application is disrupted (0 of 1 healthy), so no
        with pytest.raises(ApiException) as e:
            core.create_namespaced_pod_eviction(name, "unhealthy", eviction)
        assert e.value.status == 429
        assert "The disruption budget sick needs 1 healthy pods and has 0 currently" in e.value.body
        c.kubectl("patch", "pdb", "sick", "-n", "unhealthy", "-p", '{"spec":{"unhealthyPodEvictionPolicy":"AlwaysAllow"}}')
        c.wait_for(lambda: c.kjson("get", "pdb", "sick", "-n", "unhealthy")["status"]["observedGeneration"] == 2,
                   timeout=20, what="the budget's new generation observed")
        core.create_namespaced_pod_eviction(name, "unhealthy", eviction)  # AlwaysAllow: an unready pod may go
        assert c.kjson("get", "pdb", "sick", "-n", "unhealthy")["status"]["disruptionsAllowed"] == 0
    finally:
        c.kubectl("delete", "namespace", "unhealthy", "--wait=false")

def test_a_no_execute_taint_evicts_at_once_or_after_toleration_seconds(zones):
    # last in this module: it evicts what runs on node-b
    c = zones
    c.kubectl("create", "namespace", "taints")
    tolerating = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "patient", "namespace": "taints"},
                  "spec": {"nodeName": "node-b", "terminationGracePeriodSeconds": 1,
                           "tolerations": [{"key": "walk", "operator": "Exists", "effect": "NoExecute",
                                            "tolerationSeconds": 6}],
                           "containers": [{"name": "c", "image": "demo:v1", "command": ["sleep", "3600"]}]}}
    plain = {**tolerating, "metadata": {"name": "plain", "namespace": "taints"},
             "spec": {k: v for k, v in tolerating["spec"].items() if k != "tolerations"}}
    reprieved = {**tolerating, "metadata": {"name": "reprieved", "namespace": "taints"},
                 "spec": {**tolerating["spec"], "tolerations": [{"key": "walk", "operator": "Exists",
                                                                 "effect": "NoExecute", "tolerationSeconds": 600}]}}
    for p in (tolerating, plain, reprieved):
        c.kubectl("apply", "-f", "-", input=json.dumps(p))
    c.kubectl("wait", "--for=condition=Ready", "pod/patient", "pod/plain", "pod/reprieved", "-n", "taints",
              "--timeout=60s")

    def deleting(name: str) -> bool:
        p = c.kubectl("get", "pod", name, "-n", "taints", "-o", "json", check=False)
        return p.returncode != 0 or bool(json.loads(p.stdout)["metadata"].get("deletionTimestamp"))

    c.kubectl("taint", "node", "node-b", "walk=now:NoExecute")  # no timeAdded, as upstream's kubectl
    try:
        c.wait_for(lambda: deleting("plain"), timeout=15, what="the pod without a toleration evicted")
        assert not deleting("patient")
        c.wait_for(lambda: deleting("patient"), timeout=20, what="the tolerating pod evicted after 6 s")
        assert _events(c, "taints", "patient", "TaintManagerEviction") == ["Marking for deletion Pod taints/patient"]
        [ev] = c.kjson("get", "events", "-n", "taints", "--field-selector",
                       "involvedObject.name=patient,reason=TaintManagerEviction")["items"]
        assert ev["source"]["component"] == "taint-eviction-controller"
        c.kubectl("taint", "node", "node-b", "walk-")  # the reprieved pod's eviction is called off
        c.wait_for(lambda: _events(c, "taints", "reprieved", "TaintManagerEviction")
                   == ["Cancelling deletion of Pod taints/reprieved"], timeout=15, what="the cancelled eviction")
        assert not deleting("reprieved")
    finally:
        c.kubectl("taint", "node", "node-b", "walk-", check=False)
        c.kubectl("delete", "namespace", "taints", "--wait=false")
