"""The OpenAPI documents, checked for what kubectl relies on."""

import orjson

from kybern.api import openapi
from tests.unit.api.served import SERVED

DEPLOYMENTS = "/apis/apps/v1/namespaces/{namespace}/deployments"


def test_v3_index_lists_group_versions_with_content_hash():
    index = openapi.v3_index(SERVED)
    paths = index["paths"]
    assert {"api", "apis", "api/v1", "apis/apps", "apis/apps/v1",
            "apis/coordination.k8s.io/v1"} <= set(paths)
    url = paths["apis/apps/v1"]["serverRelativeURL"]
    body, digest = openapi.v3_path_json("apis/apps/v1", SERVED)
    assert url == f"/openapi/v3/apis/apps/v1?hash={digest}"
    assert len(digest) == 128 and digest == digest.upper()
    assert openapi.content_hash(body) == digest
    assert openapi.v3_index(list(reversed(SERVED))) == index  # order-independent, stable


def test_v3_patch_operation_advertises_field_validation_for_its_gvk():
    # cli-runtime's queryParamVerifierV3: PATCH op with matching GVK and a fieldValidation param
    doc = openapi.v3_document("apps", "v1", SERVED)
    patch = doc["paths"][DEPLOYMENTS + "/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "kind": "Deployment",
                                                        "version": "v1"}
    assert patch["operationId"] == "patchAppsV1NamespacedDeployment"
    assert patch["x-kubernetes-action"] == "patch"
    names = [p["name"] for p in patch["parameters"]]
    assert {"fieldValidation", "dryRun", "fieldManager", "force"} <= set(names)
    assert set(patch["requestBody"]["content"]) == {
        "application/apply-patch+yaml", "application/json-patch+json",
        "application/merge-patch+json", "application/strategic-merge-patch+json"}
    create = doc["paths"][DEPLOYMENTS]["post"]
    assert create["operationId"] == "createAppsV1NamespacedDeployment"
    assert "fieldValidation" in [p["name"] for p in create["parameters"]]
    assert create["requestBody"]["content"]["*/*"]["schema"] == {
        "$ref": "#/components/schemas/io.k8s.api.apps.v1.Deployment"}


def test_v3_operation_ids_follow_upstream():
    core = openapi.v3_document("", "v1", SERVED)
    ids = {op["operationId"] for item in core["paths"].values()
           for key, op in item.items() if key != "parameters"}
    assert {"listCoreV1NamespacedPod", "listCoreV1PodForAllNamespaces", "readCoreV1NamespacedPodLog",
            "createCoreV1NamespacedPodBinding", "replaceCoreV1NamespacedPodStatus", "listCoreV1Node",
            "deleteCoreV1CollectionNamespacedConfigMap", "watchCoreV1NamespacedPodList",
            "getCoreV1APIResources", "connectCoreV1PostNamespacedPodExec"} <= ids
    lease = openapi.v3_document("coordination.k8s.io", "v1", SERVED)
    assert "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases" in lease["paths"]
    get = lease["paths"]["/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"]["get"]
    assert get["operationId"] == "readCoordinationV1NamespacedLease"
    assert get["tags"] == ["coordination_v1"]


def test_v3_components_use_component_refs_and_keep_extensions():
    doc = openapi.v3_document("apps", "v1", SERVED)
    schemas = doc["components"]["schemas"]
    dep = schemas["io.k8s.api.apps.v1.Deployment"]
    assert {"group": "apps", "kind": "Deployment", "version": "v1"} in \
        dep["x-kubernetes-group-version-kind"]
    strategy = schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"]
    assert strategy["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"}]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert "#/definitions/" not in orjson.dumps(doc).decode()
    assert "io.k8s.api.autoscaling.v1.Scale" in schemas
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.Status" in schemas
    assert "io.k8s.api.batch.v1.Job" not in schemas


def test_v3_unknown_path_is_none():
    assert openapi.v3_path_json("apis/batch/v1", SERVED) is None
    assert openapi.v3_document("apps", "v2", SERVED) is None


def test_v2_document_shape():
    doc = openapi.v2_document(SERVED)
    assert doc["swagger"] == "2.0"
    op = doc["paths"][DEPLOYMENTS + "/{name}"]["patch"]
    assert op["operationId"] == "patchAppsV1NamespacedDeployment"
    assert "application/strategic-merge-patch+json" in op["consumes"]
    names = [p["name"] for p in op["parameters"]]
    assert names[0] == "body" and "fieldValidation" in names
    assert op["parameters"][0]["schema"] == {
        "$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}
    assert op["responses"]["200"]["schema"] == {"$ref": "#/definitions/io.k8s.api.apps.v1.Deployment"}
    assert "io.k8s.api.core.v1.Pod" in doc["definitions"]
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent" in doc["definitions"]
    scale = doc["paths"][DEPLOYMENTS + "/{name}/scale"]["put"]
    assert scale["x-kubernetes-group-version-kind"] == {"group": "autoscaling", "kind": "Scale",
                                                        "version": "v1"}
    body, digest = openapi.v2_json(SERVED)
    assert orjson.loads(body)["swagger"] == "2.0" and digest


def test_documents_are_cached():
    assert openapi.v2_document(SERVED) is openapi.v2_document(SERVED)
    assert openapi.v3_path_json("api/v1", SERVED)[0] is openapi.v3_path_json("api/v1", SERVED)[0]
