"""Pod Security admission with the real kubectl, as the kubernetes.io tutorials
"Enforce Pod Security Standards with Namespace Labels" and "Apply Pod Security
Standards at the Namespace Level" walk through it: a namespace labelled
enforce=baseline / warn=restricted refuses a privileged pod with upstream's
message, admits a baseline pod with the restricted warning kubectl prints, admits
a restricted pod silently; raising the enforce level (also as a server dry run)
warns about the pods already there; a Deployment's template gets the warning and
its ReplicaSet's pods are refused (FailedCreate); invalid labels are 422."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

L = "pod-security.kubernetes.io/"

RESTRICTED_WARNING = (
    'would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "{c}" must set '
    'securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "{c}" must set '
    'securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "{c}" must set '
    'securityContext.runAsNonRoot=true), seccompProfile (pod or container "{c}" must set '
    'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")')


def pod(name: str, container: dict | None = None, **spec) -> str:
    c = {"name": name, "image": "demo:v1", "command": ["sleep", "3600"], **(container or {})}
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"containers": [c], **spec}})


RESTRICTED_SC = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
RESTRICTED_POD_SC = {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}


def warnings(stderr: str) -> list[str]:
    return [line.removeprefix("Warning: ") for line in stderr.splitlines() if line.startswith("Warning: ")]


def label(cluster, ns: str, *pairs: str, check: bool = True, dry_run: bool = False):
    return cluster.kubectl("label", "--overwrite", "ns", ns, *pairs, *(["--dry-run=server"] if dry_run else []),
                           check=check)


def test_namespace_labels_enforce_warn_and_check_existing_pods(cluster, namespace):
    label(cluster, namespace, f"{L}warn=baseline", f"{L}warn-version=latest")
    label(cluster, namespace, f"{L}enforce=baseline", f"{L}enforce-version=latest", f"{L}warn=restricted",
          f"{L}warn-version=latest", f"{L}audit=restricted", f"{L}audit-version=latest")

    # a privileged pod: refused by the baseline enforce level, with upstream's message
    p = cluster.kubectl("apply", "-n", namespace, "-f", "-", check=False,
                        input=pod("privileged", {"securityContext": {"privileged": True}}, hostNetwork=True))
    assert p.returncode != 0
    assert p.stderr.strip() == (
        'Error from server (Forbidden): error when creating "STDIN": pods "privileged" is forbidden: violates '
        'PodSecurity "baseline:latest": host namespaces (hostNetwork=true), privileged (container "privileged" '
        'must not set securityContext.privileged=true)')
    assert cluster.kubectl("get", "pod", "privileged", "-n", namespace, check=False).returncode != 0

    # a baseline pod: created, with the restricted level's warning printed by kubectl
    p = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pod("nginx"))
    assert p.stdout.strip() == "pod/nginx created"
    assert warnings(p.stderr) == [RESTRICTED_WARNING.format(c="nginx")]

    # the same pod in a namespace without labels: not checked at all
    plain = f"{namespace}-plain"
    p = cluster.kubectl("apply", "-n", "default", "-f", "-", input=pod(plain))
    assert p.stdout.strip() == f"pod/{plain} created" and p.stderr == ""
    cluster.kubectl("delete", "pod", plain, "-n", "default", "--wait=false")

    # a restricted pod: created without a word
    p = cluster.kubectl("apply", "-n", namespace, "-f", "-",
                        input=pod("secure", {"securityContext": RESTRICTED_SC}, securityContext=RESTRICTED_POD_SC))
    assert p.stdout.strip() == "pod/secure created" and p.stderr == ""

    # raising enforce to restricted, as a server dry run: the pods already there that would fail
    p = label(cluster, namespace, f"{L}enforce=restricted", dry_run=True)
    assert p.stdout.strip() == f"namespace/{namespace} labeled (server dry run)"
    assert warnings(p.stderr) == [
        f'existing pods in namespace "{namespace}" violate the new PodSecurity enforce level "restricted:latest"',
        "nginx: allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile"]
    labels = cluster.kjson("get", "ns", namespace)["metadata"]["labels"]
    assert labels[f"{L}enforce"] == "baseline"  # a dry run changes nothing

    # relaxing it again, or keeping the level, checks nothing
    assert warnings(label(cluster, namespace, f"{L}enforce=privileged", dry_run=True).stderr) == []

    # for real: the same warnings; the pod keeps running, but changing its image is now refused
    p = label(cluster, namespace, f"{L}enforce=restricted")
    assert len(warnings(p.stderr)) == 2 and p.stdout.strip() == f"namespace/{namespace} labeled"
    assert cluster.kjson("get", "pod", "nginx", "-n", namespace)["metadata"]["name"] == "nginx"
    p = cluster.kubectl("set", "image", "pod/nginx", "nginx=demo:v2", "-n", namespace, check=False)
    assert p.returncode != 0
    assert 'pods "nginx" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation' in p.stderr
    # an update that changes nothing PodSecurity looks at (a label) goes through
    cluster.kubectl("label", "pod", "nginx", "-n", namespace, "tier=web")


def test_a_deployment_warns_and_its_pods_are_refused(cluster, namespace):
    label(cluster, namespace, f"{L}enforce=restricted", f"{L}warn=restricted")
    p = cluster.kubectl("create", "deployment", "web", "--image=demo:v1", "-n", namespace, "--", "sleep", "3600")
    assert p.stdout.strip() == "deployment.apps/web created"
    assert warnings(p.stderr) == [RESTRICTED_WARNING.format(c="demo")]

    def failed_create() -> list[dict]:
        events = cluster.kjson("get", "events", "-n", namespace, "--field-selector", "reason=FailedCreate")["items"]
        return [e for e in events if e["involvedObject"]["kind"] == "ReplicaSet"]

    events = cluster.wait_for(failed_create, timeout=30, what="the ReplicaSet's FailedCreate event")
    message = events[0]["message"]
    assert message.startswith('Error creating: pods "web-')
    assert message.endswith(' is forbidden: ' + RESTRICTED_WARNING.format(c="demo").replace(
        "would violate", "violates"))
    assert cluster.kjson("get", "pods", "-n", namespace)["items"] == []

    # the enforce level alone warns of nothing for workload objects (their pods are refused later)
    label(cluster, namespace, f"{L}warn-")
    p = cluster.kubectl("create", "deployment", "quiet", "--image=demo:v1", "-n", namespace)
    assert p.stderr == ""

    # a compliant template: no warning, and the pods start
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "secure"},
           "spec": {"selector": {"matchLabels": {"app": "secure"}}, "template": {
               "metadata": {"labels": {"app": "secure"}},
               "spec": {"securityContext": RESTRICTED_POD_SC, "containers": [
                   {"name": "app", "image": "demo:v1", "command": ["sleep", "3600"],
                    "securityContext": RESTRICTED_SC}]}}}}
    label(cluster, namespace, f"{L}warn=restricted")
    p = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(dep))
    assert p.stderr == ""
    cluster.wait_for(lambda: cluster.kjson("get", "pods", "-n", namespace, "-l", "app=secure")["items"],
                     timeout=30, what="the compliant Deployment's pod")


def test_other_workload_kinds_warn_but_are_never_refused(cluster, namespace):
    label(cluster, namespace, f"{L}enforce=restricted", f"{L}warn=baseline")
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
           "spec": {"template": {"spec": {"restartPolicy": "Never", "hostPID": True, "containers": [
               {"name": "c", "image": "demo:v1", "command": ["true"]}]}}}}
    p = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(job))
    assert p.stdout.strip() == "job.batch/j created"
    assert warnings(p.stderr) == ['would violate PodSecurity "baseline:latest": host namespaces (hostPID=true)']
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"},
            "spec": {"schedule": "0 0 * * *", "jobTemplate": {"spec": job["spec"]}}}
    p = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(cron))
    assert warnings(p.stderr) == ['would violate PodSecurity "baseline:latest": host namespaces (hostPID=true)']


def test_invalid_labels_are_refused_as_upstream(cluster, namespace):
    p = label(cluster, namespace, f"{L}enforce=strict", check=False)
    assert p.returncode != 0
    assert (f'The Namespace "{namespace}" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: '
            f'Invalid value: "strict": must be one of privileged, baseline, restricted') in p.stderr
    p = cluster.kubectl("create", "-f", "-", check=False, input=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": f"{namespace}-v", "labels": {f"{L}warn-version": "1.30"}}}))
    assert p.returncode != 0
    assert 'metadata.labels[pod-security.kubernetes.io/warn-version]: Invalid value: "1.30": must be "latest" ' \
           'or "v1.x"' in p.stderr
    # a pinned version evaluates that version's checks: runAsUser=0 passes restricted before v1.23
    label(cluster, namespace, f"{L}enforce=restricted", f"{L}enforce-version=v1.22")
    root = pod("root", {"securityContext": RESTRICTED_SC},
               securityContext={**RESTRICTED_POD_SC, "runAsUser": 0})
    cluster.kubectl("apply", "-n", namespace, "-f", "-", "--dry-run=server", input=root)
    label(cluster, namespace, f"{L}enforce-version=v1.32")
    p = cluster.kubectl("apply", "-n", namespace, "-f", "-", "--dry-run=server", check=False, input=root)
    assert 'violates PodSecurity "restricted:v1.32": runAsUser=0 (pod must not set runAsUser=0)' in p.stderr


def test_an_ephemeral_container_is_checked(cluster, namespace):
    cluster.kubectl("apply", "-n", namespace, "-f", "-",
                    input=pod("target", {"securityContext": RESTRICTED_SC}, securityContext=RESTRICTED_POD_SC))
    label(cluster, namespace, f"{L}enforce=baseline")
    p = cluster.kubectl("debug", "target", "-n", namespace, "--image=demo:v1", "--container=dbg",
                        "--profile=sysadmin", "--", "sleep", "1", check=False)
    assert p.returncode != 0
    assert ('pods "target" is forbidden: violates PodSecurity "baseline:latest": privileged (container "dbg" '
            'must not set securityContext.privileged=true)') in p.stderr
    p = cluster.kubectl("debug", "target", "-n", namespace, "--image=demo:v1", "--container=dbg2",
                        "--profile=baseline", "--", "sleep", "1")
    assert "dbg2" in json.dumps(cluster.kjson("get", "pod", "target", "-n", namespace)["spec"])


def test_pods_failing_alike_share_one_warning(cluster, namespace):
    cluster.kubectl("create", "deployment", "web", "--image=demo:v1", "--replicas=2", "-n", namespace, "--",
                    "sleep", "3600")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pod("odd", hostPID=True))
    names = cluster.wait_for(lambda: sorted(p["metadata"]["name"] for p in cluster.kjson(
        "get", "pods", "-n", namespace, "-l", "app=web")["items"]) if len(cluster.kjson(
            "get", "pods", "-n", namespace, "-l", "app=web")["items"]) == 2 else None,
        timeout=30, what="the Deployment's two pods")
    p = label(cluster, namespace, f"{L}enforce=restricted", dry_run=True)
    restricted = "allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile"
    assert warnings(p.stderr) == [
        f'existing pods in namespace "{namespace}" violate the new PodSecurity enforce level "restricted:latest"',
        f"odd: host namespaces, {restricted}",
        f"{names[0]} (and 1 other pod): {restricted}"]
    # baseline: only the hostPID pod
    p = label(cluster, namespace, f"{L}enforce=baseline", dry_run=True)
    assert warnings(p.stderr) == [
        f'existing pods in namespace "{namespace}" violate the new PodSecurity enforce level "baseline:latest"',
        "odd: host namespaces"]


CLUSTER_LEVEL_PSS = """\
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1beta1
    kind: PodSecurityConfiguration
    defaults:
      enforce: "baseline"
      enforce-version: "latest"
      audit: "restricted"
      audit-version: "latest"
      warn: "restricted"
      warn-version: "latest"
    exemptions:
      usernames: []
      runtimeClasses: []
      namespaces: [kube-system]
