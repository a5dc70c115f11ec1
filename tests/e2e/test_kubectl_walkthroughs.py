"""Steps of kubernetes.io tutorials and task pages, run with the real kubectl as a
user would, asserting what the user sees (output, error text, exit code) where
kybern once differed from upstream Kubernetes."""

from __future__ import annotations

import json
import time
import os

import pytest

pytestmark = pytest.mark.e2e


def _events(cluster, ns: str, kind_obj: str) -> list[str]:
    """(reason) of the Events section of `kubectl describe`, top to bottom."""
    out = cluster.kubectl("describe", kind_obj, "-n", ns).stdout
    lines = out.split("Events:", 1)[1].splitlines()[3:]
    return [ln.split()[1] for ln in lines if ln.strip()]


def test_describe_lists_events_in_the_order_they_happened(cluster, namespace):
    # events are named <object>.<hex of their time in ns> as client-go names them, so a
    # list (ordered by name) and describe (stable-sorted by whole-second timestamps)
    # show a pod's story in order
    ns = ["-n", namespace]
    cluster.kubectl("run", "story", "--image=demo:v1", *ns)
    cluster.kubectl("wait", "--for=condition=Ready", "pod/story", "--timeout=60s", *ns)

    def started():
        reasons = _events(cluster, namespace, "pod/story")
        return reasons if "Started" in reasons else None

    reasons = cluster.wait_for(started, timeout=30, what="Started event")
    assert reasons == ["Scheduled", "Pulled", "Created", "Started"]
    names = cluster.kubectl("get", "events", *ns, "--field-selector", "involvedObject.name=story",
                            "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
    assert all(n.startswith("story.") and int(n.split(".", 1)[1], 16) for n in names)


def test_set_resources_keeps_the_template_as_written(cluster, namespace):
    # "requests default to limits" and enableServiceLinks are SetDefaults_Pod: a Pod
    # gets them, a Deployment's template does not
    ns = ["-n", namespace]
    cluster.kubectl("create", "deployment", "web", "--image=demo:v1", *ns)
    out = cluster.kubectl("set", "resources", "deployment/web", "-c=demo", "--limits=cpu=200m,memory=512Mi",
                          *ns).stdout
    assert out.strip() == "deployment.apps/web resource requirements updated"
    tmpl = cluster.kjson("get", "deployment/web", *ns)["spec"]["template"]["spec"]
    assert tmpl["containers"][0]["resources"] == {"limits": {"cpu": "200m", "memory": "512Mi"}}
    assert "enableServiceLinks" not in tmpl
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s", *ns)
    pod = cluster.kjson("get", "pods", "-l", "app=web", *ns)["items"]
    pod = next(p for p in pod if not p["metadata"].get("deletionTimestamp"))
    assert pod["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "200m", "memory": "512Mi"},
                                                         "requests": {"cpu": "200m", "memory": "512Mi"}}
    assert pod["spec"]["enableServiceLinks"] is True
    assert pod["status"]["qosClass"] == "Guaranteed"


POD = """
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  dnsPolicy: %(dns)s
  containers:
  - name: c
    image: demo:v1
    imagePullPolicy: %(pull)s
    ports: [{containerPort: %(port)s, protocol: %(proto)s, name: %(pname)s}]
"""
GOOD = {"dns": "ClusterFirst", "pull": "IfNotPresent", "port": 80, "proto": "TCP", "pname": "http"}


@pytest.mark.parametrize("change,error", [
    ({"pull": "Sometimes"}, ('The Pod "p" is invalid: spec.containers[0].imagePullPolicy: Unsupported value: '
                             '"Sometimes": supported values: "Always", "IfNotPresent", "Never"')),
    ({"dns": "Bogus"}, ('The Pod "p" is invalid: spec.dnsPolicy: Unsupported value: "Bogus": supported values: '
                        '"ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"')),
    ({"proto": "FOO"}, ('The Pod "p" is invalid: spec.containers[0].ports[0].protocol: Unsupported value: "FOO": '
                        'supported values: "SCTP", "TCP", "UDP"')),
    ({"port": 99999}, ('The Pod "p" is invalid: spec.containers[0].ports[0].containerPort: Invalid value: 99999: '
                       'must be between 1 and 65535, inclusive')),
    ({"pname": "web-server-port-x"}, ('The Pod "p" is invalid: spec.containers[0].ports[0].name: Invalid value: '
                                      '"web-server-port-x": must be no more than 15 characters')),
])
def test_pod_field_values_upstream_rejects(cluster, namespace, change, error):
    p = cluster.kubectl("create", "-n", namespace, "-f", "-", input=POD % {**GOOD, **change}, check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == error
    # with --validate=false too (the check is the apiserver's, not the schema's)
    p = cluster.kubectl("create", "-n", namespace, "--validate=false", "-f", "-", input=POD % {**GOOD, **change},
                        check=False)
    assert p.stderr.strip() == error


def test_pod_with_good_values_is_created(cluster, namespace):
    p = cluster.kubectl("create", "-n", namespace, "-f", "-", "--dry-run=server", input=POD % GOOD)
    assert p.stdout.strip() == "pod/p created (server dry run)"


def test_service_type_and_affinity_values(cluster, namespace):
    svc = cluster.kubectl("create", "service", "clusterip", "s", "--tcp=80:8080", "--dry-run=client", "-o", "yaml",
                          "-n", namespace).stdout
    p = cluster.kubectl("create", "-n", namespace, "-f", "-", input=svc.replace("type: ClusterIP", "type: Weird"),
                        check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == ('The Service "s" is invalid: spec.type: Unsupported value: "Weird": supported '
                                'values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"')
    p = cluster.kubectl("create", "-n", namespace, "-f", "-", check=False,
                        input=svc.replace("type: ClusterIP", "type: ClusterIP\n  sessionAffinity: Sticky"))
    assert p.stderr.strip() == ('The Service "s" is invalid: spec.sessionAffinity: Unsupported value: "Sticky": '
                                'supported values: "ClientIP", "None"')
    p = cluster.kubectl("create", "-n", namespace, "-f", "-", check=False,
                        input=svc.replace("targetPort: 8080", "targetPort: 70000"))
    assert p.stderr.strip() == ('The Service "s" is invalid: spec.ports[0].targetPort: Invalid value: 70000: '
                                'must be between 1 and 65535, inclusive')
    assert cluster.kubectl("create", "-n", namespace, "-f", "-", input=svc).stdout.strip() == "service/s created"


def test_priority_classes(cluster, namespace):
    # "Pod Priority and Preemption": the two system classes exist, a pod's priority
    # comes from its class, an unknown class is refused by the Priority admission plugin
    out = cluster.kubectl("get", "priorityclasses").stdout.splitlines()
    assert out[0].split() == ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
    rows = {ln.split()[0]: ln.split() for ln in out[1:]}
    assert rows["system-node-critical"][1:3] == ["2000001000", "false"]
    assert rows["system-cluster-critical"][1:3] == ["2000000000", "false"]
    assert "priorityclasses" in cluster.kubectl("api-resources", "--api-group=scheduling.k8s.io").stdout

    name = f"high-{namespace}"[:60]
    p = cluster.kubectl("create", "priorityclass", name, "--value=1000000", "--description=high priority")
    assert p.stdout.strip() == f"priorityclass.scheduling.k8s.io/{name} created"
    try:
        ns = ["-n", namespace]
        cluster.kubectl("run", "important", "--image=demo:v1", f'--overrides={{"spec":{{"priorityClassName":"{name}"}}}}',
                        *ns)
        spec = cluster.kjson("get", "pod/important", *ns)["spec"]
        assert (spec["priority"], spec["preemptionPolicy"]) == (1000000, "PreemptLowerPriority")
        cluster.kubectl("run", "plain", "--image=demo:v1", *ns)
        spec = cluster.kjson("get", "pod/plain", *ns)["spec"]
        assert spec["priority"] == 0 and "priorityClassName" not in spec

        p = cluster.kubectl("run", "lost", "--image=demo:v1", *ns,
                            '--overrides={"spec":{"priorityClassName":"nope"}}', check=False)
        assert p.returncode == 1
        assert p.stderr.strip() == ('Error from server (Forbidden): pods "lost" is forbidden: no PriorityClass '
                                    'with name nope was found')
        p = cluster.kubectl("create", "priorityclass", "too-high", "--value=1000000001", check=False)
        assert p.stderr.strip() == ('error: failed to create priorityclass: PriorityClass.scheduling.k8s.io '
                                    '"too-high" is invalid: value: Forbidden: maximum allowed value of a user '
                                    'defined priority is 1000000000')
        p = cluster.kubectl("patch", "priorityclass", name, "-p", '{"value":5}', check=False)
        assert p.stderr.strip() == (f'The PriorityClass "{name}" is invalid: value: Forbidden: may not be changed '
                                    'in an update.')
    finally:
        cluster.kubectl("delete", "priorityclass", name, check=False)


def test_official_client_reads_what_a_delete_answers(cluster, namespace):
    # the Python client's own e2e suite (test_client.py test_service_apis) deserializes a
    # DELETE of a Service as a V1Service and asserts a created Service has a status:
    # upstream's service, serviceaccount, PV/PVC, podtemplate, resourcequota and
    # storage.k8s.io registries answer a DELETE with the object (ReturnDeletedObject)
    from kubernetes import client

    api = client.CoreV1Api(cluster.api_client())
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "frontend", "labels": {"name": "frontend"}},
           "spec": {"ports": [{"name": "port", "port": 80, "protocol": "TCP", "targetPort": 80}],
                    "selector": {"name": "frontend"}}}
    created = api.create_namespaced_service(body=svc, namespace=namespace)
    assert created.status is not None and created.status.load_balancer is not None
    assert api.read_namespaced_service("frontend", namespace).status.load_balancer is not None
    svc["spec"]["ports"] = [{"name": "new", "port": 8080, "protocol": "TCP", "targetPort": 8080}]
    assert len(api.patch_namespaced_service("frontend", namespace, svc).spec.ports) == 2
    gone = api.delete_namespaced_service(name="frontend", namespace=namespace, body={})
    assert isinstance(gone, client.V1Service) and gone.metadata.name == "frontend"

    api.create_namespaced_service_account(namespace, {"metadata": {"name": "robot"}})
    assert isinstance(api.delete_namespaced_service_account("robot", namespace), client.V1ServiceAccount)
    api.create_namespaced_persistent_volume_claim(namespace, {
        "metadata": {"name": "claim"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    assert isinstance(api.delete_namespaced_persistent_volume_claim("claim", namespace),
                      client.V1PersistentVolumeClaim)
    api.create_namespaced_resource_quota(namespace, {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "10"}}})
    assert isinstance(api.delete_namespaced_resource_quota("q", namespace), client.V1ResourceQuota)
    # a ConfigMap still answers with a Success Status
    api.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}, "data": {"a": "b"}})
    status = api.delete_namespaced_config_map("cm", namespace)
    assert (status["status"] if isinstance(status, dict) else status.status) == "Success"
    # kubectl's view is unchanged
    cluster.kubectl("create", "service", "clusterip", "s2", "--tcp=80", "-n", namespace)
    assert cluster.kubectl("delete", "service", "s2", "-n", namespace).stdout.strip() == 'service "s2" deleted'


