"""ValidatePodSpec's volume, mount, env, probe, security context and DNS checks
(kybern/api/pod_validation.py): a table of bad specs and the cause kube-apiserver
1.32 gives for each (field path, reason, message), and specs that must stay valid."""

from __future__ import annotations

import copy

import pytest

from kybern.api.core import PodStrategy, default_pod_spec, validate_pod_spec

C = {"name": "c", "image": "busybox"}


def _causes(spec):
    spec = copy.deepcopy(spec)
    spec.setdefault("containers", [dict(C)])
    default_pod_spec(spec)
    return [(c["field"], c["type"], c["message"]) for c in validate_pod_spec(spec, "spec")]


def _c(**kw):
    return {**C, **kw}


BAD = [
    # volumes
    ({"volumes": [{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]},
     ("spec.volumes[1].name", "FieldValueDuplicate", 'Duplicate value: "v"')),
    ({"volumes": [{"name": "Bad_Name", "emptyDir": {}}]},
     ("spec.volumes[0].name", "FieldValueInvalid", 'Invalid value: "Bad_Name": a lowercase RFC 1123 label must '
      "consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character "
      "(e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")),
    ({"volumes": [{"name": "v", "emptyDir": {}, "configMap": {"name": "x"}}]},
     ("spec.volumes[0].configMap", "FieldValueForbidden", "Forbidden: may not specify more than 1 volume type")),
    ({"volumes": [{"name": "v", "configMap": {"name": "x", "defaultMode": 1000}}]},
     ("spec.volumes[0].configMap.defaultMode", "FieldValueInvalid",
      "Invalid value: 1000: must be a number between 0 and 0777 (octal), both inclusive")),
    ({"volumes": [{"name": "v", "configMap": {"name": "x", "items": [{"key": "k", "path": "a/../b"}]}}]},
     ("spec.volumes[0].configMap.items[0].path", "FieldValueInvalid", 'Invalid value: "a/../b": must not contain '
      "'..'")),
    ({"volumes": [{"name": "v", "secret": {"secretName": "s", "items": [{"key": "k", "path": "/etc/x"}]}}]},
     ("spec.volumes[0].secret.items[0].path", "FieldValueInvalid", 'Invalid value: "/etc/x": must be a relative '
      "path")),
    ({"volumes": [{"name": "v", "secret": {}}]},
     ("spec.volumes[0].secret.secretName", "FieldValueRequired", "Required value")),
    ({"volumes": [{"name": "v", "hostPath": {"path": "/x", "type": "Dir"}}]},
     ("spec.volumes[0].hostPath.type", "FieldValueNotSupported", 'Unsupported value: "Dir": supported values: "", '
      '"BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket"')),
    ({"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": ""}}]},
     ("spec.volumes[0].persistentVolumeClaim.claimName", "FieldValueRequired", "Required value")),
    ({"volumes": [{"name": "v", "projected": {"sources": [{"serviceAccountToken": {"path": "t",
                                                                                   "expirationSeconds": 60}}]}}]},
     ("spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds", "FieldValueInvalid",
      "Invalid value: 60: may not specify a duration less than 10 minutes")),
    ({"volumes": [{"name": "v", "downwardAPI": {"items": [{"path": "n",
                                                            "fieldRef": {"fieldPath": "spec.nodeName"}}]}}]},
     ("spec.volumes[0].downwardAPI.fieldRef.fieldPath", "FieldValueNotSupported", 'Unsupported value: '
      '"spec.nodeName": supported values: "metadata.annotations", "metadata.labels", "metadata.name", '
      '"metadata.namespace", "metadata.uid"')),
    # mounts
    ({"containers": [_c(volumeMounts=[{"name": "data", "mountPath": "/d"}])]},
     ("spec.containers[0].volumeMounts[0].name", "FieldValueNotFound", 'Not found: "data"')),
    ({"volumes": [{"name": "v", "emptyDir": {}}],
      "containers": [_c(volumeMounts=[{"name": "v", "mountPath": "/d"}, {"name": "v", "mountPath": "/d"}])]},
     ("spec.containers[0].volumeMounts[1].mountPath", "FieldValueInvalid", 'Invalid value: "/d": must be unique')),
    ({"volumes": [{"name": "v", "emptyDir": {}}],
      "containers": [_c(volumeMounts=[{"name": "v", "mountPath": "/d", "subPath": "../x"}])]},
     ("spec.containers[0].volumeMounts.subPath", "FieldValueInvalid", 'Invalid value: "../x": must not contain '
      "'..'")),
    ({"volumes": [{"name": "v", "emptyDir": {}}],
      "containers": [_c(volumeMounts=[{"name": "v", "mountPath": "/d", "mountPropagation": "Shared"}])]},
     ("spec.containers[0].volumeMounts.mountPropagation", "FieldValueNotSupported", 'Unsupported value: "Shared": '
      'supported values: "Bidirectional", "HostToContainer", "None"')),
    # env
    ({"containers": [_c(env=[{"name": "A=B", "value": "1"}])]},
     ("spec.containers[0].env[0].name", "FieldValueInvalid", 'Invalid value: "A=B": a valid environment variable '
      "name must consist only of printable ASCII characters other than '='")),
    ({"containers": [_c(env=[{"name": "", "value": "1"}])]},
     ("spec.containers[0].env[0].name", "FieldValueRequired", "Required value")),
    ({"containers": [_c(env=[{"name": "X", "valueFrom": {}}])]},
     ("spec.containers[0].env[0].valueFrom", "FieldValueInvalid", 'Invalid value: "": must specify one of: '
      "`fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`")),
    ({"containers": [_c(env=[{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}}])]},
     ("spec.containers[0].env[0].valueFrom.fieldRef.fieldPath", "FieldValueNotSupported", 'Unsupported value: '
      '"status.phase": supported values: "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", '
      '"spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"')),
    ({"containers": [_c(env=[{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "metadata.nope"}}}])]},
     ("spec.containers[0].env[0].valueFrom.fieldRef.fieldPath", "FieldValueInvalid", 'Invalid value: '
      '"metadata.nope": error converting fieldPath: field label not supported: metadata.nope')),
    ({"containers": [_c(env=[{"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}])]},
     ("spec.containers[0].env[0].valueFrom.resourceFieldRef.resource", "FieldValueNotSupported",
      'Unsupported value: "limits.gpu": supported values: "limits.cpu", "limits.ephemeral-storage", '
      '"limits.memory", "requests.cpu", "requests.ephemeral-storage", "requests.memory"')),
    ({"containers": [_c(env=[{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s"}}}])]},
     ("spec.containers[0].env[0].valueFrom.secretKeyRef.key", "FieldValueRequired", "Required value")),
    ({"containers": [_c(envFrom=[{"prefix": "P_"}])]},
     ("spec.containers[0].envFrom", "FieldValueInvalid", 'Invalid value: "": must specify one of: `configMapRef` '
      "or `secretRef`")),
    # probes and hooks
    ({"containers": [_c(livenessProbe={"periodSeconds": 5})]},
     ("spec.containers[0].livenessProbe", "FieldValueRequired", "Required value: must specify a handler type")),
    ({"containers": [_c(readinessProbe={"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}})]},
     ("spec.containers[0].readinessProbe.tcpSocket", "FieldValueForbidden",
      "Forbidden: may not specify more than 1 handler type")),
    ({"containers": [_c(livenessProbe={"exec": {"command": ["true"]}, "successThreshold": 2})]},
     ("spec.containers[0].livenessProbe.successThreshold", "FieldValueInvalid", "Invalid value: 2: must be 1")),
    ({"containers": [_c(livenessProbe={"exec": {"command": ["true"]}, "timeoutSeconds": -1})]},
     ("spec.containers[0].livenessProbe.timeoutSeconds", "FieldValueInvalid",
      "Invalid value: -1: must be greater than or equal to 0")),
    ({"containers": [_c(startupProbe={"httpGet": {"port": "HTTP"}})]},
     ("spec.containers[0].startupProbe.httpGet.port", "FieldValueInvalid", 'Invalid value: "HTTP": must contain '
      "only alpha-numeric characters (a-z, 0-9), and hyphens (-)")),
    ({"containers": [_c(readinessProbe={"httpGet": {"port": 80, "scheme": "FTP"}})]},
     ("spec.containers[0].readinessProbe.httpGet.scheme", "FieldValueNotSupported",
      'Unsupported value: "FTP": supported values: "HTTP", "HTTPS"')),
    ({"containers": [_c(lifecycle={"preStop": {"exec": {}}})]},
     ("spec.containers[0].lifecycle.preStop.exec.command", "FieldValueRequired", "Required value")),
    ({"initContainers": [_c(name="i", readinessProbe={"exec": {"command": ["true"]}})]},
     ("spec.initContainers[0].readinessProbe", "FieldValueForbidden",
      "Forbidden: may not be set for init containers without restartPolicy=Always")),
    ({"containers": [_c(terminationMessagePolicy="Always")]},
     ("spec.containers[0].terminationMessagePolicy", "FieldValueNotSupported",
      'Unsupported value: "Always": supported values: "File", "FallbackToLogsOnError"')),
    # security contexts
    ({"securityContext": {"runAsUser": -1}},
     ("spec.securityContext.runAsUser", "FieldValueInvalid",
      "Invalid value: -1: must be between 0 and 2147483647, inclusive")),
    ({"containers": [_c(securityContext={"runAsGroup": -2})]},
     ("spec.containers[0].securityContext.runAsGroup", "FieldValueInvalid",
      "Invalid value: -2: must be between 0 and 2147483647, inclusive")),
    ({"securityContext": {"seccompProfile": {"type": "Default"}}},
     ("spec.securityContext.seccompProfile.type", "FieldValueNotSupported",
      'Unsupported value: "Default": supported values: "Localhost", "RuntimeDefault", "Unconfined"')),
    ({"containers": [_c(securityContext={"seccompProfile": {"type": "Localhost"}})]},
     ("spec.containers[0].securityContext.seccompProfile.localhostProfile", "FieldValueRequired",
      "Required value: must be set when seccomp type is Localhost")),
    ({"securityContext": {"sysctls": [{"name": "Net.Bad", "value": "1"}]}},
     ("spec.securityContext.sysctls[0].name", "FieldValueInvalid", 'Invalid value: "Net.Bad": must have at most '
      "253 characters and match regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$")),
    ({"hostNetwork": True, "securityContext": {"sysctls": [{"name": "net.core.somaxconn", "value": "1"}]}},
     ("spec.securityContext.sysctls[0].name", "FieldValueInvalid",
      "Invalid value: \"net.core.somaxconn\": may not be specified when 'hostNetwork' is true")),
    # DNS config, host network
    ({"dnsPolicy": "None"},
     ("spec.dnsConfig", "FieldValueRequired", "Required value: must provide `dnsConfig` when `dnsPolicy` is None")),
    ({"dnsConfig": {"nameservers": ["1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"]}},
     ("spec.dnsConfig.nameservers", "FieldValueInvalid", 'Invalid value: []string{"1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"}: '
      "must not have more than 3 nameservers")),
    ({"dnsConfig": {"nameservers": ["dns.example"]}},
     ("spec.dnsConfig.nameservers[0]", "FieldValueInvalid",
      'Invalid value: "dns.example": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)')),
    ({"hostNetwork": True, "containers": [_c(ports=[{"containerPort": 80, "hostPort": 8080}])]},
     ("spec.containers[0].ports[0].hostPort", "FieldValueInvalid",
      "Invalid value: 8080: must match `containerPort` when `hostNetwork` is true")),
    ({"containers": [_c(ports=[{"containerPort": 80, "hostPort": 80}]),
                     _c(name="d", ports=[{"containerPort": 81, "hostPort": 80}])]},
     ("spec.containers[1].ports[0].hostPort", "FieldValueDuplicate", 'Duplicate value: "TCP//80"')),
    # scheduling and runtime fields
    ({"schedulingGates": [{"name": "example.com/wait"}, {"name": "example.com/wait"}]},
     ("spec.schedulingGates[1]", "FieldValueDuplicate", 'Duplicate value: "example.com/wait"')),
    ({"preemptionPolicy": "Sometimes"},
     ("spec.preemptionPolicy", "FieldValueNotSupported",
      'Unsupported value: "Sometimes": supported values: "PreemptLowerPriority", "Never"')),
    ({"os": {"name": "darwin"}},
     ("spec.os", "FieldValueNotSupported", 'Unsupported value: "darwin": supported values: "linux", "windows"')),
    ({"os": {"name": "linux"}, "containers": [_c(securityContext={"windowsOptions": {"runAsUserName": "u"}})]},
     ("spec.containers[0].securityContext.windowsOptions", "FieldValueForbidden",
      "Forbidden: windows options cannot be set for a linux pod")),
]


@pytest.mark.parametrize("spec,cause", BAD, ids=[c[0] + ":" + c[2][:30] for _, c in BAD])
def test_bad_spec_gets_upstreams_cause(spec, cause):
    assert cause in _causes(spec)


GOOD = [
    {"volumes": [{"name": "v"}], "containers": [_c(volumeMounts=[{"name": "v", "mountPath": "/v"}])]},
    {"volumes": [{"name": "cfg", "configMap": {"name": "c", "items": [{"key": "a.b", "path": "x/y", "mode": 0o644}]}},
                 {"name": "tok", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}},
                                                           {"configMap": {"name": "ca"}},
                                                           {"downwardAPI": {"items": [
                                                               {"path": "ns", "fieldRef": {
                                                                   "fieldPath": "metadata.namespace"}}]}}]}}],
     "containers": [_c(volumeMounts=[{"name": "cfg", "mountPath": "/c", "subPath": "x", "readOnly": True},
                                     {"name": "tok", "mountPath": "/t"}])]},
    {"containers": [_c(env=[{"name": "my.var-1", "value": "x"}, {"name": "1 weird:name", "value": "ok"},
                            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "L", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu",
                                                                               "divisor": "1m"}}},
                            {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}],
                       envFrom=[{"configMapRef": {"name": "c"}, "prefix": "C_"}])]},
    {"containers": [_c(livenessProbe={"httpGet": {"port": "http", "path": "/healthz"}},
                       readinessProbe={"tcpSocket": {"port": 8080}}, startupProbe={"grpc": {"port": 9000}},
                       lifecycle={"preStop": {"sleep": {"seconds": 5}}},
                       ports=[{"containerPort": 8080, "name": "http"}])]},
    {"initContainers": [_c(name="side", restartPolicy="Always", readinessProbe={"exec": {"command": ["true"]}})]},
    {"hostNetwork": True, "containers": [_c(ports=[{"containerPort": 8080}])],
     "securityContext": {"runAsUser": 1000, "fsGroup": 2000, "sysctls": [{"name": "kernel.shm_rmid_forced",
                                                                          "value": "1"}],
                         "seccompProfile": {"type": "RuntimeDefault"}}},
    {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["10.0.0.10", "fd00::a"], "searches": ["svc.cluster.local."],
                                        "options": [{"name": "ndots", "value": "2"}]}},
]


@pytest.mark.parametrize("spec", GOOD)
def test_valid_specs_stay_valid(spec):
    assert _causes(spec) == []


def test_a_pod_may_not_be_created_with_ephemeral_containers():
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [dict(C)],
                                                "ephemeralContainers": [{"name": "dbg", "image": "busybox"}]}}
    s = PodStrategy()
    s.default(pod)
    causes = s.validate(pod)
    assert {"type": "FieldValueForbidden", "field": "spec.ephemeralContainers",
            "message": "Forbidden: cannot be set on create"} in causes


def test_a_pod_stored_before_a_check_stays_updatable():
    """Only faults the old spec did not have refuse an update (labels, finalizers)."""
    s = PodStrategy()
    old = {"metadata": {"name": "p"}, "spec": {"containers": [_c(env=[{"name": "A=B", "value": "1"}])]}}
    s.default(old)
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"a": "b"}
    assert s.validate_update(new, old) == []
    new["spec"]["containers"][0]["image"] = " busybox"
    assert [c["field"] for c in s.validate_update(new, old)] == ["spec.containers[0].image"]


def test_a_statefulset_mounts_its_claim_templates():
    """Its pods get a claim volume per volumeClaimTemplate (replacing a template volume
    of that name), so the template may mount them; other names are still Not found."""
    from kybern.api.apps import StatefulSetStrategy
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "w"},
           "spec": {"serviceName": "w", "selector": {"matchLabels": {"app": "w"}},
                    "template": {"metadata": {"labels": {"app": "w"}},
                                 "spec": {"volumes": [{"name": "data", "hostPath": {"path": ""}}],
                                          "containers": [_c(volumeMounts=[{"name": "data", "mountPath": "/d"},
                                                                          {"name": "logs", "mountPath": "/l"}])]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}]}}
    s = StatefulSetStrategy()
    s.prepare_for_create(sts)
    assert [(c["field"], c["message"]) for c in s.validate(sts)] == [
        ("spec.template.spec.containers[0].volumeMounts[1].name", 'Not found: "logs"')]
