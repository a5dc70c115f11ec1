"""ObjectMeta's maps and lists are `omitempty` (k8s.io/apimachinery metav1.ObjectMeta):
kube-apiserver decodes every body into ObjectMeta, custom resources' too
(apiextensions' objectmeta.Coerce/SetObjectMeta), so an empty `labels`, `annotations`,
`finalizers` or `ownerReferences` is neither stored nor returned. Operators see it when
they remove their last finalizer or annotation (kopf does both with merge patches).
Built-in kinds' other omitempty lists and maps go the same way; custom resources'
stay."""

from __future__ import annotations

import json

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gizmos.omitempty.e2e.kybern.dev
spec:
  group: omitempty.e2e.kybern.dev
  scope: Namespaced
  names: {plural: gizmos, singular: gizmo, kind: Gizmo}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


def test_empty_metadata_maps_and_lists_are_omitted(cluster, namespace):
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "empty", "labels": {}, "annotations": {}, "finalizers": [],
                         "ownerReferences": []}}
    created = json.loads(cluster.kubectl("create", "-n", namespace, "-f", "-", "-o", "json",
                                         input=json.dumps(body)).stdout)
    assert not {"labels", "annotations", "finalizers", "ownerReferences"} & set(created["metadata"])

    # the last label and annotation removed: the maps go, as kubectl then shows
    cluster.kubectl("label", "-n", namespace, "cm", "empty", "a=b")
    cluster.kubectl("annotate", "-n", namespace, "cm", "empty", "c=d")
    cluster.kubectl("label", "-n", namespace, "cm", "empty", "a-")
    cluster.kubectl("annotate", "-n", namespace, "cm", "empty", "c-")
    meta = cluster.kjson("get", "-n", namespace, "cm", "empty")["metadata"]
    assert "labels" not in meta
    assert "annotations" not in meta

    # a custom resource's last finalizer removed with a merge patch, as an operator does
    cluster.kubectl("apply", "-f", "-", input=CRD)
    cluster.kubectl("wait", "--for=condition=Established", "crd/gizmos.omitempty.e2e.kybern.dev")
    gizmo = {"apiVersion": "omitempty.e2e.kybern.dev/v1", "kind": "Gizmo",
             "metadata": {"name": "g", "finalizers": ["example.com/hold"], "labels": {}}}
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(gizmo))
    cluster.kubectl("patch", "-n", namespace, "gizmo", "g", "--type", "merge",
                    "-p", '{"metadata":{"finalizers":[]}}')
    meta = cluster.kjson("get", "-n", namespace, "gizmo", "g")["metadata"]
    assert "finalizers" not in meta
    assert "labels" not in meta

    # a wrong type is still refused, not dropped
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad", "labels": []}}
    p = cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(bad), check=False)
    assert p.returncode == 1


def test_empty_omitempty_lists_and_maps_of_built_in_kinds_are_omitted(cluster, namespace):
    """Beyond metadata: a built-in kind's body goes through its Go type too, so an empty
    list or map in an omitempty field is dropped at any depth (a webhook configuration's
    `webhooks: []`, a ConfigMap's `data: {}`, a template container's `env: []`), while
    one without omitempty (a Role's `rules`) stays `[]`, as do a custom resource's."""
    vwc = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
           "metadata": {"name": f"empty-{namespace}"}, "webhooks": []}
    created = json.loads(cluster.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(vwc)).stdout)
    try:
        assert "webhooks" not in created
        assert "webhooks" not in cluster.kjson("get", "validatingwebhookconfiguration", f"empty-{namespace}")
        rows = cluster.kubectl("get", "validatingwebhookconfiguration", f"empty-{namespace}").stdout.split()
        assert rows[:3] == ["NAME", "WEBHOOKS", "AGE"] and rows[4] == "0"
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", f"empty-{namespace}", check=False)
    objs = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nodata"}, "data": {}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "norules"},
             "rules": []},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "noenv"},
             "spec": {"selector": {"matchLabels": {"app": "noenv"}}, "template": {
                 "metadata": {"labels": {"app": "noenv"}, "annotations": {}},
                 "spec": {"nodeSelector": {}, "containers": [{"name": "c", "image": "demo:v1", "env": [],
                                                              "ports": [{"containerPort": 80}]}]}}}}]
    out = cluster.kubectl("create", "-n", namespace, "--dry-run=server", "-o", "json", "-f", "-",
                          input="\n".join(json.dumps(o) for o in objs)).stdout
    dec, got, i = json.JSONDecoder(), [], 0
    while out[i:].strip():
        obj, n = dec.raw_decode(out[i:].lstrip())
        i = len(out) - len(out[i:].lstrip()) + n
        got.append(obj)
    cm, role, deploy = got
    assert "data" not in cm
    assert role["rules"] == []
    tmpl = deploy["spec"]["template"]
    assert "annotations" not in tmpl["metadata"] and "nodeSelector" not in tmpl["spec"]
    c = tmpl["spec"]["containers"][0]
    assert "env" not in c and c["ports"] == [{"containerPort": 80, "protocol": "TCP"}]

    # a custom resource's empty list stays (unstructured upstream)
    cluster.kubectl("apply", "-f", "-", input=CRD)
    cluster.kubectl("wait", "--for=condition=Established", "crd/gizmos.omitempty.e2e.kybern.dev")
    gizmo = {"apiVersion": "omitempty.e2e.kybern.dev/v1", "kind": "Gizmo", "metadata": {"name": "lists"},
             "spec": {"webhooks": [], "data": {}}}
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(gizmo))
    assert cluster.kjson("get", "-n", namespace, "gizmo", "lists")["spec"] == {"webhooks": [], "data": {}}
