"""Steps of kubectl's own command-line suite (kubernetes/kubernetes test/cmd/core.sh,
create.sh, delete.sh, save-config.sh) where kybern answered differently from
kube-apiserver, with kubectl 1.32 on the shared cluster."""

from __future__ import annotations

import json
import time

POD = """apiVersion: v1
kind: Pod
metadata:
  name: valid-pod
  labels: {name: valid-pod}
spec:
  containers:
  - name: kubernetes-serve-hostname
    image: kybern.test/none:v1
"""


def test_patch_type_mismatch_and_unconditional_replace(cluster, namespace):
    """run_pod_tests: a strategic merge patch whose value does not fit the Go type is
    refused with the converter's words (422, field `patch`), a JSON merge patch with
    the decoder's (400); a replace naming resourceVersion "0" is unconditional."""
    ns = ("-n", namespace)
    cluster.kubectl("create", *ns, "-f", "-", input=POD)
    p = cluster.kubectl("patch", *ns, "pod", "valid-pod", "-p", '{"metadata":{"labels":"invalid"}}', check=False)
    assert p.returncode == 1
    assert ('patch: Invalid value: "map[metadata:map[labels:invalid]]": cannot restore map from string'
            in p.stderr), p.stderr
    p = cluster.kubectl("patch", *ns, "pod", "valid-pod", "--type=merge", "-p",
                        '{"spec":{"activeDeadlineSeconds":"x"}}', check=False)
    assert "cannot unmarshal string into Go struct field PodSpec.spec.activeDeadlineSeconds of type int64" \
        in p.stderr, p.stderr

    meta = {"name": "rv0", "namespace": namespace}
    cluster.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                                                           "data": {"a": "b"}}))
    cluster.kubectl("replace", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "c"},
                                                            "metadata": {**meta, "resourceVersion": "0"}}))
    assert cluster.kjson("get", "cm", "rv0", *ns)["data"] == {"a": "c"}


def test_immortal_namespaces_may_not_be_deleted(cluster):
    """run_namespace_tests (`kubectl delete namespace --all`): default, kube-system and
    kube-public are refused by NamespaceLifecycle, even as a dry run; so are the system
    PriorityClasses."""
    for ns in ("default", "kube-system", "kube-public"):
        p = cluster.kubectl("delete", "namespace", ns, "--dry-run=server", check=False)
        assert p.returncode == 1
        assert f'Error from server (Forbidden): namespaces "{ns}" is forbidden: this namespace may not be ' \
               f'deleted' in p.stderr, p.stderr
    assert "default" in cluster.kubectl("get", "ns", "default").stdout
    # nor the system priority classes (the priorityclass REST's Delete)
    p = cluster.kubectl("delete", "priorityclass", "system-node-critical", "--dry-run=server", check=False)
    assert ('Error from server (Forbidden): priorityclasses.scheduling.k8s.io "system-node-critical" is '
            'forbidden: this is a system priority class and cannot be deleted') in p.stderr, p.stderr


def test_create_raw_yaml_is_an_unrecognized_object(cluster, tmp_path):
    """run_kubectl_create_error_tests: `kubectl create --raw` posts the file's bytes with
    no Content-Type; YAML there is JSON that does not parse, refused as upstream words it."""
    f = tmp_path / "pod.yaml"
    f.write_text(POD)
    p = cluster.kubectl("create", "--raw", "/api/v1/namespaces", "-f", str(f), check=False)
    assert p.returncode == 1
    assert ("the object provided is unrecognized (must be of type Namespace): couldn't get version/kind; "
            "json parse error: invalid character 'a' looking for beginning of value "
            "(61706956657273696f6e3a2076310a6b696e643a20506f640a6d65746164 ...)") in p.stderr, p.stderr
    # valid JSON that is no object: Go's error for the struct apiVersion and kind are read into
    f.write_text("[1]\n")
    p = cluster.kubectl("create", "--raw", "/api/v1/namespaces", "-f", str(f), check=False)
    assert ("json parse error: json: cannot unmarshal array into Go value of type struct { APIVersion string "
            '"json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" } (5b315d0a)') \
        in p.stderr, p.stderr


def test_get_scale_subresource_columns(cluster, namespace):
    """`kubectl get rc x --subresource=scale` prints upstream's Scale columns (printScale)."""
    rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "frontend"},
          "spec": {"replicas": 0, "selector": {"app": "fe"}, "template": {
              "metadata": {"labels": {"app": "fe"}},
              "spec": {"containers": [{"name": "c", "image": "kybern.test/none:v1"}]}}}}
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(rc))
    out = cluster.kubectl("get", "-n", namespace, "rc", "frontend", "--subresource=scale").stdout.split("\n")
    assert out[0].split() == ["NAME", "DESIRED", "AVAILABLE", "AGE"], out
    assert out[1].split()[:3] == ["frontend", "0", "0"], out


def test_node_created_by_hand_has_no_condition_taints(cluster):
    """run_nodes_tests creates Node 127.0.0.1 with no kubelet: it has no Ready condition,
    so no condition taint until the startup grace (60 s) marks it Unknown (upstream's node
    lifecycle maps only the conditions a node has)."""
    name = "kc1-handmade-node"
    cluster.kubectl("create", "-f", "-", input=json.dumps({"kind": "Node", "apiVersion": "v1",
                                                             "metadata": {"name": name}}))
    try:
        cluster.wait_for(lambda: "RegisteredNode" in cluster.kubectl(
            "get", "events", "-n", "default", "--field-selector", f"involvedObject.name={name}").stdout,
            what="the node controller to see the node")
        time.sleep(1)  # the pass that registered it would have tainted it by now
        assert (cluster.kjson("get", "node", name).get("spec") or {}).get("taints") is None
    finally:
        cluster.kubectl("delete", "node", name)
