"""The object lifecycle a kube-apiserver promises, checked with the official
Python client and kubectl: CRUD and system metadata, optimistic concurrency,
error shapes, finalizers and cascading deletion, graceful pod deletion,
dry-run, field validation, namespaces and the status/scale subresources."""

from __future__ import annotations

import contextlib
import json
import threading
import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from rawapi import RawAPI

pytestmark = pytest.mark.e2e

OPTIMISTIC = "the object has been modified; please apply your changes to the latest version and try again"


def _status(e: ApiException) -> dict:
    return json.loads(e.body)


def _deployment(name: str, replicas: int = 1, image: str = "demo:v1") -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image,
                                                           "command": ["sleep", "3600"]}]}}}}


@pytest.fixture(scope="module")
def api(cluster):
    return cluster.api_client()


@pytest.fixture(scope="module")
def raw(cluster):
    return RawAPI(cluster)


# -- CRUD, system metadata, concurrency ------------------------------------------
def test_crud_generate_name_and_resource_versions(api, namespace):
    core = client.CoreV1Api(api)
    cm = core.create_namespaced_config_map(namespace, {"metadata": {"generateName": "gen-", "labels": {"a": "1"}},
                                                       "data": {"k": "v"}})
    name = cm.metadata.name
    assert name.startswith("gen-") and len(name) == len("gen-") + 5
    assert cm.metadata.uid and cm.metadata.creation_timestamp and cm.metadata.resource_version
    rvs = [cm.metadata.resource_version]

    got = core.read_namespaced_config_map(name, namespace)
    assert got.metadata.uid == cm.metadata.uid and got.data == {"k": "v"}
    got.data["k"] = "v2"
    upd = core.replace_namespaced_config_map(name, namespace, got)
    rvs.append(upd.metadata.resource_version)
    assert upd.metadata.uid == cm.metadata.uid and upd.metadata.creation_timestamp == cm.metadata.creation_timestamp

    # PUT with the stale resourceVersion: 409 Conflict with upstream's message
    got.data["k"] = "v3"
    with pytest.raises(ApiException) as ei:
        core.replace_namespaced_config_map(name, namespace, got)
    st = _status(ei.value)
    assert ei.value.status == 409 and st["reason"] == "Conflict"
    assert st["message"] == f'Operation cannot be fulfilled on configmaps "{name}": {OPTIMISTIC}'
    assert st["details"] == {"name": name, "kind": "configmaps"}

    # PUT without a resourceVersion is an unconditional update
    got.metadata.resource_version = None
    upd = core.replace_namespaced_config_map(name, namespace, got)
    assert upd.data == {"k": "v3"}
    rvs.append(upd.metadata.resource_version)

    # every patch type writes and moves the resourceVersion
    for body, ctype in (({"data": {"m": "1"}}, "application/merge-patch+json"),
                        ({"data": {"s": "1"}}, "application/strategic-merge-patch+json"),
                        ([{"op": "add", "path": "/data/j", "value": "1"}], "application/json-patch+json")):
        p = core.patch_namespaced_config_map(name, namespace, body, _content_type=ctype)
        rvs.append(p.metadata.resource_version)
    assert p.data == {"k": "v3", "m": "1", "s": "1", "j": "1"}
    assert len(set(rvs)) == len(rvs) and [int(r) for r in rvs] == sorted(int(r) for r in rvs)

    lst = core.list_namespaced_config_map(namespace)
    assert [c.metadata.name for c in lst.items if c.metadata.name.startswith("gen-")] == [name]
    assert int(lst.metadata.resource_version) >= int(rvs[-1])

    resp = core.delete_namespaced_config_map(name, namespace)
    # an immediate delete answers with a Success Status naming what went (finalizeDelete)
    resp = resp if isinstance(resp, dict) else api.sanitize_for_serialization(resp)
    assert resp["kind"] == "Status" and resp["status"] == "Success"
    assert resp["details"] == {"name": name, "kind": "configmaps", "uid": cm.metadata.uid}
    with pytest.raises(ApiException) as ei:
        core.read_namespaced_config_map(name, namespace)
    assert ei.value.status == 404


