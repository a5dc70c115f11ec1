"""ValidatingAdmissionPolicy and ValidatingAdmissionPolicyBinding
(admissionregistration.k8s.io/v1) through the real kubectl: served and printed,
validated (expressions must compile), and enforced as kube-apiserver does:
Deny (422 with the policy's words, or the validation's reason), Warn (a
Warning kubectl prints), params from a ConfigMap, variables, matchConditions,
failurePolicy for expressions that fail to run.

Every binding here selects only its test's namespace."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def policy(name: str, validations: str, extra: str = "") -> str:
    return f"""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  matchConstraints:
    resourceRules:
    - apiGroups: [apps]
      apiVersions: [v1]
      operations: [CREATE, UPDATE]
      resources: [deployments]
  validations:
{validations}
{extra}"""


def binding(name: str, policy_name: str, ns: str, actions: str = "[Deny]", extra: str = "") -> str:
    return f"""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec:
  policyName: {policy_name}
  validationActions: {actions}
  matchResources:
    namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}
{extra}"""


def deploy(cluster, ns: str, name: str, replicas: int, dry_run: bool = False):
    args = ["create", "deployment", name, "-n", ns, "--image=busybox", f"--replicas={replicas}"]
    if dry_run:
        args.append("--dry-run=server")
    return cluster.kubectl(*args, check=False)


def wait_enforced(cluster, ns: str, replicas: int = 50) -> None:
    """Policies reach the apiserver through its watch: wait until a dry run is refused."""
    cluster.wait_for(lambda: deploy(cluster, ns, "probe", replicas, dry_run=True).returncode != 0, timeout=15,
                     what="the policy to be enforced")


@pytest.fixture
def cleanup(cluster):
    made: list[tuple[str, str]] = []
    yield made
    for kind, name in made:
        cluster.kubectl("delete", kind, name, "--ignore-not-found", check=False)


def test_deny_and_printing(cluster, namespace, cleanup):
    p_name, b_name = f"demo-policy-{namespace}.example.com", f"demo-binding-{namespace}.example.com"
    cleanup += [("validatingadmissionpolicybinding", b_name), ("validatingadmissionpolicy", p_name)]
    cluster.kubectl("apply", "-f", "-", input=policy(p_name, "  - expression: object.spec.replicas <= 5"))
    cluster.kubectl("apply", "-f", "-", input=binding(b_name, p_name, namespace))
    wait_enforced(cluster, namespace)

    p = deploy(cluster, namespace, "nginx", 7)
    assert p.returncode == 1
    assert p.stderr.strip() == (
        f'error: failed to create deployment: deployments.apps "nginx" is forbidden: ValidatingAdmissionPolicy '
        f"'{p_name}' with binding '{b_name}' denied request: failed expression: object.spec.replicas <= 5")
    p = cluster.kubectl("apply", "-n", namespace, "-f", "-", check=False, input="""
