"""The Pod Security Standards checks (kybern/apiserver/podsecurity_checks.py) give
upstream's reasons and details, in upstream's order, per policy version; cases
and expected texts from k8s.io/pod-security-admission's policy tests."""

from __future__ import annotations

import pytest

from kybern.apiserver import podsecurity_checks as psa

LATEST_RESTRICTED = psa.LevelVersion("restricted", None)
LATEST_BASELINE = psa.LevelVersion("baseline", None)


def detail(lv: psa.LevelVersion, spec: dict, meta: dict | None = None) -> str:
    return psa.forbidden_detail(psa.evaluate(lv, meta or {}, spec))


def test_a_bare_pod_fails_restricted_with_the_message_kubectl_prints():
    spec = {"containers": [{"name": "nginx", "image": "nginx"}]}
    assert detail(LATEST_RESTRICTED, spec) == (
        'allowPrivilegeEscalation != false (container "nginx" must set securityContext.allowPrivilegeEscalation'
        '=false), unrestricted capabilities (container "nginx" must set securityContext.capabilities.drop=["ALL"]'
        '), runAsNonRoot != true (pod or container "nginx" must set securityContext.runAsNonRoot=true), '
        'seccompProfile (pod or container "nginx" must set securityContext.seccompProfile.type to '
        '"RuntimeDefault" or "Localhost")')
    assert detail(LATEST_BASELINE, spec) == ""
    assert psa.evaluate(psa.LevelVersion("privileged", None), {}, {"hostPID": True}) == []


def restricted_container(name: str, **sc) -> dict:
    return {"name": name, "image": "x", "securityContext": {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, **sc}}


RESTRICTED_POD = {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                  "containers": [restricted_container("app")]}


def test_a_restricted_pod_passes_every_level_and_version():
    for minor in [*range(psa.MAX_MINOR + 1), None, 99]:
        assert psa.evaluate(psa.LevelVersion("restricted", minor), {}, RESTRICTED_POD) == []


@pytest.mark.parametrize(("spec", "meta", "reason", "want"), [
    ({"hostNetwork": True, "hostPID": True, "hostIPC": True}, {}, "host namespaces",
     "hostNetwork=true, hostPID=true, hostIPC=true"),
    ({"containers": [{"name": "a", "securityContext": {"privileged": True}},
                     {"name": "b", "securityContext": {"privileged": True}}]}, {}, "privileged",
     'containers "a", "b" must not set securityContext.privileged=true'),
    ({"containers": [{"name": "a", "securityContext": {"capabilities": {"add": ["NET_RAW", "CHOWN", "SYS_ADMIN"]}}}]},
     {}, "non-default capabilities",
     'container "a" must not include "NET_RAW", "SYS_ADMIN" in securityContext.capabilities.add'),
    ({"volumes": [{"name": "a", "hostPath": {"path": "/"}}, {"name": "b", "emptyDir": {}},
                  {"name": "c", "hostPath": {"path": "/x"}}]}, {}, "hostPath volumes", 'volumes "a", "c"'),
    ({"containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}, {"hostPort": 10}]},
                     {"name": "b", "ports": [{"containerPort": 80}]}]}, {}, "hostPort",
     'container "a" uses hostPorts 10, 8080'),
    ({"containers": [{"name": "a", "securityContext": {"procMount": "Unmasked"}}]}, {}, "procMount",
     'container "a" must not set securityContext.procMount to "Unmasked"'),
    ({"securityContext": {"seLinuxOptions": {"type": "foo", "user": "bar", "role": "baz"}},
      "containers": [{"name": "d", "securityContext": {"seLinuxOptions": {"type": "container_engine_t"}}},
                     {"name": "e", "securityContext": {"seLinuxOptions": {"type": "bar"}}},
                     {"name": "f", "securityContext": {"seLinuxOptions": {"user": "bar"}}}]}, {}, "seLinuxOptions",
     ('pod and containers "e", "f" set forbidden securityContext.seLinuxOptions: types "bar", "foo"; '
     'user may not be set; role may not be set')),
    ({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}, {}, "seccompProfile",
     'pod must not set securityContext.seccompProfile.type to "Unconfined"'),
    ({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}, {}, "forbidden AppArmor profile",
     'pod must not set AppArmor profile type to "Unconfined"'),
    ({}, {"annotations": {"container.apparmor.security.beta.kubernetes.io/": "bogus",
                          "container.apparmor.security.beta.kubernetes.io/b": "runtime/default",
                          "container.apparmor.security.beta.kubernetes.io/e": "unconfined"}},
     "forbidden AppArmor profiles",
     ('annotations must not set AppArmor profile type to "container.apparmor.security.beta.kubernetes.io/='
     '"bogus"", "container.apparmor.security.beta.kubernetes.io/e="unconfined""')),
    ({"securityContext": {"sysctls": [{"name": "kernel.msgmax"}, {"name": "net.ipv4.tcp_rmem"},
                                      {"name": "a"}]}}, {}, "forbidden sysctls", "kernel.msgmax, a"),
    ({"securityContext": {"windowsOptions": {"hostProcess": True}},
      "containers": [{"name": "a", "securityContext": {"windowsOptions": {"hostProcess": True}}}]}, {},
     "hostProcess", 'pod and container "a" must not set securityContext.windowsOptions.hostProcess=true'),
])
def test_baseline_checks(spec, meta, reason, want):
    assert psa.evaluate(LATEST_BASELINE, meta, spec) == [(reason, want)]