def test_error_shapes(api, raw, namespace):
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "dup"}})
    with pytest.raises(ApiException) as ei:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "dup"}})
    st = _status(ei.value)
    assert ei.value.status == 409 and st["reason"] == "AlreadyExists"
    assert st["message"] == 'configmaps "dup" already exists' and st["details"] == {"name": "dup", "kind": "configmaps"}

    with pytest.raises(ApiException) as ei:
        apps.read_namespaced_deployment("nope", namespace)
    st = _status(ei.value)
    assert (ei.value.status, st["reason"], st["kind"], st["status"]) == (404, "NotFound", "Status", "Failure")
    assert st["message"] == 'deployments.apps "nope" not found'
    assert st["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}
    for method in ("PUT", "DELETE"):
        code, _, st = raw.request(method, f"/apis/apps/v1/namespaces/{namespace}/deployments/nope",
                                  _deployment("nope") if method == "PUT" else None)
        assert code == 404 and st["details"]["name"] == "nope", (method, st)


def test_kubectl_messages(cluster, namespace):
    ns = ("-n", namespace)
    cluster.kubectl("create", "configmap", "c", "--from-literal=a=b", *ns)
    p = cluster.kubectl("create", "configmap", "c", "--from-literal=a=b", *ns, check=False)
    assert p.returncode == 1 and 'configmaps "c" already exists' in p.stderr
    p = cluster.kubectl("get", "deployment", "nope", *ns, check=False)
    assert 'Error from server (NotFound): deployments.apps "nope" not found' in p.stderr
    out = cluster.kubectl("delete", "configmap", "c", *ns).stdout
    assert out.strip() == 'configmap "c" deleted'


def test_generation_tracks_spec_only(api, namespace):
    apps = client.AppsV1Api(api)
    d = apps.create_namespaced_deployment(namespace, _deployment("gen", replicas=0))
    assert d.metadata.generation == 1
    d2 = apps.patch_namespaced_deployment("gen", namespace, {"metadata": {"labels": {"x": "y"}}})
    assert d2.metadata.generation == 1 and d2.metadata.resource_version != d.metadata.resource_version
    d3 = apps.patch_namespaced_deployment_status("gen", namespace, {"status": {"observedGeneration": 1,
                                                                               "replicas": 0}})
    assert d3.metadata.generation == 1
    d4 = apps.patch_namespaced_deployment("gen", namespace, {"spec": {"replicas": 2}})
    assert d4.metadata.generation == 2
    d5 = apps.patch_namespaced_deployment("gen", namespace, {"spec": {"template": {"metadata": {
        "annotations": {"restartedAt": "now"}}}}})
    assert d5.metadata.generation == 3
    # a no-op write changes nothing, not even the resourceVersion (checked on a ConfigMap:
    # the deployment controller writes the Deployment's status at any moment)
    d6 = apps.patch_namespaced_deployment("gen", namespace, {"spec": {"replicas": 2}})
    assert d6.metadata.generation == 3
    core = client.CoreV1Api(api)
    cm = core.create_namespaced_config_map(namespace, {"metadata": {"name": "noop", "labels": {"a": "b"}}})
    cm2 = core.patch_namespaced_config_map("noop", namespace, {"metadata": {"labels": {"a": "b"}}})
    assert cm2.metadata.resource_version == cm.metadata.resource_version
    # clients cannot set generation, uid or creationTimestamp
    body = apps.read_namespaced_deployment("gen", namespace)
    body.metadata.resource_version = None  # unconditional: the controller writes status meanwhile
    body.metadata.generation, body.metadata.creation_timestamp = 99, None
    d7 = apps.replace_namespaced_deployment("gen", namespace, body)
    assert d7.metadata.generation == 3 and d7.metadata.uid == d.metadata.uid
    assert d7.metadata.creation_timestamp == d.metadata.creation_timestamp
    body.metadata.uid = "00000000-0000-0000-0000-000000000000"  # a uid in the body is a precondition
    with pytest.raises(ApiException) as ei:
        apps.replace_namespaced_deployment("gen", namespace, body)
    assert ei.value.status == 409 and "Precondition failed: UID in precondition" in _status(ei.value)["message"]


# -- finalizers and cascading deletion ------------------------------------------------
def test_custom_finalizer_holds_deletion(api, namespace, cluster):
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "held",
                                                               "finalizers": ["example.com/hold"]}})
    resp = core.delete_namespaced_config_map("held", namespace)
    resp = resp if isinstance(resp, dict) else api.sanitize_for_serialization(resp)
    assert resp["kind"] == "ConfigMap" and resp["metadata"]["deletionTimestamp"]  # pending: the marked object
    cm = core.read_namespaced_config_map("held", namespace)
    assert cm.metadata.deletion_timestamp is not None and cm.metadata.finalizers == ["example.com/hold"]
    assert cm.metadata.deletion_grace_period_seconds == 0
    # a deleting object still takes updates, but not new finalizers' removal of the mark
    cm2 = core.patch_namespaced_config_map("held", namespace, {"data": {"x": "1"}})
    assert cm2.metadata.deletion_timestamp == cm.metadata.deletion_timestamp
    # a second delete does not move the timestamp
    core.delete_namespaced_config_map("held", namespace)
    assert core.read_namespaced_config_map("held", namespace).metadata.deletion_timestamp == \
        cm.metadata.deletion_timestamp
    core.patch_namespaced_config_map("held", namespace, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as ei:
        core.read_namespaced_config_map("held", namespace)
    assert ei.value.status == 404


def _owned_rs(cluster, namespace, deploy_uid):
    return [rs for rs in cluster.kjson("get", "replicasets", "-n", namespace)["items"]
            if any(o["uid"] == deploy_uid for o in rs["metadata"].get("ownerReferences") or [])]


@pytest.mark.parametrize("cascade", ["orphan", "foreground", "background"])
def test_kubectl_delete_cascade(cluster, api, namespace, cascade):
    apps = client.AppsV1Api(api)
    d = apps.create_namespaced_deployment(namespace, _deployment("casc", replicas=0))
    uid = d.metadata.uid
    rs = cluster.wait_for(lambda: _owned_rs(cluster, namespace, uid), timeout=20, what="replicaset")
    rs_name = rs[0]["metadata"]["name"]
    if cascade == "foreground":
        # a finalizer of our own on the ReplicaSet lets us see the owner wait for its dependents
        apps.patch_namespaced_replica_set(rs_name, namespace, {"metadata": {"finalizers": ["example.com/hold"]}})
    cluster.kubectl("delete", "deployment", "casc", "-n", namespace, f"--cascade={cascade}", "--wait=false")
    if cascade == "orphan":
        def orphaned():
            r = apps.read_namespaced_replica_set(rs_name, namespace)
            return not r.metadata.owner_references and r
        cluster.wait_for(orphaned, timeout=20, what="ownerReferences removed")
        cluster.wait_for(lambda: "casc" not in cluster.kubectl("get", "deploy", "-n", namespace,
                                                                "-o", "name").stdout, timeout=20, what="gone")
        time.sleep(0.5)
        assert apps.read_namespaced_replica_set(rs_name, namespace).metadata.deletion_timestamp is None
    elif cascade == "foreground":
        dep = apps.read_namespaced_deployment("casc", namespace)
        assert dep.metadata.deletion_timestamp is not None and "foregroundDeletion" in dep.metadata.finalizers
        cluster.wait_for(lambda: apps.read_namespaced_replica_set(rs_name, namespace).metadata.deletion_timestamp,
                         timeout=20, what="dependent marked for deletion")
        time.sleep(0.5)  # the owner stays while a dependent is still there
        assert apps.read_namespaced_deployment("casc", namespace).metadata.deletion_timestamp is not None
        apps.patch_namespaced_replica_set(rs_name, namespace, {"metadata": {"finalizers": None}})
        cluster.wait_for(lambda: not cluster.kubectl("get", "deploy,rs", "-n", namespace, "-o", "name").stdout,
                         timeout=20, what="dependent, then owner, gone")
    else:
        with pytest.raises(ApiException):  # the owner goes at once...
            apps.read_namespaced_deployment("casc", namespace)
        cluster.wait_for(lambda: not _owned_rs(cluster, namespace, uid), timeout=20,
                         what="...the dependents after it")


def test_graceful_pod_deletion(cluster, api, namespace):
    core = client.CoreV1Api(api)
    # a pod bound to a node that has no agent: nothing acknowledges the deletion, so it stays Terminating
    pod = {"metadata": {"name": "slow"}, "spec": {"nodeName": "no-such-node", "terminationGracePeriodSeconds": 45,
                                                  "containers": [{"name": "c", "image": "demo:v1"}]}}
    core.create_namespaced_pod(namespace, pod)
    resp = core.delete_namespaced_pod("slow", namespace)
    assert resp.metadata.deletion_timestamp is not None
    p = core.read_namespaced_pod("slow", namespace)
    assert p.metadata.deletion_grace_period_seconds == 45 and p.metadata.deletion_timestamp is not None
    # a shorter grace period moves the deadline forward, a longer one does not
    core.delete_namespaced_pod("slow", namespace, grace_period_seconds=10)
    assert core.read_namespaced_pod("slow", namespace).metadata.deletion_grace_period_seconds == 10
    core.delete_namespaced_pod("slow", namespace, grace_period_seconds=40)
    assert core.read_namespaced_pod("slow", namespace).metadata.deletion_grace_period_seconds == 10
    row = cluster.kubectl("get", "pod", "slow", "-n", namespace, "--no-headers").stdout
    assert "Terminating" in row.split()
    p = cluster.kubectl("delete", "pod", "slow", "-n", namespace, "--grace-period=0", "--force")
    assert "Immediate deletion does not wait for confirmation" in p.stderr
    with pytest.raises(ApiException) as ei:
        core.read_namespaced_pod("slow", namespace)
    assert ei.value.status == 404
    # an unscheduled pod has nobody to wait for: it goes at once
    core.create_namespaced_pod(namespace, {"metadata": {"name": "pending"}, "spec": {
        "schedulerName": "nobody", "containers": [{"name": "c", "image": "demo:v1"}]}})
    core.delete_namespaced_pod("pending", namespace)
    with pytest.raises(ApiException):
        core.read_namespaced_pod("pending", namespace)


# -- dry run and field validation -----------------------------------------------------
def test_server_dry_run(cluster, api, namespace):
    ns = ("-n", namespace)
    out = json.loads(cluster.kubectl("create", "configmap", "dry", "--from-literal=a=b", "--dry-run=server",
                                     "-o", "json", *ns).stdout)
    assert out["metadata"]["name"] == "dry" and out["metadata"]["uid"] and out["metadata"]["creationTimestamp"]
    assert "resourceVersion" not in out["metadata"]
    assert cluster.kubectl("get", "configmap", "dry", *ns, check=False).returncode != 0
    cluster.kubectl("create", "configmap", "real", "--from-literal=a=b", *ns)
    p = cluster.kubectl("delete", "configmap", "real", "--dry-run=server", *ns)
    assert 'configmap "real" deleted (server dry run)' in p.stdout
    rv = cluster.kjson("get", "configmap", "real", *ns)["metadata"]["resourceVersion"]
    cluster.kubectl("label", "configmap", "real", "x=y", "--dry-run=server", *ns)
    after = cluster.kjson("get", "configmap", "real", *ns)
    assert after["metadata"]["resourceVersion"] == rv and "labels" not in after["metadata"]
    core = client.CoreV1Api(api)
    r = core.replace_namespaced_config_map("real", namespace, {"metadata": {"name": "real"}, "data": {"z": "1"}},
                                           dry_run="All")
    assert r.data == {"z": "1"} and core.read_namespaced_config_map("real", namespace).data == {"a": "b"}


def test_field_validation(cluster, raw, namespace):
    ns = ("-n", namespace)
    doc = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fv", "bogus": 1},
                      "data": {"a": "b"}, "extra": {"x": 1}})
    p = cluster.kubectl("create", "-f", "-", *ns, input=doc, check=False)  # --validate=strict by default
    assert p.returncode == 1 and 'strict decoding error: unknown field "extra", unknown field "metadata.bogus"' \
        in p.stderr, p.stderr
    p = cluster.kubectl("create", "-f", "-", "--validate=warn", *ns, input=doc)
    assert 'Warning: unknown field "extra"' in p.stderr and 'Warning: unknown field "metadata.bogus"' in p.stderr
    cm = cluster.kjson("get", "configmap", "fv", *ns)
    assert "extra" not in cm and "bogus" not in cm["metadata"]
    cluster.kubectl("delete", "configmap", "fv", *ns)
    p = cluster.kubectl("create", "-f", "-", "--validate=false", *ns, input=doc)
    assert "Warning" not in p.stderr
    assert "extra" not in cluster.kjson("get", "configmap", "fv", *ns)
    code, _, st = raw.request("POST", f"/api/v1/namespaces/{namespace}/configmaps?fieldValidation=Strict",
                                 json.loads(doc))
    assert code == 400 and st["reason"] == "BadRequest"
    code, _, st = raw.request("POST", f"/api/v1/namespaces/{namespace}/configmaps?fieldValidation=Bogus",
                                 json.loads(doc))
    assert code == 400 and "fieldValidation" in st["message"]