def test_failure_status_bytes_are_upstreams(cluster, namespace):
    # kubernetes.utils.create_from_yaml puts the response body in FailToCreateError, and
    # the Python client's e2e suite compares that text byte for byte: metav1.Status's
    # field order, details' (name, group, kind), causes' `reason`, and Go's newline
    from kubernetes import utils

    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "triple"},
           "spec": {"selector": {"matchLabels": {"app": "t"}},
                    "template": {"metadata": {"labels": {"app": "t"}},
                                 "spec": {"containers": [{"name": "c", "image": "demo:v1"}]}}}}
    k = cluster.api_client()
    utils.create_from_dict(k, dep, namespace=namespace)
    with pytest.raises(utils.FailToCreateError) as e:
        utils.create_from_dict(k, dep, namespace=namespace)
    assert str(e.value) == (
        'Error from server (Conflict): {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        '"message":"deployments.apps \\"triple\\" already exists","reason":"AlreadyExists",'
        '"details":{"name":"triple","group":"apps","kind":"deployments"},"code":409}\n')
    with pytest.raises(utils.FailToCreateError) as e:
        utils.create_from_dict(k, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_"}},
                               namespace=namespace)
    body = str(e.value).split(": ", 1)[1]
    assert body.endswith('"field":"metadata.name"}]},"code":422}\n')
    assert '"details":{"name":"Bad_","kind":"ConfigMap","causes":[{"reason":"FieldValueInvalid","message":' in body


