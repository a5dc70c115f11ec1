"""Server-side apply and managedFields through the real kubectl (and client-side
apply and diff, which must keep working beside it)."""

from __future__ import annotations

import json
import subprocess

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web{extra_label}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: demo
        image: {image}
"""


def manifest(replicas: int = 1, image: str = "demo:v1", tier: bool = True) -> str:
    return DEPLOYMENT.format(replicas=replicas, image=image, extra_label=", tier: front" if tier else "")


def managers(cluster, ns: str, what: str) -> dict[tuple[str, str, str], dict]:
    obj = json.loads(cluster.kubectl("get", what, "-n", ns, "-o", "json", "--show-managed-fields").stdout)
    return {(e["manager"], e["operation"], e.get("subresource", "")): e["fieldsV1"]
            for e in obj["metadata"]["managedFields"]}


def test_server_side_apply_lifecycle(cluster, namespace):
    ns = ("-n", namespace)
    out = cluster.kubectl("apply", "--server-side", "-f", "-", *ns, input=manifest(1)).stdout
    assert "deployment.apps/web serverside-applied" in out
    owned = managers(cluster, namespace, "deployment/web")[("kubectl", "Apply", "")]
    assert set(owned["f:spec"]) == {"f:replicas", "f:selector", "f:template"}
    assert "managedFields" not in cluster.kubectl("get", "deployment/web", *ns, "-o", "yaml").stdout

    # re-apply with a changed field: no conflict, we own it
    cluster.kubectl("apply", "--server-side", "-f", "-", *ns, input=manifest(2))
    assert cluster.kjson("get", "deployment/web", *ns)["spec"]["replicas"] == 2

    # kubectl scale (manager "kubectl" through the scale subresource) now owns replicas
    cluster.kubectl("scale", "deployment/web", "--replicas=0", *ns)
    assert ("kubectl", "Update", "scale") in managers(cluster, namespace, "deployment/web")
    p = cluster.kubectl("apply", "--server-side", "-f", "-", *ns, input=manifest(3), check=False)
    assert p.returncode != 0
    assert ('Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale" using apps/v1: '
            ".spec.replicas") in p.stderr
    assert cluster.kjson("get", "deployment/web", *ns)["spec"]["replicas"] == 0

    # dry-run=server reports success but changes nothing
    out = cluster.kubectl("apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", "-", *ns,
                          input=manifest(3)).stdout
    assert "(server dry run)" in out
    assert cluster.kjson("get", "deployment/web", *ns)["spec"]["replicas"] == 0

    # --force-conflicts takes the field over (an equal value would only be shared)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", *ns, input=manifest(1))
    got = managers(cluster, namespace, "deployment/web")
    assert ("kubectl", "Update", "scale") not in got
    assert "f:replicas" in got[("kubectl", "Apply", "")]["f:spec"]

    # a field the applier omits now is removed
    cluster.kubectl("apply", "--server-side", "-f", "-", *ns, input=manifest(1, tier=False))
    assert cluster.kjson("get", "deployment/web", *ns)["metadata"]["labels"] == {"app": "web"}


def test_conflict_with_kubectl_edit(cluster, namespace):
    ns = ("-n", namespace)
    cluster.kubectl("apply", "--server-side", "-f", "-", *ns, input=manifest(0))
    env = {**cluster.env, "EDITOR": "sed -i s/demo:v1/demo:v2/", "KUBE_EDITOR": "sed -i s/demo:v1/demo:v2/"}
    from tests.conftest import KUBECTL

    subprocess.run([KUBECTL, "edit", "deployment/web", *ns], env=env, check=True, capture_output=True)
    assert ("kubectl-edit", "Update", "") in managers(cluster, namespace, "deployment/web")
    p = cluster.kubectl("apply", "--server-side", "-f", "-", *ns, input=manifest(0, image="demo:v3"),
                        check=False)
    assert 'conflict with "kubectl-edit" using apps/v1: .spec.template.spec.containers[name="demo"].image' \
        in p.stderr
    # applying the value the editor chose is sharing, not a conflict
    cluster.kubectl("apply", "--server-side", "-f", "-", *ns, input=manifest(0, image="demo:v2"))


def test_client_side_apply_and_diff_still_work(cluster, namespace):
    ns = ("-n", namespace)
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: '1', b: '2'}\n"
    cluster.kubectl("apply", "-f", "-", *ns, input=cm)
    got = managers(cluster, namespace, "configmap/cfg")
    assert got[("kubectl-client-side-apply", "Update", "")]["f:data"] == {".": {}, "f:a": {}, "f:b": {}}
    changed = cm.replace("'2'", "'3'")
    d = cluster.kubectl("diff", "-f", "-", *ns, input=changed, check=False)
    assert d.returncode == 1 and '+  b: "3"' in d.stdout and "managedFields" not in d.stdout
    cluster.kubectl("apply", "-f", "-", *ns, input=changed)
    assert cluster.kjson("get", "configmap/cfg", *ns)["data"] == {"a": "1", "b": "3"}
    # and the same config moves to server-side apply without conflicts
    cluster.kubectl("apply", "--server-side", "-f", "-", *ns, input=changed.replace("'3'", "'4'"))
    assert cluster.kjson("get", "configmap/cfg", *ns)["data"] == {"a": "1", "b": "4"}


def test_apply_options_are_validated(cluster, namespace):
    import ssl
    import urllib.error
    import urllib.parse
    import urllib.request

    conf = cluster.api_client().configuration
    ctx = ssl.create_default_context(cafile=conf.ssl_ca_cert)
    token = conf.api_key.get("authorization") or conf.api_key.get("BearerToken") or ""
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
                       "data": {"k": "v"}}).encode()

    def call(ctype: str, **query: str):
        url = f"{conf.host}/api/v1/namespaces/{namespace}/configmaps/x?{urllib.parse.urlencode(query)}"
        req = urllib.request.Request(url, data=body, method="PATCH", headers={
            "Content-Type": ctype, "Authorization": token if token.startswith("Bearer") else f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, context=ctx) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    code, st = call("application/apply-patch+yaml")
    assert (code, st["reason"]) == (422, "Invalid")
    assert st["message"] == ('PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                             "is required for apply patch")
    code, st = call("application/merge-patch+json", force="true")
    assert code == 422 and "force: Forbidden: may not be specified for non-apply patch" in st["message"]
    code, _ = call("application/apply-patch+yaml", fieldManager="my-tool")
    assert code == 201
    owned = managers(cluster, namespace, "configmap/x")
    assert owned == {("my-tool", "Apply", ""): {"f:data": {"f:k": {}}}}