# -- namespaces -------------------------------------------------------------------------
def test_namespaces_lifecycle(cluster, api):
    core = client.CoreV1Api(api)
    names = {n.metadata.name for n in core.list_namespace().items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.create_namespaced_config_map("doomed", {"metadata": {"name": "held",
                                                              "finalizers": ["example.com/hold"]}})
    core.create_namespaced_config_map("doomed", {"metadata": {"name": "plain"}})
    core.delete_namespace("doomed")
    ns = core.read_namespace("doomed")
    assert ns.status.phase == "Terminating" and ns.metadata.deletion_timestamp is not None
    row = cluster.kubectl("get", "namespace", "doomed", "--no-headers").stdout.split()
    assert row[1] == "Terminating"
    with pytest.raises(ApiException) as ei:
        core.create_namespaced_config_map("doomed", {"metadata": {"name": "late"}})
    st = _status(ei.value)
    assert ei.value.status == 403 and st["reason"] == "Forbidden"
    assert st["message"] == ('configmaps "late" is forbidden: unable to create new content in namespace doomed '
                             'because it is being terminated')
    cluster.wait_for(lambda: not any(c.metadata.name == "plain"
                                     for c in core.list_namespaced_config_map("doomed").items),
                     timeout=20, what="contents deleted")
    assert core.read_namespace("doomed").status.phase == "Terminating"  # still held by the finalizer
    core.patch_namespaced_config_map("held", "doomed", {"metadata": {"finalizers": None}})

    def gone():
        try:
            core.read_namespace("doomed")
            return False
        except ApiException as e:
            return e.status == 404
    cluster.wait_for(gone, timeout=30, what="namespace gone")
    with pytest.raises(ApiException) as ei:
        core.create_namespaced_config_map("doomed", {"metadata": {"name": "x"}})
    assert ei.value.status == 404 and _status(ei.value)["message"] == 'namespaces "doomed" not found'


# -- subresources -------------------------------------------------------------------------
def test_status_subresource_separates_spec_and_status(api, namespace):
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, _deployment("st", replicas=0))
    body = api.sanitize_for_serialization(apps.read_namespaced_deployment("st", namespace))
    body["metadata"].pop("resourceVersion")  # unconditional: the deployment controller writes status meanwhile
    body["status"] = {"replicas": 42, "observedGeneration": 7}
    body["spec"]["minReadySeconds"] = 5
    out = apps.replace_namespaced_deployment("st", namespace, body)
    assert out.spec.min_ready_seconds == 5 and (out.status.replicas or 0) != 42
    body = api.sanitize_for_serialization(apps.read_namespaced_deployment("st", namespace))
    body["metadata"].pop("resourceVersion")
    body["status"] = {"replicas": 0, "observedGeneration": 99, "conditions": []}
    body["spec"]["minReadySeconds"] = 9
    out = apps.replace_namespaced_deployment_status("st", namespace, body)
    assert out.status.observed_generation == 99 and out.spec.min_ready_seconds == 5
    assert out.metadata.generation == 2