def test_apiservices(cluster):
    # `kubectl get apiservices` lists a Local APIService per served group/version; the
    # Python client's e2e suite registers one for an aggregated API and expects
    # upstream's AlreadyExists bytes on the second try
    from kubernetes import client, utils

    out = cluster.kubectl("get", "apiservices").stdout.splitlines()
    assert out[0].split() == ["NAME", "SERVICE", "AVAILABLE", "AGE"]
    rows = {ln.split()[0]: ln.split()[1:3] for ln in out[1:]}
    assert rows["v1."] == rows["v1.apps"] == rows["v2.autoscaling"] == ["Local", "True"]

    k = cluster.api_client()
    svc = {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
           "metadata": {"name": "v1alpha1.wardle.k8s.io"},
           "spec": {"insecureSkipTLSVerify": True, "group": "wardle.k8s.io", "groupPriorityMinimum": 1000,
                    "versionPriority": 15, "service": {"name": "api", "namespace": "wardle"}, "version": "v1alpha1"}}
    utils.create_from_dict(k, svc)
    try:
        reg = client.ApiregistrationV1Api(k)
        got = reg.read_api_service(name="v1alpha1.wardle.k8s.io")
        assert (got.spec.group, got.spec.version, got.spec.service.port) == ("wardle.k8s.io", "v1alpha1", 443)
        with pytest.raises(utils.FailToCreateError) as e:
            utils.create_from_dict(k, svc)
        assert str(e.value) == (
            'Error from server (Conflict): {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
            '"message":"apiservices.apiregistration.k8s.io \\"v1alpha1.wardle.k8s.io\\" already exists",'
            '"reason":"AlreadyExists","details":{"name":"v1alpha1.wardle.k8s.io","group":"apiregistration.k8s.io",'
            '"kind":"apiservices"},"code":409}\n')
        row = cluster.kubectl("get", "apiservice", "v1alpha1.wardle.k8s.io", "--no-headers").stdout.split()
        assert row[1:4] == ["wardle/api", "False", "(ServiceNotFound)"]
        # not proxied, so not in discovery: kubectl keeps working without discovery errors
        p = cluster.kubectl("get", "pods", "-A")
        assert "wardle" not in p.stderr and "wardle.k8s.io" not in cluster.kubectl("api-versions").stdout
    finally:
        client.ApiregistrationV1Api(k).delete_api_service(name="v1alpha1.wardle.k8s.io", body={})
    bad = cluster.kubectl("create", "-f", "-", check=False, input=json.dumps(
        {**svc, "metadata": {"name": "wrong"}}))
    assert bad.stderr.strip() == ('The APIService "wrong" is invalid: metadata.name: Invalid value: "wrong": must be '
                                  '`spec.version+"."+spec.group`: "v1alpha1.wardle.k8s.io"')


def test_deleting_a_job_without_a_policy_keeps_its_pods(cluster, namespace):
    # batch/v1 Jobs (and v1 ReplicationControllers) orphan their pods when a DELETE names
    # no propagationPolicy, with upstream's warning; kubectl sends Background
    import warnings as _warnings

    from kubernetes import client

    ns = ["-n", namespace]
    cluster.kubectl("create", "job", "keep", "--image=demo:v1", *ns, "--", "sleep", "60")
    cluster.wait_for(lambda: cluster.kjson("get", "pods", "-l", "job-name=keep", *ns)["items"], what="job pod")
    batch = client.BatchV1Api(cluster.api_client())
    with _warnings.catch_warnings(record=True):
        _, _, headers = batch.delete_namespaced_job_with_http_info("keep", namespace, body={})
    assert "child pods are preserved by default when jobs are deleted" in headers.get("Warning", "")
    cluster.wait_for(lambda: cluster.kubectl("get", "job", "keep", *ns, check=False).returncode != 0,
                     what="job gone")
    pods = cluster.kjson("get", "pods", "-l", "job-name=keep", *ns)["items"]
    assert len(pods) == 1 and not pods[0]["metadata"].get("deletionTimestamp")
    cluster.wait_for(lambda: not cluster.kjson("get", "pods", "-l", "job-name=keep", *ns)["items"][0]["metadata"]
                     .get("ownerReferences"), what="pod orphaned")

    cluster.kubectl("create", "job", "gone", "--image=demo:v1", *ns, "--", "sleep", "60")
    cluster.wait_for(lambda: cluster.kjson("get", "pods", "-l", "job-name=gone", *ns)["items"], what="job pod")
    p = cluster.kubectl("delete", "job", "gone", *ns)
    assert p.stdout.strip() == 'job.batch "gone" deleted' and "Warning" not in p.stderr
    cluster.wait_for(lambda: all(pd["metadata"].get("deletionTimestamp") for pd in
                                 cluster.kjson("get", "pods", "-l", "job-name=gone", *ns)["items"]),
                     what="kubectl's delete removes the pods")


