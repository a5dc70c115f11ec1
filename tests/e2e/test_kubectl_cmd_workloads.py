"""Steps of kubectl's own command-line suite (kubernetes/kubernetes test/cmd/apps.sh,
apply.sh, get.sh, ...) where kybern answered differently from kube-apiserver and
kube-controller-manager, with kubectl 1.32 on the shared cluster."""

from __future__ import annotations

DAEMONSET = """apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: bind
  labels: {{service: bind}}
spec:
  selector: {{matchLabels: {{service: bind}}}}
  template:
    metadata: {{labels: {{service: bind}}}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {{matchLabels: {{service: bind}}}}
            topologyKey: kubernetes.io/hostname
            namespaces: []
      containers:
      - name: pause
        image: {image}
"""


def test_daemonset_reapply_and_rollout_history(cluster, namespace):
    """run_daemonset_tests / run_daemonset_history_tests: re-applying a manifest whose
    `namespaces: []` the server does not keep is no spec change (generation stays 1);
    `deprecated.daemonset.template.generation` counts template changes only; each
    ControllerRevision carries the DaemonSet's annotations, so `kubectl rollout
    history` shows the change-cause `--record` wrote."""
    ns = ("-n", namespace)
    v1, v2 = DAEMONSET.format(image="registry.k8s.io/pause:2.0"), DAEMONSET.format(image="kybern.test/none:v2")
    def generations():
        m = cluster.kjson("get", "ds", "bind", *ns)["metadata"]
        return m["generation"], m["annotations"]["deprecated.daemonset.template.generation"]
    cluster.kubectl("apply", *ns, "-f", "-", "--record", input=v1)
    cluster.kubectl("apply", *ns, "-f", "-", input=v1)
    assert generations() == (1, "1")
    # a spec change outside the template: generation only (apps/v1's templateGeneration annotation stays)
    cluster.kubectl("patch", "ds", "bind", *ns, "-p", '{"spec":{"minReadySeconds":1}}')
    assert generations() == (2, "1")
    cluster.kubectl("apply", *ns, "-f", "-", "--record", input=v2)
    assert generations() == (3, "2")
    # the strategy sets it, so no manager owns it (upstream's field manager runs first)
    mf = cluster.kubectl("get", "ds", "bind", *ns, "-o", "json", "--show-managed-fields").stdout
    assert "f:deprecated.daemonset.template.generation" not in mf

    def history():
        out = cluster.kubectl("rollout", "history", "ds/bind", *ns).stdout
        return out if out.count("kubectl apply") == 2 else None
    out = cluster.wait_for(history, what="two revisions with a change-cause")
    assert f"1         kubectl apply --namespace={namespace} --filename=- --record=true" in out, out
    # kubectl compares the revision's bytes with the live template's patch (Go's sorted
    # keys, nulls kept) to skip a rollback to what runs
    out = cluster.kubectl("rollout", "undo", "ds/bind", "--to-revision=2", *ns).stdout
    assert out.strip() == "daemonset.apps/bind skipped rollback (current template already matches revision 2)"


def test_scale_server_dry_run_writes_nothing(cluster, namespace):
    """run_rs_tests: `kubectl scale --dry-run=server` (a PUT with --current-replicas, a
    PATCH without) sends dryRun=All to /scale; the replicas stay."""
    ns = ("-n", namespace)
    cluster.kubectl("create", "deployment", "d", "--image=kybern.test/none:v1", "--replicas=0", *ns)
    for extra in (("--current-replicas=0",), ()):
        out = cluster.kubectl("scale", "deploy/d", "--replicas=2", "--dry-run=server", *extra, *ns).stdout
        assert out.strip() == "deployment.apps/d scaled (server dry run)"
        assert cluster.kjson("get", "deploy", "d", *ns)["spec"]["replicas"] == 0


def test_cronjob_that_never_fires_reports_invalid_schedule(cluster, namespace):
    """run_kubectl_events_tests: "59 23 31 2 *" parses but never fires; the controller
    says so in a Warning event `kubectl events --for` shows, as upstream's does."""
    ns = ("-n", namespace)
    cluster.kubectl("create", "cronjob", "pi", "--schedule=59 23 31 2 *", "--image=kybern.test/none:v1", *ns)

    def warning():
        out = cluster.kubectl("events", "--for=CronJob/pi", "--types=Warning", *ns).stdout
        return out if "InvalidSchedule" in out else None
    out = cluster.wait_for(warning, timeout=15, what="an InvalidSchedule event")
    assert "invalid schedule: 59 23 31 2 * : time difference between two schedules is less than 1 second" in out