def test_scale_subresource(cluster, api, namespace):
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, _deployment("sc", replicas=0))
    cluster.kubectl("scale", "deployment", "sc", "--replicas=2", "-n", namespace)
    assert apps.read_namespaced_deployment("sc", namespace).spec.replicas == 2
    sc = apps.read_namespaced_deployment_scale("sc", namespace)
    assert sc.kind == "Scale" and sc.spec.replicas == 2 and sc.status.selector == "app=sc"
    sc = apps.patch_namespaced_deployment_scale("sc", namespace, {"spec": {"replicas": 0}})
    assert sc.spec.replicas == 0
    stale = {"metadata": {"name": "sc", "resourceVersion": str(int(sc.metadata.resource_version) - 1)},
             "spec": {"replicas": 1}}
    with pytest.raises(ApiException) as ei:  # a Scale's resourceVersion is the Deployment's precondition
        apps.replace_namespaced_deployment_scale("sc", namespace, stale)
    assert ei.value.status == 409 and _status(ei.value)["reason"] == "Conflict"
    with pytest.raises(ApiException) as ei:
        apps.patch_namespaced_deployment_scale("sc", namespace, {"spec": {"replicas": -1}})
    assert ei.value.status == 422
    with pytest.raises(ApiException) as ei:
        apps.read_namespaced_deployment_scale("nope", namespace)
    assert ei.value.status == 404