def test_a_job_being_deleted_makes_no_new_pods(cluster, namespace):
    # an orphaning delete strips the pods' ownerReferences while the Job still exists (here
    # held by a finalizer): the Job controller must not count "no pods" and start another
    ns = ["-n", namespace]
    cluster.kubectl("create", "job", "held", "--image=demo:v1", *ns, "--", "sleep", "60")
    cluster.wait_for(lambda: cluster.kjson("get", "pods", "-l", "job-name=held", *ns)["items"], what="job pod")
    cluster.kubectl("patch", "job", "held", *ns, "--type=merge", "-p",
                    '{"metadata":{"finalizers":["example.com/hold"]}}')
    cluster.kubectl("delete", "job", "held", *ns, "--cascade=orphan", "--wait=false")
    cluster.wait_for(lambda: not cluster.kjson("get", "pods", "-l", "job-name=held", *ns)["items"][0]["metadata"]
                     .get("ownerReferences"), what="pod orphaned")
    time.sleep(2)  # the Job controller has synced the deleting Job (it used to create a pod here)
    pods = cluster.kjson("get", "pods", "-l", "job-name=held", *ns)["items"]
    assert len(pods) == 1 and not pods[0]["metadata"].get("ownerReferences"), pods
    cluster.kubectl("patch", "job", "held", *ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')


def test_create_token_for_a_service_account(cluster, namespace):
    # `kubectl create token` (TokenRequest) and using the token, as in "Configure
    # Service Accounts for Pods": whoami names the service account; a deleted service
    # account's token and a forged one are Unauthorized
    ns = ["-n", namespace]
    # every namespace gets a `default` service account (the serviceaccount controller)
    cluster.wait_for(lambda: cluster.kubectl("get", "serviceaccount", "default", *ns, check=False).returncode == 0,
                     what="default service account")
    cluster.kubectl("create", "serviceaccount", "robot", *ns)
    token = cluster.kubectl("create", "token", "robot", *ns).stdout.strip()
    assert token.count(".") == 2
    who = cluster.kubectl("auth", "whoami", f"--token={token}").stdout
    assert f"system:serviceaccount:{namespace}:robot" in who
    assert f"[system:serviceaccounts system:serviceaccounts:{namespace} system:authenticated]" in who
    # RBAC: the account may list service accounts once a role says so (docs/rbac.md)
    cluster.kubectl("create", "role", "sa-reader", "--verb=list", "--resource=serviceaccounts", *ns)
    cluster.kubectl("create", "rolebinding", "robot-reads", "--role=sa-reader", f"--serviceaccount={namespace}:robot",
                    *ns)
    assert cluster.kubectl("get", "serviceaccounts", *ns, f"--token={token}", "-o", "name").stdout.split() == \
        ["serviceaccount/default", "serviceaccount/robot"]
    p = cluster.kubectl("create", "token", "robot", "--duration=1m", *ns, check=False)
    assert p.stderr.strip() == ('error: failed to create token: TokenRequest.authentication.k8s.io "robot" is '
                                'invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration '
                                'less than 10 minutes')
    p = cluster.kubectl("create", "token", "nobody", *ns, check=False)
    assert p.stderr.strip() == 'error: failed to create token: serviceaccounts "nobody" not found'
    head, body, sig = token.split(".")
    forged = f"{head}.{body}.{sig[:-2]}{'AA' if sig[-2:] != 'AA' else 'BB'}"
    p = cluster.kubectl("get", "pods", *ns, f"--token={forged}", check=False)
    assert p.stderr.strip() == "error: You must be logged in to the server (Unauthorized)"
    cluster.kubectl("delete", "serviceaccount", "robot", *ns)
    p = cluster.kubectl("get", "pods", *ns, f"--token={token}", check=False)
    assert p.stderr.strip() == "error: You must be logged in to the server (Unauthorized)"


def test_every_namespace_has_a_default_service_account(cluster):
    ns = f"sa-{os.getpid() % 1000}"
    cluster.kubectl("create", "namespace", ns)
    try:
        cluster.wait_for(lambda: cluster.kubectl("get", "sa", "-n", ns, "-o", "name").stdout.split() ==
                         ["serviceaccount/default"], what="default service account", timeout=10)
        cluster.kubectl("delete", "sa", "default", "-n", ns)
        cluster.wait_for(lambda: cluster.kubectl("get", "sa", "-n", ns, "-o", "name").stdout.split() ==
                         ["serviceaccount/default"], what="default service account again", timeout=10)
        p = cluster.kubectl("run", "x", "--image=demo:v1", "-n", ns,
                            '--overrides={"spec":{"serviceAccountName":"nope"}}', check=False)
        assert p.stderr.strip() == (f'Error from server (Forbidden): pods "x" is forbidden: error looking up service '
                                    f'account {ns}/nope: serviceaccount "nope" not found')
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_cronjob_template_is_stored_as_written(cluster, namespace):
    # "Running Automated Tasks with a CronJob": the jobTemplate is not a Job, so it
    # gets no Job defaults (describe shows <unset>); the Job made from it does
    ns = ["-n", namespace]
    cluster.kubectl("create", "cronjob", "hello", "--image=demo:v1", "--schedule=*/1 * * * *", *ns,
                    "--", "echo", "hello")
    spec = cluster.kjson("get", "cronjob/hello", *ns)["spec"]
    assert set(spec["jobTemplate"]["spec"]) == {"template"}
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    out = cluster.kubectl("describe", "cronjob", "hello", *ns).stdout
    assert "Parallelism:                   <unset>" in out and "Completions:                   <unset>" in out
    cluster.kubectl("create", "job", "manual", "--from=cronjob/hello", *ns)
    job = cluster.kjson("get", "job/manual", *ns)["spec"]
    assert (job["parallelism"], job["completions"], job["backoffLimit"]) == (1, 1, 6)


def test_running_init_container_is_not_ready(cluster, namespace):
    # "Init Containers": while an init container runs, describe shows Ready: False and
    # the pod Init:0/1; once it succeeded it is Ready: True
    ns = ["-n", namespace]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "myapp-pod"},
           "spec": {"initContainers": [{"name": "init-wait", "image": "demo:v1",
                                        "command": ["sh", "-c", "while [ ! -f go ]; do sleep 0.2; done"]}],
                    "containers": [{"name": "app", "image": "demo:v1", "command": ["sleep", "60"]}]}}
    cluster.kubectl("create", "-f", "-", *ns, input=json.dumps(pod))

    def init_state():
        st = cluster.kjson("get", "pod/myapp-pod", *ns)["status"].get("initContainerStatuses") or [{}]
        return st[0] if "running" in (st[0].get("state") or {}) else None

    assert cluster.wait_for(init_state, what="init container running")["ready"] is False
    assert cluster.kubectl("get", "pod", "myapp-pod", "--no-headers", *ns).stdout.split()[2] == "Init:0/1"
    cluster.kubectl("exec", "myapp-pod", "-c", "init-wait", *ns, "--", "touch", "go")

    def done():
        st = cluster.kjson("get", "pod/myapp-pod", *ns)["status"]
        return st if st.get("phase") == "Running" else None

    st = cluster.wait_for(done, what="pod running")
    assert st["initContainerStatuses"][0]["ready"] is True
    assert st["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"


def _pod(name: str, limits: dict, requests: dict) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"containers": [{"name": f"{name}-ctr", "image": "demo:v1",
                                                "resources": {"limits": limits, "requests": requests}}]}})


