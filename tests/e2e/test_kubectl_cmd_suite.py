"""Behaviour kubectl's own command-line suite (kubernetes test/cmd/*.sh) checks, through the real
kubectl: what a user sees when naming custom resources, printing and patching them."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e

_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "resources.cmdsuite.example.com"},
    "spec": {"group": "cmdsuite.example.com", "scope": "Namespaced",
             "names": {"plural": "resources", "singular": "resource", "kind": "Kind", "listKind": "KindList"},
             "versions": [{"name": "v1alpha1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}


@pytest.fixture(scope="module")
def kind_crd(cluster):
    cluster.kubectl("apply", "-f", "-", input=json.dumps(_CRD))
    cluster.kubectl("wait", "--for=condition=Established", "crd/resources.cmdsuite.example.com")
    yield
    cluster.kubectl("delete", "crd", "resources.cmdsuite.example.com", "--wait=false", check=False)


def test_custom_resource_is_named_by_its_crd_singular(cluster, kind_crd, namespace):
    # crd.sh: a CRD whose singular ("resource") is not its lower-cased kind ("kind")
    obj = {"apiVersion": "cmdsuite.example.com/v1alpha1", "kind": "Kind", "metadata": {"name": "myobj"}}
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(obj))
    for ref in ("resource/myobj", "resources/myobj", "kind.cmdsuite.example.com/myobj"):
        out = cluster.kubectl("get", "-n", namespace, ref, "-o", "name").stdout.strip()
        assert out == "kind.cmdsuite.example.com/myobj", ref
    raw = json.loads(cluster.kubectl("get", "--raw", "/apis/cmdsuite.example.com/v1alpha1").stdout)
    assert [r["singularName"] for r in raw["resources"] if r["name"] == "resources"] == ["resource"]


def test_list_of_custom_resources_with_unknown_fields_applies(cluster, kind_crd, namespace):
    # crd.sh applies a v1 List of custom resources; kubectl validates Lists client-side against
    # /openapi/v2, where a CRD that keeps unknown fields must not list the fields it knows
    items = [{"apiVersion": "cmdsuite.example.com/v1alpha1", "kind": "Kind",
              "metadata": {"name": f"in-list-{i}"}, "someField": "field1", "nested": {"a": 1}} for i in (1, 2)]
    p = cluster.kubectl("apply", "-n", namespace, "-f", "-", check=False,
                        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    assert p.returncode == 0, p.stderr
    assert "kind.cmdsuite.example.com/in-list-1 created" in p.stdout
    got = cluster.kjson("get", "-n", namespace, "resources/in-list-2")
    assert got["someField"] == "field1" and got["nested"] == {"a": 1}


def test_replace_pod_keeps_priority_the_admission_plugin_set(cluster, namespace):
    # generic-resources.sh replaces pods from the manifests they were created from; the
    # Priority plugin keeps spec.priority/preemptionPolicy an update leaves out
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "replaced", "labels": {"app": "r"}},
           "spec": {"automountServiceAccountToken": False, "nodeSelector": {"cmdsuite/none": "true"},
                    "containers": [{"name": "c", "image": "busybox"}]}}
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(pod))
    pod["metadata"]["labels"]["status"] = "replaced"
    p = cluster.kubectl("replace", "-n", namespace, "-f", "-", input=json.dumps(pod), check=False)
    assert p.returncode == 0, p.stderr
    got = cluster.kjson("get", "-n", namespace, "pod/replaced")
    assert got["metadata"]["labels"]["status"] == "replaced"
    assert (got["spec"]["priority"], got["spec"]["preemptionPolicy"]) == (0, "PreemptLowerPriority")


def test_fields_kept_as_unknown_are_owned_by_their_manager(cluster, kind_crd, namespace):
    # crd.sh creates, then applies, custom resources of a CRD that preserves unknown fields;
    # their fields are tracked (deduced) in managedFields, so a server-side apply changing a
    # value another manager set conflicts, as upstream
    obj = {"apiVersion": "cmdsuite.example.com/v1alpha1", "kind": "Kind", "metadata": {"name": "owned"},
           "someField": "field1", "nestedField": {"someSubfield": "subfield1"}}
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(obj))
    got = cluster.kjson("get", "-n", namespace, "resources/owned", "--show-managed-fields")
    fields = got["metadata"]["managedFields"][0]["fieldsV1"]
    assert fields["f:someField"] == {} and "f:someSubfield" in fields["f:nestedField"]
    obj["nestedField"]["someSubfield"] = "changed"
    p = cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=json.dumps(obj), check=False)
    assert p.returncode != 0
    assert 'conflict with "kubectl-create"' in p.stderr and ".nestedField.someSubfield" in p.stderr


def test_subject_access_review_answer_leads_with_type_and_metadata(cluster, tmp_path):
    # authorization.sh posts a SubjectAccessReview and reads the answer as text
    sar = tmp_path / "sar.json"
    sar.write_text(json.dumps({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
        "user": "bob", "groups": ["the-group"], "resourceAttributes": {
            "namespace": "ns", "verb": "create", "group": "autoscaling", "resource": "horizontalpodautoscalers"}}}))
    out = cluster.kubectl("create", "--raw", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                          "-f", str(sar)).stdout
    got = json.loads(out)
    assert list(got) == ["apiVersion", "kind", "metadata", "spec", "status"]
    assert got["metadata"] == {"creationTimestamp": None} and got["status"]["allowed"] is False


def test_persistent_volume_without_capacity_is_refused_as_upstream(cluster):
    # storage.sh creates PVs from the docs' manifests; one without capacity gets upstream's two causes
    pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "cmdsuite-no-capacity"},
          "spec": {"accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp/cmdsuite"}}}
    p = cluster.kubectl("create", "-f", "-", input=json.dumps(pv), check=False)
    assert p.returncode != 0
    assert ('The PersistentVolume "cmdsuite-no-capacity" is invalid: \n* spec.capacity: Required value\n'
            '* spec.capacity: Unsupported value: core.ResourceList(nil): supported values: "storage"') in p.stderr