def test_restricted_details():
    spec = {"securityContext": {"runAsNonRoot": False, "runAsUser": 0},
            "containers": [{"name": "a", "securityContext": {
                "allowPrivilegeEscalation": True, "runAsNonRoot": False, "runAsUser": 0,
                "seccompProfile": {"type": "Unconfined"},
                "capabilities": {"drop": ["NET_RAW"], "add": ["NET_BIND_SERVICE", "SYS_TIME", "CHOWN"]}}}],
            "volumes": [{"name": "v", "nfs": {"server": "x", "path": "/"}}, {"name": "w", "image": {}},
                        {"name": "p", "projected": {"sources": []}}]}
    assert psa.evaluate(LATEST_RESTRICTED, {}, spec) == [
        ("allowPrivilegeEscalation != false",
         'container "a" must set securityContext.allowPrivilegeEscalation=false'),
        ("unrestricted capabilities", ('container "a" must set securityContext.capabilities.drop=["ALL"]; '
                                      'container "a" must not include "CHOWN", "SYS_TIME" in '
                                      'securityContext.capabilities.add')),
        ("restricted volume types", 'volumes "v", "w" use restricted volume types "nfs", "unknown"'),
        ("runAsNonRoot != true", 'pod and container "a" must not set securityContext.runAsNonRoot=false'),
        ("runAsUser=0", 'pod and container "a" must not set runAsUser=0'),
        ("seccompProfile", 'container "a" must not set securityContext.seccompProfile.type to "Unconfined"'),
    ]


def test_versions_pick_the_revision_in_force():
    root = {**RESTRICTED_POD, "securityContext": {**RESTRICTED_POD["securityContext"], "runAsUser": 0}}
    assert psa.evaluate(psa.LevelVersion("restricted", 22), {}, root) == []  # runAsUser is checked from v1.23
    assert psa.evaluate(psa.LevelVersion("restricted", 23), {}, root) == [
        ("runAsUser=0", "pod must not set runAsUser=0")]
    # before v1.22 restricted checks the baseline capabilities, not drop=ALL
    nodrop = {**RESTRICTED_POD, "containers": [{"name": "a", "securityContext": {"allowPrivilegeEscalation": False}}]}
    assert psa.evaluate(psa.LevelVersion("restricted", 21), {}, nodrop) == []
    # the 1.32 sysctls; container_engine_t from 1.31; windows pods skip the 1.25 restricted checks
    rmem = {"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_rmem"}]}}
    assert psa.evaluate(psa.LevelVersion("baseline", 31), {}, rmem) == [("forbidden sysctls", "net.ipv4.tcp_rmem")]
    assert psa.evaluate(psa.LevelVersion("baseline", 32), {}, rmem) == []
    engine = {"securityContext": {"seLinuxOptions": {"type": "container_engine_t"}}}
    assert psa.evaluate(psa.LevelVersion("baseline", 30), {}, engine) != []
    assert psa.evaluate(psa.LevelVersion("baseline", 31), {}, engine) == []
    windows = {"os": {"name": "windows"}, "securityContext": {"runAsNonRoot": True},
               "containers": [{"name": "a"}]}
    assert psa.evaluate(psa.LevelVersion("restricted", 25), {}, windows) == []
    assert [r for r, _ in psa.evaluate(psa.LevelVersion("restricted", 24), {}, windows)] == [
        "allowPrivilegeEscalation != false", "unrestricted capabilities", "seccompProfile"]


def test_namespace_labels_parse_as_upstream():
    policy, causes = psa.policy_for({"pod-security.kubernetes.io/enforce": "baseline",
                                     "pod-security.kubernetes.io/warn": "restricted",
                                     "pod-security.kubernetes.io/warn-version": "v1.30"})
    assert (str(policy.enforce), str(policy.audit), str(policy.warn)) == (
        "baseline:latest", "privileged:latest", "restricted:v1.30")
    assert causes == []
    policy, causes = psa.policy_for({"pod-security.kubernetes.io/enforce": "strict",
                                     "pod-security.kubernetes.io/audit": "nope",
                                     "pod-security.kubernetes.io/enforce-version": "v1.01"})
    # an invalid enforce level enforces restricted; audit and warn fail open
    assert (str(policy.enforce), str(policy.audit)) == ("restricted:latest", "privileged:latest")
    assert causes == [
        {"type": "FieldValueInvalid", "field": "metadata.labels[pod-security.kubernetes.io/enforce]",
         "message": 'Invalid value: "strict": must be one of privileged, baseline, restricted'},
        {"type": "FieldValueInvalid", "field": "metadata.labels[pod-security.kubernetes.io/enforce-version]",
         "message": 'Invalid value: "v1.01": must be "latest" or "v1.x"'},
        {"type": "FieldValueInvalid", "field": "metadata.labels[pod-security.kubernetes.io/audit]",
         "message": 'Invalid value: "nope": must be one of privileged, baseline, restricted'},
    ]
    assert psa.policy_for({"kubernetes.io/metadata.name": "x"}) == (psa.DEFAULT_POLICY, [])