def test_resource_quota_tasks(cluster, namespace):
    # "Configure a Pod Quota for a Namespace" and "Configure Memory and CPU Quotas for a
    # Namespace": usage in get/describe, creates past `hard` refused with upstream's text
    ns = ["-n", namespace]
    cluster.kubectl("create", "quota", "pod-demo", "--hard=pods=2", *ns)
    cluster.kubectl("create", "-f", "-", *ns, input=json.dumps({
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "mem-cpu-demo"},
        "spec": {"hard": {"requests.cpu": "1", "requests.memory": "1Gi", "limits.cpu": "2",
                          "limits.memory": "2Gi"}}}))
    cluster.kubectl("create", "-f", "-", *ns, input=_pod("quota-mem-cpu-demo", {"memory": "800Mi", "cpu": "800m"},
                                                         {"memory": "600Mi", "cpu": "400m"}))

    def used():
        st = cluster.kjson("get", "resourcequota", "mem-cpu-demo", *ns).get("status") or {}
        return st if st.get("used", {}).get("requests.memory") == "600Mi" else None

    st = cluster.wait_for(used, what="quota usage")
    assert st["used"] == {"limits.cpu": "800m", "limits.memory": "800Mi", "requests.cpu": "400m",
                          "requests.memory": "600Mi"}
    assert st["hard"] == {"limits.cpu": "2", "limits.memory": "2Gi", "requests.cpu": "1", "requests.memory": "1Gi"}
    p = cluster.kubectl("create", "-f", "-", *ns, check=False,
                        input=_pod("quota-mem-cpu-demo-2", {"memory": "1Gi", "cpu": "800m"},
                                   {"memory": "700Mi", "cpu": "400m"}))
    assert p.returncode == 1
    assert p.stderr.strip() == ('Error from server (Forbidden): error when creating "STDIN": pods '
                                '"quota-mem-cpu-demo-2" is forbidden: exceeded quota: mem-cpu-demo, requested: '
                                'requests.memory=700Mi, used: requests.memory=600Mi, limited: requests.memory=1Gi')
    p = cluster.kubectl("run", "nores", "--image=demo:v1", *ns, check=False)
    assert p.stderr.strip() == ('Error from server (Forbidden): pods "nores" is forbidden: failed quota: mem-cpu-demo: '
                                'must specify limits.cpu for: nores; limits.memory for: nores; requests.cpu for: '
                                'nores; requests.memory for: nores')
    cluster.kubectl("create", "-f", "-", *ns, input=_pod("second", {"memory": "100Mi", "cpu": "100m"},
                                                         {"memory": "100Mi", "cpu": "100m"}))
    p = cluster.kubectl("create", "-f", "-", *ns, check=False,
                        input=_pod("third", {"memory": "100Mi", "cpu": "100m"}, {"memory": "100Mi", "cpu": "100m"}))
    assert p.stderr.strip() == ('Error from server (Forbidden): error when creating "STDIN": pods "third" is '
                                'forbidden: exceeded quota: pod-demo, requested: pods=1, used: pods=2, '
                                'limited: pods=2')
    cluster.wait_for(lambda: "pods: 2/2" in cluster.kubectl("get", "quota", "pod-demo", *ns).stdout,
                     what="pod count in get quota")


def test_limit_range_tasks(cluster, namespace):
    # "Configure Default Memory Requests and Limits" and "Configure Minimum and Maximum
    # Memory Constraints for a Namespace"
    ns = ["-n", namespace]
    cluster.kubectl("create", "-f", "-", *ns, input=json.dumps({
        "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "mem-min-max-demo-lr"},
        "spec": {"limits": [{"max": {"memory": "1Gi"}, "min": {"memory": "500Mi"}, "type": "Container"}]}}))
    item = cluster.kjson("get", "limitrange", "mem-min-max-demo-lr", *ns)["spec"]["limits"][0]
    assert (item["default"], item["defaultRequest"]) == ({"memory": "1Gi"}, {"memory": "1Gi"})
    cluster.kubectl("run", "defaulted", "--image=demo:v1", *ns)
    pod = cluster.kjson("get", "pod/defaulted", *ns)
    assert pod["spec"]["containers"][0]["resources"] == {"limits": {"memory": "1Gi"}, "requests": {"memory": "1Gi"}}
    assert pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: memory request for container defaulted; memory limit for container defaulted")
    assert pod["status"]["qosClass"] == "Burstable"
    p = cluster.kubectl("create", "-f", "-", *ns, check=False,
                        input=_pod("constraints-mem-demo-2", {"memory": "1.5Gi"}, {"memory": "800Mi"}))
    assert p.stderr.strip() == ('Error from server (Forbidden): error when creating "STDIN": pods '
                                '"constraints-mem-demo-2" is forbidden: maximum memory usage per Container is 1Gi, '
                                'but limit is 1536Mi')
    p = cluster.kubectl("create", "-f", "-", *ns, check=False,
                        input=_pod("constraints-mem-demo-3", {"memory": "800Mi"}, {"memory": "100Mi"}))
    assert p.stderr.strip() == ('Error from server (Forbidden): error when creating "STDIN": pods '
                                '"constraints-mem-demo-3" is forbidden: minimum memory usage per Container is 500Mi, '
                                'but request is 100Mi')