@contextlib.contextmanager
def _another_writer(core, namespace: str, name: str):
    """Another client relabelling ConfigMap `name` as fast as it can meanwhile."""
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            core.patch_namespaced_config_map(name, namespace, {"metadata": {"labels": {"i": str(i)}}})

    t = threading.Thread(target=write)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


def test_unconditional_put_wins_a_race_instead_of_409(api, namespace):
    # PUT without a resourceVersion is an unconditional update (the Deployment
    # strategy allows it): when another write lands between the server's read and
    # its write, the server retries with the body as sent, as upstream's
    # GuaranteedUpdate; the client never sees a 409 for it
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "race"}, "data": {"n": "0"}})
    with _another_writer(core, namespace, "race"):
        for n in range(150):
            body = core.read_namespaced_config_map("race", namespace)
            body.metadata.resource_version = None
            body.data = {"n": str(n)}
            out = core.replace_namespaced_config_map("race", namespace, body)
            assert out.data == {"n": str(n)}


def test_patches_and_apply_win_a_race_instead_of_409(api, namespace):
    # the same for a merge patch, a strategic merge patch and a server-side apply:
    # a retry after a lost race applies the change as sent to the object as it is now
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "race2"}, "data": {"n": "0"}})
    with _another_writer(core, namespace, "race2"):
        for n in range(60):
            out = core.patch_namespaced_config_map("race2", namespace, {"data": {"m": str(n)}},
                                                   _content_type="application/merge-patch+json")
            assert out.data["m"] == str(n)
            out = core.patch_namespaced_config_map("race2", namespace, {"data": {"s": str(n)}})
            assert out.data["s"] == str(n)
            out = core.patch_namespaced_config_map(
                "race2", namespace, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "race2"},
                                     "data": {"a": str(n)}},
                field_manager="racer", force=True, _content_type="application/apply-patch+yaml")
            assert out.data["a"] == str(n)