apiVersion: apps/v1
kind: Deployment
metadata: {name: nginx}
spec:
  replicas: 9
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec: {containers: [{name: c, image: busybox}]}
""")
    assert p.returncode == 1
    assert (f'The deployments "nginx" is invalid: : ValidatingAdmissionPolicy \'{p_name}\' with binding '
            f"'{b_name}' denied request: failed expression: object.spec.replicas <= 5") in p.stderr
    assert deploy(cluster, namespace, "small", 2).returncode == 0
    # updates are checked too (`kubectl scale` is deployments/scale, which the rule does not name)
    p = cluster.kubectl("patch", "deployment", "small", "-n", namespace, "-p", '{"spec": {"replicas": 6}}',
                        check=False)
    assert p.returncode == 1 and "denied request: failed expression" in p.stderr
    assert cluster.kubectl("scale", "deployment", "small", "-n", namespace, "--replicas=6").returncode == 0

    out = cluster.kubectl("get", "validatingadmissionpolicy", p_name).stdout.splitlines()
    assert out[0].split() == ["NAME", "VALIDATIONS", "PARAMKIND", "AGE"]
    assert out[1].split()[:3] == [p_name, "1", "<unset>"]
    out = cluster.kubectl("get", "validatingadmissionpolicybinding", b_name).stdout.splitlines()
    assert out[0].split() == ["NAME", "POLICYNAME", "PARAMREF", "AGE"]
    assert out[1].split()[:3] == [b_name, p_name, "<unset>"]
    res = cluster.kubectl("api-resources", "--api-group=admissionregistration.k8s.io").stdout
    assert "validatingadmissionpolicies" in res and "validatingadmissionpolicybindings" in res
    assert "validationActions" in cluster.kubectl("explain", "validatingadmissionpolicybinding.spec").stdout
    obj = cluster.kjson("get", "validatingadmissionpolicy", p_name)
    assert obj["spec"]["failurePolicy"] == "Fail"
    assert obj["spec"]["matchConstraints"]["matchPolicy"] == "Equivalent"
    assert obj["spec"]["matchConstraints"]["resourceRules"][0]["scope"] == "*"


def test_warn_params_variables_reason_and_conditions(cluster, namespace, cleanup):
    p_name, b_name = f"limits-{namespace}.example.com", f"limits-{namespace}.example.com"
    cleanup += [("validatingadmissionpolicybinding", b_name), ("validatingadmissionpolicy", p_name)]
    cluster.kubectl("create", "configmap", "limits", "-n", namespace, "--from-literal=maxReplicas=3")
    cluster.kubectl("apply", "-f", "-", input=policy(p_name, """
  - expression: variables.replicas <= int(params.data.maxReplicas)
    messageExpression: "'replicas must be at most ' + params.data.maxReplicas + ' in ' + namespaceObject.metadata.name"
  - expression: "!object.metadata.name.startsWith('forbidden-')"
    reason: Forbidden
    message: that name is not allowed""", """  paramKind: {apiVersion: v1, kind: ConfigMap}
  variables:
  - name: replicas
    expression: object.spec.replicas
  matchConditions:
  - name: not-exempt
    expression: "!('exempt' in object.metadata.labels)"
"""))
    cluster.kubectl("apply", "-f", "-", input=binding(b_name, p_name, namespace, extra="""  paramRef:
    name: limits
    parameterNotFoundAction: Deny
"""))
    wait_enforced(cluster, namespace)
    p = deploy(cluster, namespace, "four", 4)
    assert p.returncode == 1
    assert f"denied request: replicas must be at most 3 in {namespace}" in p.stderr
    p = deploy(cluster, namespace, "forbidden-one", 1)
    assert p.returncode == 1
    assert "Forbidden" in p.stderr or "forbidden" in p.stderr
    assert "denied request: that name is not allowed" in p.stderr

    # Warn instead of Deny: created, with kubectl's Warning line
    cluster.kubectl("apply", "-f", "-", input=binding(b_name, p_name, namespace, "[Warn, Audit]", extra="""  paramRef:
    name: limits
    parameterNotFoundAction: Deny
"""))
    cluster.wait_for(lambda: deploy(cluster, namespace, "probe", 50, dry_run=True).returncode == 0, timeout=15,
                     what="the Warn binding")
    p = deploy(cluster, namespace, "five", 5)
    assert p.returncode == 0, p.stderr
    assert (f"Warning: Validation failed for ValidatingAdmissionPolicy '{p_name}' with binding '{b_name}': "
            f"replicas must be at most 3 in {namespace}") in p.stderr

    # the params object is gone: parameterNotFoundAction Deny
    cluster.kubectl("apply", "-f", "-", input=binding(b_name, p_name, namespace, extra="""  paramRef:
    name: nosuch
    parameterNotFoundAction: Deny