"""
EXEMPTIONS = """\
      usernames: ["system:serviceaccount:default:deployer"]
      runtimeClasses: [gvisor]
"""


def test_cluster_level_defaults_and_exemptions(tmp_path):
    """The "Apply Pod Security Standards at the Cluster Level" tutorial: kube-apiserver's
    AdmissionConfiguration (`kybern up --admission-control-config-file`) sets the
    defaults of every namespace and exempts kube-system."""
    from tests.conftest import start_cluster, stop_cluster

    config = tmp_path / "cluster-level-pss.yaml"
    config.write_text(CLUSTER_LEVEL_PSS.replace('      usernames: []\n      runtimeClasses: []\n', EXEMPTIONS))
    c = start_cluster(tmp_path / "c", "--admission-control-config-file", str(config), wait_node=False)
    try:
        # the tutorial's nginx pod in the default namespace: admitted with the restricted warning
        p = c.kubectl("apply", "-f", "-", input=pod("nginx", {"ports": [{"containerPort": 80}]}))
        assert p.stdout.strip() == "pod/nginx created"
        assert warnings(p.stderr) == [RESTRICTED_WARNING.format(c="nginx")]
        # a privileged pod: refused by the default baseline enforce level
        priv = pod("priv", {"securityContext": {"privileged": True}})
        p = c.kubectl("apply", "-f", "-", check=False, input=priv)
        assert 'pods "priv" is forbidden: violates PodSecurity "baseline:latest": privileged' in p.stderr
        # kube-system is exempt: admitted without a word; labels asking otherwise are ignored, with a warning
        p = c.kubectl("apply", "-n", "kube-system", "-f", "-", input=priv)
        assert p.stdout.strip() == "pod/priv created" and p.stderr == ""
        p = label(c, "kube-system", f"{L}enforce=restricted", dry_run=True)
        assert warnings(p.stderr) == [('namespace "kube-system" is exempt from Pod Security, and the policy '
                                      '(enforce=restricted:latest) will be ignored')]
        # exempt runtime classes and users (the class must exist: RuntimeClass admission)
        c.kubectl("apply", "-f", "-", input="apiVersion: node.k8s.io/v1\nkind: RuntimeClass\n"
                                            "metadata: {name: gvisor}\nhandler: runsc\n")
        p = c.kubectl("apply", "--dry-run=server", "-f", "-", input=pod("sandboxed", {
            "securityContext": {"privileged": True}}, runtimeClassName="gvisor"))
        assert p.stdout.strip() == "pod/sandboxed created (server dry run)" and p.stderr == ""
        c.kubectl("create", "serviceaccount", "deployer")
        c.kubectl("create", "rolebinding", "deployer", "--clusterrole=edit", "--serviceaccount=default:deployer")
        token = c.kubectl("create", "token", "deployer").stdout.strip()
        p = c.kubectl("apply", "--dry-run=server", f"--token={token}", "-f", "-", input=priv)
        assert p.stdout.strip() == "pod/priv created (server dry run)" and p.stderr == ""
        # a namespace's labels override the defaults, mode by mode
        c.kubectl("create", "namespace", "infra")
        label(c, "infra", f"{L}enforce=privileged")
        p = c.kubectl("apply", "-n", "infra", "-f", "-", input=priv)
        assert p.stdout.strip() == "pod/priv created"
        assert warnings(p.stderr)[0].startswith('would violate PodSecurity "restricted:latest": privileged (')
        # the tutorial's dry runs over every namespace
        p = c.kubectl("label", "--dry-run=server", "--overwrite", "ns", "--all", f"{L}enforce=baseline")
        # (kube-system's enforce level is the default's already: no change, no word)
        assert warnings(p.stderr) == [
            'existing pods in namespace "infra" violate the new PodSecurity enforce level "baseline:latest"',
            "priv: privileged"]
        assert "namespace/default labeled (server dry run)" in p.stdout
    finally:
        stop_cluster(c)
    # an invalid configuration: kybern up refuses to start, as kube-apiserver
    config.write_text(CLUSTER_LEVEL_PSS.replace('enforce: "baseline"', 'enforce: "strict"'))
    p = subprocess.run([sys.executable, "-m", "kybern.cli.main", "up", "--data-dir", str(tmp_path / "bad"),
                        "--admission-control-config-file", str(config)], check=False, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode != 0
    assert ('defaults.enforce: Invalid value: "strict": must be one of privileged, baseline, restricted'
            in p.stderr), p.stderr