def test_curl_and_pretty_get_indented_json(cluster, namespace):
    """As kube-apiserver's isPrettyPrint: curl, Wget and browsers (or `?pretty=true`)
    get JSON indented by two spaces, as the kubernetes.io pages that `curl` the API
    show it; `?pretty=false` and other clients get it compact; /version is always indented."""
    import subprocess

    raw = RawAPI(cluster)
    ca = str(cluster.dir / "data" / "pki" / "ca.crt")

    def curl(path: str) -> str:
        return subprocess.run(["curl", "-sS", "--cacert", ca, "-H", f"Authorization: Bearer {raw.token}",
                               cluster.server + path], capture_output=True, text=True, check=True,
                              timeout=30).stdout

    out = curl("/api")
    assert out.startswith('{\n  "kind": "APIVersions",\n  "versions": [\n    "v1"\n  ],') and out.endswith("}")
    cm = curl(f"/api/v1/namespaces/{namespace}/configmaps/kube-root-ca.crt")
    assert '\n  "metadata": {\n    "name": "kube-root-ca.crt",' in cm
    assert json.loads(cm)["kind"] == "ConfigMap"
    missing = curl(f"/api/v1/namespaces/{namespace}/pods/nope")  # a Status too
    assert missing.startswith('{\n  "kind": "Status",') and json.loads(missing)["reason"] == "NotFound"
    compact = curl("/api?pretty=false")
    assert "\n" not in compact.strip() and json.loads(compact)["kind"] == "APIVersions"
    # another client (urllib3 here): compact, unless it asks
    r = raw.pool.request("GET", cluster.server + "/api", headers={"Authorization": f"Bearer {raw.token}"})
    assert b"\n" not in r.data.strip()
    r = raw.pool.request("GET", cluster.server + "/api?pretty=true", headers={"Authorization": f"Bearer {raw.token}"})
    assert r.data.startswith(b'{\n  "kind": "APIVersions"')
    r = raw.pool.request("GET", cluster.server + "/version")
    assert r.data.startswith(b'{\n  "major": "1",\n  "minor": "32",')
