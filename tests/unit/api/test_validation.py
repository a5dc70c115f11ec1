"""Validation against upstream schemas: types, required, enums, unknown fields,
and upstream's wording for each."""

import copy
import timeit

from kybern.api import schemas, validation

DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"


def deployment() -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "nginx", "image": "nginx:1.25",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "resources": {"limits": {"cpu": "500m", "memory": 128974848}},
                    "env": [{"name": "A", "value": "b"}],
                }]},
            },
        },
    }


def test_valid_object_has_no_causes():
    assert validation.validate(deployment(), DEPLOYMENT) == ([], [])


def test_nulls_are_accepted_like_go_decoding():
    obj = deployment()
    obj["spec"]["paused"] = None
    obj["metadata"]["annotations"] = None
    assert validation.validate(obj, DEPLOYMENT) == ([], [])


def test_wrong_type_cause_uses_schema_validation_wording():
    obj = deployment()
    obj["spec"]["replicas"] = "string"
    causes, unknown = validation.validate(obj, DEPLOYMENT)
    assert causes == [{
        "type": "FieldValueInvalid", "field": "spec.replicas",
        "message": 'Invalid value: "string": spec.replicas in body must be of type integer: "string"',
    }]
    assert unknown == []


def test_decode_error_uses_go_json_wording():
    obj = deployment()
    obj["spec"]["replicas"] = "string"
    err = validation.decode_error("Deployment", "apps/v1", validation.check(obj, DEPLOYMENT))
    assert err.code == 400 and err.reason == "BadRequest"
    assert err.message == ('Deployment in version "v1" cannot be handled as a Deployment: json: '
                           "cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas"
                           " of type int32")
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"] = {"name": "x"}
    err = validation.decode_error("Deployment", "apps/v1", validation.check(obj, DEPLOYMENT))
    assert err.message.endswith("cannot unmarshal object into Go struct field "
                                "PodSpec.spec.template.spec.containers of type []v1.Container")


def test_int_or_string_and_quantity():
    obj = deployment()
    obj["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = True
    obj["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "lots"
    causes, _ = validation.validate(obj, DEPLOYMENT)
    fields = [c["field"] for c in causes]
    assert fields == ["spec.strategy.rollingUpdate.maxSurge",
                      "spec.template.spec.containers[0].resources.limits[cpu]"]
    assert "quantities must match the regular expression" in causes[1]["message"]


def test_required_fields():
    obj = deployment()
    del obj["spec"]["template"]["spec"]["containers"][0]["name"]
    del obj["spec"]["selector"]
    causes, _ = validation.validate(obj, DEPLOYMENT)
    assert {"type": "FieldValueRequired", "message": "Required value",
            "field": "spec.template.spec.containers[0].name"} in causes
    assert {"type": "FieldValueRequired", "message": "Required value",
            "field": "spec.selector"} in causes
    assert validation.validate(obj, DEPLOYMENT, check_required=False) == ([], [])


def test_unknown_fields_are_collected_with_paths():
    obj = deployment()
    obj["spec"]["foo"] = 1
    obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyx"] = "Always"
    causes, unknown = validation.validate(obj, DEPLOYMENT)
    assert causes == []
    assert unknown == ["spec.template.spec.containers[0].imagePullPolicyx", "spec.foo"]
    err = validation.strict_error("Deployment", "apps/v1", unknown)
    assert err.code == 400
    assert err.message == (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.template.spec.containers[0].imagePullPolicyx", unknown field "spec.foo"')
    assert validation.unknown_field_messages(["spec.foo"]) == ['unknown field "spec.foo"']


def test_free_form_fields_accept_anything():
    obj = deployment()
    obj["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {"x": {}}}}]
    assert validation.validate(obj, DEPLOYMENT) == ([], [])


def test_root_prefix():
    causes, unknown = validation.validate({"replicas": "x", "bogus": 1},
                                          "io.k8s.api.apps.v1.DeploymentSpec", root="spec")
    assert causes[0]["field"] == "spec.replicas"
    assert "spec.bogus" in unknown


def test_enum_from_registered_schema():
    schemas.register("com.example.v1.Thing", {"type": "object", "properties": {
        "mode": {"type": "string", "enum": ["a", "b"]}}})
    try:
        causes, _ = validation.validate({"mode": "c"}, "com.example.v1.Thing")
        assert causes == [{"type": "FieldValueNotSupported", "field": "mode",
                           "message": 'Unsupported value: "c": supported values: "a", "b"'}]
    finally:
        schemas.unregister("com.example.v1.Thing")


def test_prune_drops_unknown_fields_in_place():
    obj = deployment()
    obj["spec"]["foo"] = 1
    obj["spec"]["template"]["spec"]["containers"][0]["bar"] = 2
    expected = deployment()
    assert validation.prune(obj, DEPLOYMENT) == expected
    assert obj == expected


def test_fast_enough():
    obj = deployment()
    validation.validate(obj, DEPLOYMENT)
    per_call = timeit.timeit(lambda: validation.validate(obj, DEPLOYMENT), number=200) / 200
    assert per_call < 0.001
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": copy.deepcopy(deployment()["spec"]["template"]["spec"])}
    assert validation.validate(pod, "io.k8s.api.core.v1.Pod") == ([], [])
