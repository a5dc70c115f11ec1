"""Commands of the kubectl Quick Reference (kubernetes.io/docs/reference/kubectl/
quick-reference/) that make sense on one node, run with the real kubectl, asserting
what a user sees where kybern once differed from kube-apiserver and the
kube-controller-manager."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e

RC = """apiVersion: v1
kind: ReplicationController
metadata:
  name: nginx
spec:
  replicas: 1
  selector:
    app: nginx-rc
  template:
    metadata:
      labels:
        app: nginx-rc
    spec:
      containers:
      - name: nginx
        image: demo:v1
        command: ["sleep", "600"]
"""


def _rc_pods(cluster, ns: str) -> list[dict]:
    pods = cluster.kjson("get", "pods", "-n", ns, "-l", "app=nginx-rc")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def test_get_with_status_subresource_prints_the_kinds_columns(cluster, namespace):
    # "Get a deployment's status subresource": StatusREST converts to a table with the
    # main store's columns, so kubectl shows READY/UP-TO-DATE/AVAILABLE, not NAME AGE
    ns = ["-n", namespace]
    cluster.kubectl("create", "deployment", "nginx-deployment", "--image=demo:v1", *ns, "--", "sleep", "600")
    out = cluster.kubectl("get", "deployment", "nginx-deployment", "--subresource=status", *ns).stdout
    assert out.split("\n")[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert out.split("\n")[1].split()[0] == "nginx-deployment"
    pod_cols = cluster.kubectl("get", "pods", *ns, "-o", "name").stdout.split()
    if pod_cols:
        name = pod_cols[0].split("/", 1)[1]
        head = cluster.kubectl("get", "pod", name, "--subresource=status", *ns).stdout.split("\n")[0]
        assert head.split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]


def test_replication_controller_runs_scales_and_is_exposed(cluster, namespace):
    # "kubectl scale --replicas=5 rc/foo rc/bar rc/baz", "kubectl expose rc nginx --port=80
    # --target-port=8000": an RC keeps its pods (the replication manager) and serves /scale
    ns = ["-n", namespace]
    cluster.kubectl("apply", "-f", "-", *ns, input=RC)
    cluster.wait_for(lambda: len(_rc_pods(cluster, namespace)) == 1, timeout=30, what="the RC's pod")
    pod = _rc_pods(cluster, namespace)[0]
    ref = pod["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["controller"]) == ("ReplicationController", "nginx", True)
    assert pod["metadata"]["generateName"] == "nginx-"

    p = cluster.kubectl("scale", "--replicas=3", "rc/nginx", "rc/bar", *ns, check=False)
    assert "replicationcontroller/nginx scaled" in p.stdout
    assert 'Error from server (NotFound): replicationcontrollers "bar" not found' in p.stderr
    scale = cluster.kjson("get", "rc", "nginx", "--subresource=scale", *ns)
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3
    assert scale["status"]["selector"] == "app=nginx-rc"
    cluster.wait_for(lambda: len(_rc_pods(cluster, namespace)) == 3, timeout=30, what="3 pods")

    def counted():
        rc = cluster.kjson("get", "rc", "nginx", *ns)
        return rc["status"].get("readyReplicas") == 3 and rc["status"]["replicas"] == 3
    cluster.wait_for(counted, timeout=60, what="RC status counting 3 ready pods")
    row = cluster.kubectl("get", "rc", "nginx", *ns, "--no-headers").stdout.split()
    assert row[:4] == ["nginx", "3", "3", "3"]
    events = cluster.kubectl("get", "events", *ns, "--field-selector",
                             "involvedObject.kind=ReplicationController", "-o", "json").stdout
    items = json.loads(events)["items"]
    assert any(e["reason"] == "SuccessfulCreate" and e["message"].startswith("Created pod: nginx-")
               and e["source"]["component"] == "replication-controller" for e in items)

    assert cluster.kubectl("expose", "rc", "nginx", "--port=80", "--target-port=8000", *ns).stdout.strip() \
        == "service/nginx exposed"
    svc = cluster.kjson("get", "svc", "nginx", *ns)
    assert svc["spec"]["selector"] == {"app": "nginx-rc"}
    assert svc["spec"]["ports"][0]["port"] == 80 and svc["spec"]["ports"][0]["targetPort"] == 8000

    cluster.kubectl("scale", "--replicas=1", "rc/nginx", *ns)
    cluster.wait_for(lambda: len(_rc_pods(cluster, namespace)) == 1, timeout=30, what="scaled down to 1")
    cluster.kubectl("delete", "rc", "nginx", *ns)  # kubectl deletes in Background: the GC removes the pods
    cluster.wait_for(lambda: not _rc_pods(cluster, namespace), timeout=30, what="the RC's pods deleted")


def test_failed_json_patch_reads_as_upstreams(cluster, namespace):
    # "Disable a deployment livenessProbe using a json patch with positional arrays" on a
    # deployment without one: kube-apiserver answers NewGenericServerResponse(422) without
    # causes, and kubectl prints only its message
    ns = ["-n", namespace]
    cluster.kubectl("create", "deployment", "valid-deployment", "--image=demo:v1", *ns)
    p = cluster.kubectl("patch", "deployment", "valid-deployment", "--type", "json", *ns,
                        "-p", '[{"op": "remove", "path": "/spec/template/spec/containers/0/livenessProbe"}]',
                        check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == ("The request is invalid: the server rejected our request due to an error in "
                                "our request")
    p = cluster.kubectl("patch", "sa", "default", "--type=json", *ns,
                        "-p", '[{"op": "add", "path": "/secrets/1", "value": {"name": "whatever" } }]',
                        check=False)
    assert p.stderr.strip() == ("The request is invalid: the server rejected our request due to an error in "
                                "our request")


def test_api_resources_list_what_kube_apiserver_serves(cluster, namespace):
    # `kubectl api-resources -o wide`: the legacy `bindings` collection (create only) and
    # csistoragecapacities are served; namespaces have no deletecollection (as upstream's
    # api/discovery/api__v1.json), so a DELETE of the collection is a 405
    lines = cluster.kubectl("api-resources", "-o", "wide").stdout.splitlines()
    at = {col: lines[0].index(col) for col in ("APIVERSION", "NAMESPACED", "VERBS", "CATEGORIES")}
    rows = {(r.split()[0], r[at["APIVERSION"]:at["NAMESPACED"]].strip()): r[at["VERBS"]:at["CATEGORIES"]].strip()
            for r in lines[1:]}
    assert rows[("bindings", "v1")] == "create"
    assert rows[("namespaces", "v1")] == "create,delete,get,list,patch,update,watch"
    assert ("csistoragecapacities", "storage.k8s.io/v1") in rows
    p = cluster.kubectl("delete", "--raw", "/api/v1/namespaces", check=False)
    assert "(MethodNotAllowed)" in p.stderr

    # a pod for a scheduler that does not exist, bound by hand through POST .../bindings
    ns = ["-n", namespace]
    cluster.kubectl("run", "manual", "--image=demo:v1", *ns, "--overrides",
                    '{"spec": {"schedulerName": "nobody"}}', "--", "sleep", "600")
    node = cluster.kjson("get", "nodes")["items"][0]["metadata"]["name"]
    binding = json.dumps({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "manual"},
                          "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
    path = f"/api/v1/namespaces/{namespace}/bindings"
    out = cluster.kubectl("create", "--raw", path, "-f", "-", input=binding).stdout
    assert json.loads(out)["status"] == "Success"
    assert cluster.kjson("get", "pod", "manual", *ns)["spec"]["nodeName"] == node
    p = cluster.kubectl("create", "--raw", path, "-f", "-", input=binding, check=False)
    assert f'pod manual is already assigned to node "{node}"' in p.stderr


def test_health_endpoints_verbose_exclude_and_single_checks(cluster):
    # kubernetes.io "Kubernetes API health endpoints": readyz has a shutdown check, `exclude`
    # skips a check ("excluded: ok") and warns about names that match none
    out = cluster.kubectl("get", "--raw", "/readyz?verbose&exclude=etcd&exclude=nope").stdout.splitlines()
    assert out[:3] == ["[+]ping ok", "[+]log ok", "[+]etcd excluded: ok"]
    assert "[+]shutdown ok" in out and out[-1] == "readyz check passed"
    assert 'warn: some health checks cannot be excluded: no matches for "nope"' in out
    live = cluster.kubectl("get", "--raw", "/livez?verbose").stdout
    assert "[+]etcd ok" in live and "shutdown" not in live and live.rstrip().endswith("livez check passed")
    assert cluster.kubectl("get", "--raw", "/readyz/shutdown").stdout == "ok"
    assert cluster.kubectl("get", "--raw", "/readyz").stdout == "ok"


def test_cronjob_leaves_a_manual_job_out_of_active(cluster, namespace):
    # `kubectl create job --from=cronjob/x`: the CronJob controller reports the Job it did not
    # start ("UnexpectedJob") and does not count it as ACTIVE (upstream syncCronJob)
    ns = ["-n", namespace]
    cluster.kubectl("create", "cronjob", "nightly", "--image=demo:v1", "--schedule=0 0 1 1 *", *ns,
                    "--", "sleep", "600")
    cluster.kubectl("create", "job", "by-hand", "--from=cronjob/nightly", *ns)

    def reported():
        evs = cluster.kjson("get", "events", *ns, "--field-selector", "involvedObject.name=nightly")["items"]
        return [e for e in evs if e["reason"] == "UnexpectedJob"]
    ev = cluster.wait_for(reported, timeout=15, what="the UnexpectedJob event")[0]
    assert ev["type"] == "Warning"
    assert ev["message"] == "Saw a job that the controller did not create or forgot: by-hand"
    row = cluster.kubectl("get", "cronjob", "nightly", *ns, "--no-headers").stdout.split()
    assert row[-3] == "0"  # ACTIVE (the schedule has spaces: count from the end)
    assert not cluster.kjson("get", "cronjob", "nightly", *ns).get("status", {}).get("active")


def test_custom_resources_patch_types_and_embedded_explain(cluster, namespace):
    # "kubectl patch" defaults to a strategic merge patch, which upstream's CRD handler does not
    # accept (no Go struct to carry patch strategies): kubectl says so; --type=merge works
    group = f"{namespace}.cheatsheet.example"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"gadgets.{group}"},
           "spec": {"group": group, "scope": "Namespaced",
                    "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "properties": {"spec": {"type": "object", "properties": {
                            "size": {"type": "string"},
                            "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                                         "x-kubernetes-preserve-unknown-fields": True}}}}}}}]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(crd))
    try:
        cluster.kubectl("wait", "--for=condition=Established", f"crd/gadgets.{group}", "--timeout=20s")
        ns = ["-n", namespace]
        obj = {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"size": "S"}}
        cluster.wait_for(lambda: cluster.kubectl("apply", "-f", "-", *ns, input=json.dumps(obj),
                                                 check=False).returncode == 0, timeout=10, what="gadget g1")
        p = cluster.kubectl("patch", f"gadgets.{group}", "g1", *ns, "-p", '{"spec":{"size":"M"}}', check=False)
        assert p.returncode == 1
        assert p.stderr.strip() == (
            f"error: application/strategic-merge-patch+json is not supported by {group}/v1, Kind=Gadget: "
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")
        cluster.kubectl("patch", f"gadgets.{group}", "g1", *ns, "--type=merge", "-p", '{"spec":{"size":"M"}}')
        assert cluster.kjson("get", f"gadgets.{group}", "g1", *ns)["spec"]["size"] == "M"
        # kubectl apply reads the PATCH's content types in /openapi/v3 and, finding no strategic
        # merge patch there, sends a JSON merge patch
        obj["spec"]["size"] = "L"
        assert cluster.kubectl("apply", "-f", "-", *ns, input=json.dumps(obj)).stdout.strip() == \
            f"gadget.{group}/g1 configured"
        assert cluster.kjson("get", f"gadgets.{group}", "g1", *ns)["spec"]["size"] == "L"

        # `kubectl explain` of an embedded resource: /openapi/v3 gives it apiVersion, kind
        # (both required) and metadata, as upstream's CRD OpenAPI builder
        fields = [line.split() for line in cluster.kubectl(
            "explain", f"gadgets.{group}.spec.template").stdout.splitlines() if "\t<" in line]
        assert fields == [["apiVersion", "<string>", "-required-"], ["kind", "<string>", "-required-"],
                          ["metadata", "<ObjectMeta>"]]
    finally:
        cluster.kubectl("delete", "crd", f"gadgets.{group}", "--wait=false", check=False)


def test_request_metrics_carry_the_dry_run_label(cluster, namespace):
    # `kubectl get --raw /metrics`: apiserver_request_total is broken out by dry run value, as
    # upstream ("All" for `--dry-run=server`, "" otherwise); the long-running gauge is not
    from prometheus_client.parser import text_string_to_metric_families

    cluster.kubectl("create", "configmap", "dry", "-n", namespace, "--dry-run=server")
    fams = {f.name: f for f in text_string_to_metric_families(cluster.kubectl("get", "--raw", "/metrics").stdout)}
    posts = [s.labels for s in fams["apiserver_request"].samples
             if s.labels.get("resource") == "configmaps" and s.labels.get("verb") == "POST"]
    assert {"dry_run": "All", "code": "201", "scope": "namespace"}.items() <= \
        next(lab for lab in posts if lab["dry_run"] == "All").items()
    assert all("dry_run" in s.labels for s in fams["apiserver_request"].samples)
    assert all("dry_run" not in s.labels for s in fams["apiserver_longrunning_requests"].samples)


def test_terminating_namespace_says_what_holds_it(cluster, namespace):
    # `kubectl describe ns` of a namespace stuck in Terminating: the namespace controller's
    # conditions name the resources left and the finalizers holding them, as upstream
    ns = ["-n", namespace]
    cluster.kubectl("create", "configmap", "held", *ns)
    cluster.kubectl("patch", "configmap", "held", *ns, "--type=merge", "-p",
                    '{"metadata": {"finalizers": ["example.com/hold"]}}')
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")

    def conditions():
        st = cluster.kjson("get", "namespace", namespace).get("status", {})
        return {c["type"]: c for c in st.get("conditions") or []}
    conds = cluster.wait_for(lambda: "NamespaceFinalizersRemaining" in conditions() and conditions(),
                             timeout=15, what="the namespace's deletion conditions")
    assert (conds["NamespaceContentRemaining"]["status"], conds["NamespaceContentRemaining"]["message"]) == (
        "True", "Some resources are remaining: configmaps. has 1 resource instances")
    assert conds["NamespaceFinalizersRemaining"]["message"] == (
        "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances")
    assert (conds["NamespaceDeletionContentFailure"]["status"], conds["NamespaceDeletionContentFailure"]["reason"]) \
        == ("False", "ContentDeleted")
    out = cluster.kubectl("describe", "namespace", namespace).stdout
    assert "Conditions:" in out and "SomeFinalizersRemain" in out

    cluster.kubectl("patch", "configmap", "held", *ns, "--type=json", "-p",
                    '[{"op": "remove", "path": "/metadata/finalizers"}]')
    cluster.wait_for(lambda: cluster.kubectl("get", "namespace", namespace, check=False).returncode == 1,
                     timeout=20, what="the namespace gone")


def test_field_selectors_compare_upstreams_selectable_fields(cluster, namespace):
    # "kubectl get ... --field-selector": a field's value is what the kind's ToSelectableFields
    # gives (Go zero values for absent fields, a job's succeeded count, an event's source
    # component), not the JSON at the label's path
    ns = ["-n", namespace]
    cluster.kubectl("create", "job", "once", "--image=demo:v1", *ns, "--", "true")
    cluster.kubectl("wait", "--for=condition=Complete", "job/once", *ns, "--timeout=30s")

    def names(*args: str) -> list[str]:
        return cluster.kubectl("get", *args, "-o", "name").stdout.split()
    assert names("jobs", *ns, "--field-selector", "status.successful=1") == ["job.batch/once"]
    assert names("jobs", *ns, "--field-selector", "status.successful=0") == []
    assert len(names("pods", *ns, "--field-selector", "spec.hostNetwork=false")) == 1
    assert names("events", *ns, "--field-selector", "source=job-controller")
    # events.k8s.io selects by its own field names (regarding.*, reportingController), as upstream
    assert names("events.events.k8s.io", *ns, "--field-selector", "regarding.name=once,reportingController=job-controller")
    p = cluster.kubectl("get", "events.events.k8s.io", *ns, "--field-selector", "involvedObject.name=once", check=False)
    assert "field label not supported: involvedObject.name" in p.stderr
    node = cluster.kjson("get", "nodes")["items"][0]["metadata"]["name"]
    assert f"node/{node}" in names("nodes", "--field-selector", "spec.unschedulable=false")
    # old clients' spec.host is spec.nodeName (the pod conversion func's alias)
    assert names("pods", *ns, "--field-selector", f"spec.host={node}") == \
        names("pods", *ns, "--field-selector", f"spec.nodeName={node}") != []

    # `kubectl get events -o wide`: SOURCE is "component, host" (printEvent's formatEventSource)
    lines = cluster.kubectl("get", "events", *ns, "-o", "wide", "--field-selector", "reason=Started").stdout.splitlines()
    start, end = lines[0].index("SOURCE"), lines[0].index("MESSAGE")
    assert lines[1][start:end].strip() == f"kubelet, {node}"