def test_describe_node_shows_the_kubelets_start(cluster):
    # a node's story in `kubectl describe node`, as on a fresh upstream node
    def reasons():
        r = _events(cluster, "default", "node/node-1")
        return r if "NodeReady" in r and "RegisteredNode" in r else None

    r = cluster.wait_for(reasons, what="node events")
    kubelet = [x for x in r if x not in ("RegisteredNode", "HostNetworkPods")]
    assert kubelet[:5] == ["Starting", "NodeHasSufficientMemory", "NodeHasNoDiskPressure", "NodeHasSufficientPID",
                           "NodeReady"]
    out = cluster.kubectl("describe", "node", "node-1").stdout
    assert "Starting kubelet." in out and "Node node-1 status is now: NodeReady" in out
    assert "Node node-1 event: Registered Node node-1 in Controller" in out


def test_unknown_subresource_is_an_upstream_404(cluster, namespace):
    # kubectl reads details of a 404 for a subresource (kubectl debug's, before kybern
    # served pods/ephemeralcontainers: with no details at all kubectl 1.32 panicked)
    ns = ["-n", namespace]
    cluster.kubectl("run", "target", "--image=demo:v1", *ns)
    raw = cluster.kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/pods/target/nothing", check=False)
    assert raw.stderr.strip() == "Error from server (NotFound): the server could not find the requested resource"


def test_kubectl_debug_with_an_ephemeral_container(cluster, namespace):
    # "Debug Running Pods": kubectl debug adds an ephemeral container to a running pod,
    # which the node starts once; its logs, status and describe are as upstream's
    ns = ["-n", namespace]
    cluster.kubectl("run", "target", "--image=demo:v1", *ns)
    cluster.kubectl("wait", "--for=condition=Ready", "pod/target", "--timeout=60s", *ns)
    p = cluster.kubectl("debug", "target", "--image=demo:v1", "--profile=general", "-c", "debugger", *ns, "--",
                        "sh", "-c", "echo hello-from-debug")
    assert "panic" not in p.stderr

    def finished():
        st = cluster.kjson("get", "pod/target", *ns)["status"].get("ephemeralContainerStatuses") or [{}]
        return st[0] if "terminated" in (st[0].get("state") or {}) else None

    st = cluster.wait_for(finished, what="ephemeral container done")
    assert st["name"] == "debugger" and st["state"]["terminated"]["exitCode"] == 0 and st["ready"] is False
    assert cluster.kubectl("logs", "target", "-c", "debugger", *ns).stdout.strip() == "hello-from-debug"
    assert "Ephemeral Containers:\n  debugger:" in cluster.kubectl("describe", "pod", "target", *ns).stdout
    p = cluster.kubectl("debug", "-i", "target", "--image=demo:v1", "--profile=general", "-c", "shell", *ns, "--",
                        "sh", input="echo via-stdin; exit\n")
    assert "via-stdin" in p.stdout
    # the pod's other fields cannot change through the subresource, nor an existing ephemeral container
    p = cluster.kubectl("debug", "target", "--image=demo:v1", "--profile=general", "-c", "debugger", *ns, "--",
                        "true", check=False)
    assert p.returncode == 1 and 'existing ephemeral containers "debugger" may not be changed' in p.stderr
    assert cluster.kjson("get", "pod/target", *ns)["status"]["containerStatuses"][0]["restartCount"] == 0


def test_immutable_configmaps_and_secret_types(cluster, namespace):
    # "Immutable ConfigMaps" / Secret types: upstream's update and type validation
    ns = ["-n", namespace]
    cluster.kubectl("apply", "-f", "-", *ns, input=json.dumps({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "imm"}, "data": {"a": "1"}, "immutable": True}))
    p = cluster.kubectl("patch", "configmap", "imm", "-p", '{"data":{"a":"2"}}', *ns, check=False)
    assert p.stderr.strip() == 'The ConfigMap "imm" is invalid: data: Forbidden: field is immutable when `immutable` is set'
    p = cluster.kubectl("patch", "configmap", "imm", "-p", '{"immutable":false}', *ns, check=False)
    assert p.stderr.strip() == ('The ConfigMap "imm" is invalid: immutable: Forbidden: field is immutable when '
                                '`immutable` is set')
    assert cluster.kubectl("label", "configmap", "imm", "x=y", *ns).stdout.strip() == "configmap/imm labeled"

    p = cluster.kubectl("create", "secret", "generic", "bad-tls", "--from-literal=a=b", "--type=kubernetes.io/tls",
                        *ns, check=False)
    assert p.stderr.strip() == ('error: failed to create secret Secret "bad-tls" is invalid: [data[tls.crt]: Required '
                                'value, data[tls.key]: Required value]')
    cluster.kubectl("create", "secret", "generic", "plain", "--from-literal=a=b", *ns)
    p = cluster.kubectl("patch", "secret", "plain", "-p", '{"type":"Other"}', *ns, check=False)
    assert p.stderr.strip() == 'The Secret "plain" is invalid: type: Invalid value: "Other": field is immutable'