def test_deprecated_crd_version_warns(cluster):
    """run_deprecated_api_tests (get.sh): a request to a deprecated CRD version carries
    upstream's default Warning, so `kubectl get --warnings-as-errors` fails on it."""
    name = "deprecateds.kc2.example.com"
    cluster.kubectl("apply", "-f", "-", input=f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: {name}}}
spec:
  group: kc2.example.com
  scope: Namespaced
  names: {{plural: deprecateds, kind: DeprecatedKind}}
  versions:
  - {{name: v1, served: true, storage: true, schema: {{openAPIV3Schema: {{type: object}}}}}}
  - {{name: v1beta1, served: true, storage: false, deprecated: true, schema: {{openAPIV3Schema: {{type: object}}}}}}
""")
    try:
        cluster.wait_for(lambda: cluster.kubectl("get", "deprecateds.v1.kc2.example.com", check=False).returncode == 0,
                         what="the CRD served")
        warn = "Warning: kc2.example.com/v1beta1 DeprecatedKind is deprecated; use kc2.example.com/v1 DeprecatedKind"
        assert warn in cluster.kubectl("get", "deprecateds.v1beta1.kc2.example.com").stderr
        assert "Warning" not in cluster.kubectl("get", "deprecateds.v1.kc2.example.com").stderr
        p = cluster.kubectl("get", "deprecateds.v1beta1.kc2.example.com", "--warnings-as-errors", check=False)
        assert p.returncode == 1 and warn in p.stderr and "1 warning received" in p.stderr
    finally:
        cluster.kubectl("delete", "crd", name, "--wait=false", check=False)


def test_statefulset_revisions_carry_template_labels_and_change_cause(cluster, namespace):
    """run_statefulset_history_tests: a StatefulSet's ControllerRevision is labelled with
    the pod template's labels and carries the set's annotations (the change-cause
    `rollout history` shows), as upstream's newRevision."""
    ns = ("-n", namespace)
    cluster.kubectl("apply", *ns, "--record", "-f", "-", input="""
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  replicas: 0
  serviceName: web
  selector: {matchExpressions: [{key: app, operator: In, values: [web]}]}
  template:
    metadata: {labels: {app: web, tier: front}}
    spec: {containers: [{name: c, image: kybern.test/none:v1}]}
""")
    revs = cluster.wait_for(lambda: cluster.kjson("get", "controllerrevisions", *ns)["items"], what="a revision")
    labels = revs[0]["metadata"]["labels"]
    assert labels["app"] == "web" and labels["tier"] == "front" and "controller-revision-hash" in labels
    out = cluster.kubectl("rollout", "history", "sts/web", *ns).stdout
    assert f"1         kubectl apply --namespace={namespace} --record=true --filename=-" in out, out


def test_pod_template_names_are_validated(cluster, namespace):
    """`kubectl set serviceaccount` (apps.sh) on a Deployment: ValidatePodSpec refuses a
    service account, node, hostname or subdomain that is no DNS name, and an
    activeDeadlineSeconds below 1, with upstream's messages."""
    ns = ("-n", namespace)
    cluster.kubectl("create", "deployment", "d", "--image=kybern.test/none:v1", "--replicas=0", *ns)
    p = cluster.kubectl("set", "serviceaccount", "deploy/d", "Bad_SA", *ns, check=False)
    assert p.returncode == 1
    assert ('spec.template.spec.serviceAccountName: Invalid value: "Bad_SA": a lowercase RFC 1123 subdomain '
            "must consist of lower case alphanumeric characters") in p.stderr
    p = cluster.kubectl("patch", "deploy", "d", *ns, "-p",
                        '{"spec":{"template":{"spec":{"hostname":"A_b","activeDeadlineSeconds":0}}}}', check=False)
    assert "* spec.template.spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, " \
           "inclusive\n* spec.template.spec.hostname: Invalid value: \"A_b\": a lowercase RFC 1123 label" in p.stderr
    assert cluster.kubectl("set", "serviceaccount", "deploy/d", "builder", *ns).returncode == 0