"""))
    cluster.wait_for(lambda: "no params found" in deploy(cluster, namespace, "probe", 1, dry_run=True).stderr,
                     timeout=15, what="the missing params")
    p = deploy(cluster, namespace, "one", 1)
    assert "denied request: no params found for policy binding with `Deny` parameterNotFoundAction" in p.stderr


def test_failure_policy_for_expressions_that_fail(cluster, namespace, cleanup):
    p_name, b_name = f"broken-{namespace}.example.com", f"broken-{namespace}.example.com"
    cleanup += [("validatingadmissionpolicybinding", b_name), ("validatingadmissionpolicy", p_name)]
    cluster.kubectl("apply", "-f", "-", input=policy(p_name, "  - expression: object.spec.nosuch > 1"))
    cluster.kubectl("apply", "-f", "-", input=binding(b_name, p_name, namespace))
    wait_enforced(cluster, namespace, replicas=1)
    p = deploy(cluster, namespace, "x", 1)
    assert "denied request: expression 'object.spec.nosuch > 1' resulted in error: no such key: nosuch" in p.stderr
    cluster.kubectl("apply", "-f", "-", input=policy(p_name, "  - expression: object.spec.nosuch > 1",
                                                    "  failurePolicy: Ignore"))
    cluster.wait_for(lambda: deploy(cluster, namespace, "x", 1).returncode == 0, timeout=15,
                     what="failurePolicy Ignore")


def test_invalid_policies_and_bindings_are_refused(cluster):
    p = cluster.kubectl("apply", "-f", "-", check=False, input=policy("bad.example.com", """
  - expression: "object.spec.replicas <="
  - expression: "true"
    reason: Nope"""))
    assert p.returncode == 1
    assert 'The ValidatingAdmissionPolicy "bad.example.com" is invalid' in p.stderr
    assert ('spec.validations[0].expression: Invalid value: "object.spec.replicas <=": compilation failed: '
            "ERROR: <input>:1:") in p.stderr
    assert ('spec.validations[1].reason: Unsupported value: "Nope": supported values: "Unauthorized", '
            '"Forbidden", "Invalid", "RequestEntityTooLarge"') in p.stderr
    p = cluster.kubectl("apply", "-f", "-", check=False, input=binding("bad.example.com", "", "x",
                                                                        "[Deny, Warn]"))
    assert p.returncode == 1
    assert "spec.policyName: Required value" in p.stderr
    assert "must not contain both Deny and Warn" in p.stderr


def test_delete_sees_old_object_and_request(cluster, namespace, cleanup):
    p_name, b_name = f"keep-{namespace}.example.com", f"keep-{namespace}.example.com"
    cleanup += [("validatingadmissionpolicybinding", b_name), ("validatingadmissionpolicy", p_name)]
    cluster.kubectl("apply", "-f", "-", input=f"""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {p_name}}}
spec:
  matchConstraints:
    resourceRules:
    - {{apiGroups: [""], apiVersions: [v1], operations: [DELETE], resources: [configmaps]}}
  validations:
  - expression: "object == null && request.operation == 'DELETE' && !has(oldObject.metadata.labels)"
    messageExpression: "'configmap ' + oldObject.metadata.name + ' is protected'"
""")
    cluster.kubectl("apply", "-f", "-", input=binding(b_name, p_name, namespace))
    cluster.kubectl("create", "configmap", "probe", "-n", namespace)
    cluster.kubectl("label", "configmap", "probe", "-n", namespace, "keep=yes")
    cluster.wait_for(lambda: cluster.kubectl("delete", "configmap", "probe", "-n", namespace, "--dry-run=server",
                                             check=False).returncode != 0, timeout=15, what="the policy")
    p = cluster.kubectl("delete", "configmap", "probe", "-n", namespace, check=False)
    assert p.returncode == 1
    assert f"ValidatingAdmissionPolicy '{p_name}' with binding '{b_name}' denied request: configmap probe is " \
           "protected" in p.stderr
    cluster.kubectl("create", "configmap", "free", "-n", namespace)
    cluster.kubectl("delete", "configmap", "free", "-n", namespace)
