"""CRD validation rules (x-kubernetes-validations, CEL) through the real kubectl
and the official Python client: the 422s a user sees for an invalid custom
resource, transition rules on update, and a CRD whose rule does not compile."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "crontabs.cel.example.com"},
    "spec": {
        "group": "cel.example.com",
        "scope": "Namespaced",
        "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab"},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "x-kubernetes-validations": [
                    {"rule": "self.metadata.name.startsWith('c')", "message": "name must start with c"}],
                "properties": {
                    "spec": {
                        "type": "object",
                        "x-kubernetes-validations": [
                            {"rule": "self.minReplicas <= self.replicas",
                             "message": "replicas should be greater than or equal to minReplicas."},
                            {"rule": "self.replicas <= self.maxReplicas"},
                            {"rule": "!has(self.image) || self.image.matches('^[a-z]+:[0-9.]+$')",
                             "messageExpression": "'image ' + self.image + ' has no version tag'",
                             "fieldPath": ".image"},
                            {"rule": "self.size() > 0 && !('forbidden' in self)", "reason": "FieldValueForbidden",
                             "message": "forbidden is not allowed"},
                            {"rule": "self.?maxReplicas.orValue(0) <= 10", "message": "maxReplicas is at most 10"},
                        ],
                        "properties": {
                            "replicas": {"type": "integer"},
                            "minReplicas": {"type": "integer"},
                            "maxReplicas": {"type": "integer"},
                            "image": {"type": "string"},
                            "forbidden": {"type": "string"},
                            "mode": {"type": "string",
                                     "x-kubernetes-validations": [
                                         {"rule": "self == oldSelf", "message": "mode is immutable"}]},
                            "cpu": {"type": "string",
                                    "x-kubernetes-validations": [
                                        {"rule": "quantity(self).isLessThan(quantity('4'))",
                                         "message": "at most 4 CPUs"}]},
                            "endpoint": {"type": "string",
                                         "x-kubernetes-validations": [
                                             {"rule": "isURL(self) && url(self).getScheme() == 'https'",
                                              "message": "must be an https URL"}]},
                            "tags": {"type": "array", "items": {"type": "string"},
                                     "x-kubernetes-validations": [
                                         {"rule": "self.all(t, t.lowerAscii() == t)",
                                          "message": "tags must be lower case"}]},
                            "counter": {"type": "integer",
                                        "x-kubernetes-validations": [
                                            {"rule": "!oldSelf.hasValue() || self >= oldSelf.value()",
                                             "optionalOldSelf": True,
                                             "messageExpression":
                                                 "'counter may not go down from ' + string(oldSelf.value())"}]},
                        },
                    },
                    "status": {"type": "object", "properties": {
                        "phase": {"type": "string", "x-kubernetes-validations": [
                            {"rule": "self in ['Pending', 'Running']"}]}}},
                },
            }},
        }],
    },
}


def _cr(name: str, **spec: object) -> str:
    return json.dumps({"apiVersion": "cel.example.com/v1", "kind": "CronTab", "metadata": {"name": name},
                       "spec": {"replicas": 2, "minReplicas": 1, "maxReplicas": 5, **spec}})


@pytest.fixture(scope="module")
def crd(cluster):
    cluster.kubectl("apply", "-f", "-", input=json.dumps(CRD))
    cluster.kubectl("wait", "--for=condition=Established", "crd/crontabs.cel.example.com", "--timeout=30s")
    cluster.wait_for(lambda: "crontabs" in cluster.kubectl("api-resources", "--api-group=cel.example.com").stdout,
                     what="crontabs served")
    yield
    cluster.kubectl("delete", "crd", "crontabs.cel.example.com", "--wait=false", check=False)


def test_rules_reject_invalid_objects_with_upstream_causes(cluster, crd, namespace):
    p = cluster.kubectl("apply", "-n", namespace, "-f", "-", check=False,
                        input=_cr("cron-a", replicas=9, minReplicas=10, maxReplicas=5))
    assert p.returncode == 1
    assert 'The CronTab "cron-a" is invalid: \n' in p.stderr
    assert '* spec: Invalid value: "object": replicas should be greater than or equal to minReplicas.' in p.stderr
    assert '* spec: Invalid value: "object": failed rule: self.replicas <= self.maxReplicas' in p.stderr

    # messageExpression, fieldPath, reason; the root rule sees metadata.name
    p = cluster.kubectl("create", "-n", namespace, "-f", "-", check=False,
                        input=_cr("xron", image="nginx", forbidden="x"))
    assert p.returncode == 1
    assert '<nil>: Invalid value: "object": name must start with c' in p.stderr
    assert 'spec.image: Invalid value: "object": image nginx has no version tag' in p.stderr
    assert "spec: Forbidden: forbidden is not allowed" in p.stderr

    # optional syntax
    p = cluster.kubectl("create", "-n", namespace, "-f", "-", check=False, input=_cr("cron-m", maxReplicas=11))
    assert p.returncode == 1
    assert 'spec: Invalid value: "object": maxReplicas is at most 10' in p.stderr

    # the Kubernetes CEL libraries: quantity, url, string and list macros
    p = cluster.kubectl("create", "-n", namespace, "-f", "-", check=False,
                        input=_cr("cron-b", cpu="4500m", endpoint="http://x", tags=["ok", "Bad"]))
    assert p.returncode == 1
    assert 'spec.cpu: Invalid value: "string": at most 4 CPUs' in p.stderr
    assert 'spec.endpoint: Invalid value: "string": must be an https URL' in p.stderr
    assert 'spec.tags: Invalid value: "array": tags must be lower case' in p.stderr

    # a valid object is created; the official client sees the same 422 causes
    cluster.kubectl("create", "-n", namespace, "-f", "-",
                    input=_cr("cron-ok", image="nginx:1.27", cpu="500m", endpoint="https://x.example.com/a",
                              tags=["a"], mode="fast", counter=3))
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    api = client.CustomObjectsApi(cluster.api_client())
    with pytest.raises(ApiException) as ei:
        api.create_namespaced_custom_object("cel.example.com", "v1", namespace, "crontabs",
                                            json.loads(_cr("cron-c", replicas=7)))
    assert ei.value.status == 422
    body = json.loads(ei.value.body)
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "spec",
                                          "message": 'Invalid value: "object": failed rule: '
                                                     "self.replicas <= self.maxReplicas"}]


def test_transition_rules_on_update(cluster, crd, namespace):
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=_cr("cron-t", mode="fast", counter=5))
    p = cluster.kubectl("patch", "-n", namespace, "crontab", "cron-t", "--type=merge",
                        "-p", '{"spec": {"mode": "slow", "counter": 4}}', check=False)
    assert p.returncode == 1
    assert 'spec.mode: Invalid value: "string": mode is immutable' in p.stderr
    assert 'spec.counter: Invalid value: "integer": counter may not go down from 5' in p.stderr
    cluster.kubectl("patch", "-n", namespace, "crontab", "cron-t", "--type=merge", "-p", '{"spec": {"counter": 6}}')
    # a field that appears on update has no old value: `self == oldSelf` does not run
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=_cr("cron-u"))
    cluster.kubectl("patch", "-n", namespace, "crontab", "cron-u", "--type=merge", "-p", '{"spec": {"mode": "m"}}')
    # status rules run through the status subresource
    p = cluster.kubectl("patch", "-n", namespace, "crontab", "cron-u", "--subresource=status", "--type=merge",
                        "-p", '{"status": {"phase": "Gone"}}', check=False)
    assert p.returncode == 1
    assert "status.phase: Invalid value: \"string\": failed rule: self in ['Pending', 'Running']" in p.stderr


def test_crd_with_a_rule_that_does_not_compile_is_refused(cluster):
    bad = json.loads(json.dumps(CRD))
    bad["metadata"]["name"] = "bads.cel.example.com"
    bad["spec"]["names"] = {"plural": "bads", "singular": "bad", "kind": "Bad"}
    spec = bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["x-kubernetes-validations"] = [{"rule": "self.replicas >"}, {"rule": "nosuch(self)"},
                                        {"rule": "true", "fieldPath": ".nofield"},
                                        {"rule": "self.replicas > 0 && self.replica < 10"}]
    p = cluster.kubectl("create", "-f", "-", input=json.dumps(bad), check=False)
    assert p.returncode == 1
    err = p.stderr
    assert 'The CustomResourceDefinition "bads.cel.example.com" is invalid' in err
    base = "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations"
    assert f"{base}[0].rule: Invalid value: apiextensions.ValidationRule{{Rule:\"self.replicas >\"" in err
    assert "compilation failed: ERROR: <input>:1:" in err
    assert f"{base}[1].rule: Invalid value:" in err and "undeclared reference to 'nosuch'" in err
    assert f'{base}[2].fieldPath: Invalid value: ".nofield": fieldPath must be a valid path' in err
    assert "compilation failed: ERROR: <input>:1:26: undefined field 'replica'" in err
    assert cluster.kubectl("get", "crd", "bads.cel.example.com", check=False).returncode == 1