def test_service_updates_keep_and_release_allocations(cluster, namespace):
    # kubectl replace of a manifest keeps the allocated clusterIP and nodePort; a
    # clusterIP cannot change; ClusterIP <-> NodePort allocates and releases node ports
    ns = ["-n", namespace]
    manifest = cluster.kubectl("create", "service", "nodeport", "web", "--tcp=80", "--dry-run=client", "-o", "yaml",
                               *ns).stdout
    cluster.kubectl("create", "-f", "-", *ns, input=manifest)
    before = cluster.kjson("get", "service/web", *ns)["spec"]
    assert cluster.kubectl("replace", "-f", "-", *ns, input=manifest).stdout.strip() == "service/web replaced"
    after = cluster.kjson("get", "service/web", *ns)["spec"]
    assert (after["clusterIP"], after["clusterIPs"], after["ports"][0]["nodePort"]) == \
        (before["clusterIP"], before["clusterIPs"], before["ports"][0]["nodePort"])
    p = cluster.kubectl("patch", "service", "web", "-p", '{"spec":{"clusterIP":"10.96.5.5"}}', *ns, check=False)
    assert p.stderr.strip() == ('The Service "web" is invalid: spec.clusterIPs[0]: Invalid value: []string{"10.96.5.5"}'
                                ': may not change once set')
    cluster.kubectl("patch", "service", "web", "-p", '{"spec":{"type":"ClusterIP"}}', *ns)
    spec = cluster.kjson("get", "service/web", *ns)["spec"]
    assert "nodePort" not in spec["ports"][0] and "externalTrafficPolicy" not in spec
    cluster.kubectl("patch", "service", "web", "-p", '{"spec":{"type":"NodePort"}}', *ns)
    row = cluster.kubectl("get", "service", "web", "--no-headers", *ns).stdout.split()
    assert row[1] == "NodePort" and row[4].startswith("80:3") and row[4].endswith("/TCP")


def test_events_k8s_io_is_the_same_events(cluster, namespace):
    # events.k8s.io/v1 serves the stored core Events through its own schema (client-go's
    # tools/events recorder writes there); each group sees the other's writes
    import datetime

    from kubernetes import client

    ev = client.EventsV1Api(cluster.api_client())
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "synced.1"},
            "eventTime": now, "reportingController": "example.com/ctl", "reportingInstance": "ctl-1",
            "action": "Sync", "reason": "Synced", "type": "Normal", "note": "it worked",
            "regarding": {"kind": "Pod", "name": "web-0", "namespace": namespace}}
    made = ev.create_namespaced_event(namespace, body)
    assert (made.note, made.regarding.name, made.reporting_controller) == ("it worked", "web-0", "example.com/ctl")
    core = client.CoreV1Api(cluster.api_client()).read_namespaced_event("synced.1", namespace)
    assert (core.message, core.involved_object.name, core.reporting_component) == \
        ("it worked", "web-0", "example.com/ctl")
    rows = cluster.kubectl("get", "events", "-n", namespace, "--no-headers").stdout.split()
    assert rows[1:5] == ["Normal", "Synced", "pod/web-0", "it"]
    rows = cluster.kubectl("get", "events.events.k8s.io", "-n", namespace, "--no-headers").stdout.split()
    assert rows[1:5] == ["Normal", "Synced", "pod/web-0", "it"]
    with pytest.raises(client.ApiException) as e:
        ev.create_namespaced_event(namespace, {**body, "metadata": {"name": "bad.1"}, "action": ""})
    assert e.value.status == 422 and '"message":"Event.events.k8s.io \\"bad.1\\" is invalid: action: Required value"' \
        in e.value.body
    assert "events.k8s.io/v1" in cluster.kubectl("api-versions").stdout


def test_pod_disruption_budgets_are_kept_and_enforced(cluster, namespace):
    # "Specifying a Disruption Budget for your Application": status from the disruption
    # controller in `kubectl get pdb`, and evictions (what kubectl drain sends) refused
    # once the budget is spent
    from kubernetes import client

    ns = ["-n", namespace]
    cluster.kubectl("create", "deployment", "zk", "--image=demo:v1", "--replicas=3", *ns)
    cluster.kubectl("rollout", "status", "deployment/zk", "--timeout=60s", *ns)
    cluster.kubectl("create", "pdb", "zk-pdb", "--selector=app=zk", "--max-unavailable=1", *ns)
    cluster.kubectl("create", "pdb", "zk-min", "--selector=app=zk", "--min-available=50%", *ns)

    def row():
        out = cluster.kubectl("get", "pdb", *ns, "--no-headers").stdout.splitlines()
        rows = sorted(ln.split()[:4] for ln in out)
        return rows if all(r[3] == "1" for r in rows) else None

    assert cluster.wait_for(row, what="pdb status") == [["zk-min", "50%", "N/A", "1"], ["zk-pdb", "N/A", "1", "1"]]
    st = cluster.kjson("get", "pdb", "zk-pdb", *ns)["status"]
    assert (st["currentHealthy"], st["desiredHealthy"], st["expectedPods"]) == (3, 2, 3)
    assert st["conditions"][0]["reason"] == "SufficientPods"

    cluster.kubectl("delete", "pdb", "zk-min", *ns)
    core = client.CoreV1Api(cluster.api_client())
    pods = [p["metadata"]["name"] for p in cluster.kjson("get", "pods", "-l", "app=zk", *ns)["items"]]
    body = {"apiVersion": "policy/v1", "kind": "Eviction"}
    core.create_namespaced_pod_eviction(pods[0], namespace, {**body, "metadata": {"name": pods[0]}})
    with pytest.raises(client.ApiException) as e:
        core.create_namespaced_pod_eviction(pods[1], namespace, {**body, "metadata": {"name": pods[1]}})
    assert e.value.status == 429
    assert "Cannot evict pod as it would violate the pod's disruption budget." in e.value.body


