"""ObjectMeta's maps and lists are `omitempty` (k8s.io/apimachinery metav1.ObjectMeta):
kube-apiserver decodes every body into ObjectMeta, custom resources' too
(apiextensions' objectmeta.Coerce/SetObjectMeta), so an empty `labels`, `annotations`,
`finalizers` or `ownerReferences` is neither stored nor returned. Operators see it when
they remove their last finalizer or annotation (kopf does both with merge patches)."""

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