def test_limit_storage_consumption(cluster, namespace):
    # "Limit Storage Consumption": a LimitRange on claims and a storage quota
    ns = ["-n", namespace]
    cluster.kubectl("create", "-f", "-", *ns, input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "storagelimits"},
         "spec": {"limits": [{"type": "PersistentVolumeClaim", "max": {"storage": "2Gi"}, "min": {"storage": "1Gi"}}]}},
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "storagequota"},
         "spec": {"hard": {"persistentvolumeclaims": "5", "requests.storage": "5Gi"}}}]}))

    def claim(name: str, size: str) -> str:
        return json.dumps({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
                           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}})

    prefix = 'Error from server (Forbidden): error when creating "STDIN": persistentvolumeclaims'
    p = cluster.kubectl("create", "-f", "-", *ns, input=claim("big", "5Gi"), check=False)
    assert p.stderr.strip() == (f'{prefix} "big" is forbidden: maximum storage usage per PersistentVolumeClaim is 2Gi, '
                                'but request is 5Gi')
    p = cluster.kubectl("create", "-f", "-", *ns, input=claim("small", "500Mi"), check=False)
    assert p.stderr.strip() == (f'{prefix} "small" is forbidden: minimum storage usage per PersistentVolumeClaim is '
                                '1Gi, but request is 500Mi')
    cluster.kubectl("create", "-f", "-", *ns, input=claim("ok1", "2Gi"))
    cluster.kubectl("create", "-f", "-", *ns, input=claim("ok2", "2Gi"))
    p = cluster.kubectl("create", "-f", "-", *ns, input=claim("ok3", "2Gi"), check=False)
    assert p.stderr.strip() == (f'{prefix} "ok3" is forbidden: exceeded quota: storagequota, requested: '
                                'requests.storage=2Gi, used: requests.storage=4Gi, limited: requests.storage=5Gi')
    cluster.wait_for(lambda: "persistentvolumeclaims: 2/5, requests.storage: 4Gi/5Gi" in
                     cluster.kubectl("get", "quota", "storagequota", *ns).stdout, what="storage quota usage")


def test_claim_in_use_is_protected_and_its_volume_reclaimed(cluster, namespace):
    # "Storage Object in Use Protection": a claim deleted while a pod uses it stays
    # Terminating until the pod is gone; then its dynamically provisioned volume goes
    ns = ["-n", namespace]
    cluster.kubectl("apply", "-f", "-", *ns, input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "user"},
         "spec": {"containers": [{"name": "c", "image": "demo:v1", "command": ["sleep", "600"],
                                  "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
                  "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}]}))
    cluster.wait_for(lambda: cluster.kjson("get", "pvc", "data", *ns)["status"].get("phase") == "Bound",
                     what="claim bound")
    pvc = cluster.kjson("get", "pvc", "data", *ns)
    assert pvc["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    volume = pvc["spec"]["volumeName"]
    assert cluster.kjson("get", "pv", volume)["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]
    cluster.kubectl("delete", "pvc", "data", "--wait=false", *ns)
    time_row = cluster.kubectl("get", "pvc", "data", "--no-headers", *ns).stdout.split()
    assert time_row[1] == "Terminating"
    cluster.kubectl("delete", "pod", "user", "--grace-period=1", *ns)
    cluster.wait_for(lambda: cluster.kubectl("get", "pvc", "data", *ns, check=False).returncode == 1,
                     what="claim gone")
    cluster.wait_for(lambda: cluster.kubectl("get", "pv", volume, check=False).returncode == 1,
                     what="volume reclaimed")


def test_crash_looping_container_keeps_its_container_id(cluster, namespace):
    # describe of a CrashLoopBackOff pod shows the last container's ID, as the kubelet reports
    ns = ["-n", namespace]
    cluster.kubectl("run", "crash", "--image=demo:v1", *ns, "--", "sh", "-c", "exit 1")

    def looping():
        cs = (cluster.kjson("get", "pod/crash", *ns)["status"].get("containerStatuses") or [{}])[0]
        return cs if (cs.get("state", {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff" else None

    cs = cluster.wait_for(looping, what="CrashLoopBackOff")
    assert cs["containerID"].startswith("process://")
    assert cs["containerID"] == cs["lastState"]["terminated"]["containerID"]
    out = cluster.kubectl("describe", "pod", "crash", *ns).stdout
    assert f"Container ID:  {cs['containerID']}" in out


def test_only_one_global_default_priority_class(cluster):
    low, mid = f"low-{os.getpid() % 1000}", f"mid-{os.getpid() % 1000}"
    try:
        cluster.kubectl("create", "priorityclass", low, "--value=10", "--global-default")
        cluster.kubectl("create", "priorityclass", mid, "--value=20")
        p = cluster.kubectl("patch", "priorityclass", mid, "-p", '{"globalDefault":true}', check=False)
        assert p.stderr.strip() == (f'Error from server (Forbidden): priorityclasses.scheduling.k8s.io "{mid}" is '
                                    f'forbidden: PriorityClass {low} is already marked as default. Only one default '
                                    'can exist')
        assert cluster.kubectl("patch", "priorityclass", low, "-p", '{"description":"x"}').returncode == 0
    finally:
        cluster.kubectl("delete", "priorityclass", low, mid, "--ignore-not-found", check=False)


def test_quota_scopes(cluster, namespace):
    # `kubectl create quota --scopes=BestEffort`: only the pods in the scope count
    ns = ["-n", namespace]
    cluster.kubectl("create", "quota", "best-effort", "--hard=pods=1", "--scopes=BestEffort", *ns)
    cluster.kubectl("run", "be1", "--image=demo:v1", *ns)
    p = cluster.kubectl("run", "be2", "--image=demo:v1", *ns, check=False)
    assert p.stderr.strip() == ('Error from server (Forbidden): pods "be2" is forbidden: exceeded quota: best-effort, '
                                'requested: pods=1, used: pods=1, limited: pods=1')
    cluster.kubectl("create", "-f", "-", *ns, input=_pod("burstable", {"memory": "64Mi"}, {"memory": "32Mi"}))
    cluster.wait_for(lambda: "pods: 1/1" in cluster.kubectl("get", "quota", "best-effort", *ns).stdout,
                     what="scoped usage")
