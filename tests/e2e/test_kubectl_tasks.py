"""kubernetes.io task pages and tutorials walked step by step with the real kubectl
1.32, asserting what the page's reader checks, where kybern once differed from
upstream Kubernetes:

- "StatefulSet Basics" (tutorials/stateful-application/basic-stateful-set): scaling,
  rolling update, staging and canary with `partition`, phased roll out, OnDelete
  (whose first patch, without `"rollingUpdate": null`, upstream refuses).
- "Indexed Job for Parallel Processing with Static Work Assignment"
  (tasks/job/indexed-parallel-processing-static): one `Completed` event.
- "Managing Service Accounts" / "Configure Service Accounts for Pods": bound tokens
  (`kubectl create token --bound-object-*`), legacy token tracking, issuer discovery.
- "Using RBAC Authorization": roleRef immutability, `kubectl auth reconcile`, validation
  text; "Authorization" overview: a SelfSubjectAccessReview, `can-i --subresource`.
- "Handling retriable and non-retriable pod failures with Pod failure policy"
  (tasks/job/pod-failure-policy): backoffLimitPerIndex/FailIndex/failedIndexes, a
  custom pod condition after a delete, an eviction's DisruptionTarget ignored.
- "Limit Ranges" (concepts/policy/limit-range): a request above the default limit.
- "Pull an Image from a Private Registry": a Secret from a config file that is not JSON.
- "Connecting Applications with Services": the Endpoints of an unnamed port.
- "Advertise Extended Resources for a Node" / "Assign Extended Resources to a
  Container": no overcommitting an extended resource.
- "Jobs" concept page, "Success policy" (the SuccessPolicy reason), "Elastic Indexed
  Jobs" (completions changed with parallelism), "Mutable Scheduling Directives".
- "Owners and Dependents" / "Use Cascading Deletion in a Cluster" (foreground,
  background, orphan, `kubectl get pods -l app=nginx -o yaml` ownerReferences): owners
  and dependents of every served kind (custom resources, ServiceAccounts, RBAC), and the
  OwnerRefInvalidNamespace events; "Finalizers" (no new finalizer on an object being
  deleted, finalizer names validated).
- "Configure a Pod Quota for a Namespace": no third pod past `pods: "2"`, the
  ReplicaFailure condition.
- "Configure Default CPU Requests and Limits for a Namespace": `cpu: "0.75"` stored as
  `750m`; the pod moved to `kubectl apply --server-side` without the migration's error.
- "Labels and Selectors" / "Field Selectors": `>`/`<` selectors, the parser's error texts.
- "Using Source IP" (kubectl parts): a Local LoadBalancer's healthCheckNodePort, and
  the service proxy answering health checks on it.
- "Assign Pods to Nodes using Node Affinity" / "Assigning Pods to Nodes" (Gt/Lt,
  DoesNotExist), "Taints and Tolerations", "Pod Topology Spread Constraints" (maxSkew,
  whenUnsatisfiable, minDomains): malformed terms refused with upstream's messages;
  "ReplicaSet" (Pod deletion cost): the annotation must be a 32-bit integer;
  "Deployments" (progressDeadlineSeconds, revisionHistoryLimit, maxSurge/maxUnavailable):
  values upstream's ValidateDeploymentSpec refuses; "DaemonSet" (a rolling update with
  both maxSurge and maxUnavailable, or neither).
- "Configure a Pod to Use a PersistentVolume for Storage": a zero capacity or request,
  an unknown reclaim policy, a hostPath with `..` refused.
- "Resource Quotas" (scopes, scopeSelector): scopes that do not fit the resources or
  conflict, bad selector operators/values, unknown resource names refused; scopes
  immutable; the CrossNamespacePodAffinity scope counts pods with cross-namespace terms;
  `count/pods` counts finished pods too (checked with the Indexed Job); per-storage-class
  claim quotas (`<class>.storageclass.storage.k8s.io/...`, checked with the PV page) and
  extended resources (`requests.example.com/dongle`, with the extended resources pages).
- "Pod Priority and Preemption": the victim's Preempted event names its preemptor
  (`related`) and the action Preempting (checked in test_scheduling_walkthrough.py).

Walked and found matching upstream (no test step of their own): "Configure Liveness,
Readiness and Startup Probes" (event texts), "Assign Memory/CPU Resources" (OOMKilled,
FailedScheduling text), "Configure a Pod to Use a ConfigMap" (`--from-env-file`,
optional refs, missing key/ConfigMap messages), "Configure Quality of Service for
Pods", "Determine the Reason for Pod Failure", "Attach Handlers to Container Lifecycle
Events", "Configure Pod Initialization", "Declarative Management ... Using
Configuration Files" (`kubectl diff`, `apply --prune`), "Managing Kubernetes Objects
Using Kustomize", "Update API Objects in Place Using kubectl patch", "Namespaces
Walkthrough", "Define Dependent Environment Variables", "Distribute Credentials
Securely Using Secrets", "Running Automated Tasks with a CronJob", "Specifying a
Disruption Budget for your Application", "Safely Drain a Node" (the PDB's refusal),
"Use Port Forwarding to Access Applications in a Cluster", "Configure a Pod to Use a
Projected Volume for Storage", "Perform a Rolling Update on a DaemonSet" (rollout
status/history), "Debug Running Pods" (`kubectl debug --copy-to`, `node/`), "Init
Containers" (`Init:0/2`), "Jobs: Suspending a Job" (Suspended/Resumed conditions and
events), "Job with Pod-to-Pod Communication" (the pods' DNS names), "Automatic Cleanup
for Finished Jobs", "Configure Default Memory Requests and Limits for a Namespace",
"Configure Minimum and Maximum Memory Constraints" (the LimitRanger's refusals),
"Configure Memory and CPU Quotas for a Namespace" (status, "exceeded quota", "must
specify"), "Define a Command and Arguments for a Container", "Run a Stateless
Application Using a Deployment" (describe, rollout events), "Scale a StatefulSet",
"Delete a StatefulSet" (`--cascade=orphan`, claims kept), "Use a Service to Access an
Application in a Cluster" (NodePort, describe), "Expose an External IP Address"
(ServiceLB, `LoadBalancer Ingress`), "Deployments" concept page (rollout status texts,
history/`undo --to-revision`, change-cause, pause/resume and the DeploymentPaused
condition, proportional scaling 8+5 -> 11+7, progressDeadlineSeconds,
revisionHistoryLimit), "ReplicaSet" (bare pods adopted or deleted, `--cascade=orphan`,
isolating a pod by relabelling), "Taints and Tolerations" (`kubectl taint`, NoExecute
eviction), "Resource Quotas" (BestEffort scope, PriorityClass scopeSelector,
`count/deployments.apps`), "Pod Priority and Preemption" (`preemptionPolicy: Never`,
PriorityClass refusals), "DaemonSet" (the added tolerations and node affinity, a
nodeSelector gaining and losing its node), "Assign Pods to Nodes using Node Affinity"
(Gt/Lt/DoesNotExist matching), "Pod Topology Spread Constraints" (minDomains keeps
pods Pending, "No preemption victims found"). "Adding entries to Pod /etc/hosts with HostAliases" (its
one-line-per-IP format, fixed) is checked in test_pod_status_kubectl.py, the "Jobs"
page's OnFailure back-off limit in tests/unit/controllers/test_job_logic.py.

The pages' images are not in kybern's store (docs/node.md, Images); as a user
would, the tests import stand-ins under the pages' names: `registry.k8s.io/
nginx-slim:0.21`/`0.24` hold an empty /usr/share/nginx/html and only sleep (the tests
check what the controller does, not what nginx serves), `bash` and `busybox` are the
host's commands.
"""

from __future__ import annotations

import base64
import json
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kybern.node.images import ImageStore

pytestmark = pytest.mark.e2e

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _import_stand_ins(cluster) -> None:
    store = ImageStore(str(cluster.dir / "data" / "node"))
    with tempfile.TemporaryDirectory() as d:
        empty = Path(d) / "empty"
        empty.mkdir()
        for ref, cmd in (("docker.io/library/bash:latest", ["bash"]), ("docker.io/library/busybox:latest", ["sh"])):
            store.import_dir(ref, empty, config={"env": [f"PATH={PATH}"], "cmd": cmd})
        html = Path(d) / "nginx" / "usr/share/nginx/html"
        html.mkdir(parents=True)
        for tag in ("0.21", "0.24"):  # nothing listens: pods may share the host's network here
            store.import_dir(f"registry.k8s.io/nginx-slim:{tag}", Path(d) / "nginx", config={
                "env": [f"PATH={PATH}"], "workingDir": "/usr/share/nginx/html", "cmd": ["sleep", "3600"]})


WEB = """
apiVersion: v1
kind: Service
metadata:
  name: nginx
  labels:
    app: nginx
spec:
  ports:
  - port: 80
    name: web
  clusterIP: None
  selector:
    app: nginx
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: "nginx"
  replicas: 2
  minReadySeconds: 0
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: nginx
        image: registry.k8s.io/nginx-slim:0.21
        ports:
        - containerPort: 80
          name: web
        volumeMounts:
        - name: www
          mountPath: /usr/share/nginx/html
  volumeClaimTemplates:
  - metadata:
      name: www
    spec:
      accessModes: [ "ReadWriteOnce" ]
      resources:
        requests:
          storage: 1Gi
"""

IMAGES = "{range .items[*]}{.metadata.name}{\"\\t\"}{.spec.containers[0].image}{\"\\n\"}{end}"


def test_statefulset_basics_updates(cluster, namespace):
    _import_stand_ins(cluster)
    k = lambda *a, **kw: cluster.kubectl("-n", namespace, *a, **kw)

    def images() -> dict[str, str]:
        return dict(line.split("\t") for line in k("get", "pod", "-l", "app=nginx", "-o",
                                                    f"jsonpath={IMAGES}").stdout.splitlines())

    def image_of(pod: str) -> str:
        return k("get", "pod", pod, "--template",
                 "{{range $i, $c := .spec.containers}}{{$c.image}}{{end}}", check=False).stdout

    def patch_image(tag: str) -> None:
        k("patch", "statefulset", "web", "--type=json", "-p", json.dumps(
            [{"op": "replace", "path": "/spec/template/spec/containers/0/image",
              "value": f"registry.k8s.io/nginx-slim:{tag}"}]))

    def replaced(pod: str, uid: str) -> bool:
        new = k("get", "pod", pod, "-o", "jsonpath={.metadata.uid} {.status.conditions[?(@.type==\"Ready\")]"
                ".status}", check=False).stdout.split()
        return len(new) == 2 and new[0] != uid and new[1] == "True"

    def uid(pod: str) -> str:
        return k("get", "pod", pod, "-o", "jsonpath={.metadata.uid}").stdout

    k("apply", "-f", "-", input=WEB)
    k("rollout", "status", "sts/web", "--timeout=60s")
    sts = cluster.kjson("get", "sts", "web", "-n", namespace)
    # as kube-apiserver stores it: claim templates are whole claims, rollingUpdate defaulted
    assert sts["spec"]["volumeClaimTemplates"][0]["apiVersion"] == "v1"
    assert sts["spec"]["volumeClaimTemplates"][0]["kind"] == "PersistentVolumeClaim"
    assert sts["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    for i in (0, 1):
        assert k("exec", f"web-{i}", "--", "sh", "-c", "hostname").stdout.strip() == f"web-{i}"

    # Scaling up
    assert k("scale", "sts", "web", "--replicas=3").stdout.strip() == "statefulset.apps/web scaled"
    k("rollout", "status", "sts/web", "--timeout=60s")
    assert sorted(images()) == ["web-0", "web-1", "web-2"]

    # Rolling update
    patch_image("0.24")
    out = k("rollout", "status", "sts/web", "--timeout=90s").stdout
    assert out.splitlines()[-1] == "partitioned roll out complete: 3 new pods have been updated..."
    assert set(images().values()) == {"registry.k8s.io/nginx-slim:0.24"}

    # Staging an update: partition 3, then the template changes; a deleted pod comes back at
    # the current revision
    k("patch", "statefulset", "web", "-p", '{"spec":{"updateStrategy":{"type":"RollingUpdate",'
      '"rollingUpdate":{"partition":3}}}}')
    patch_image("0.21")
    old = uid("web-2")
    k("delete", "pod", "web-2", "--wait=false")
    cluster.wait_for(lambda: replaced("web-2", old), timeout=60, what="web-2 recreated")
    assert image_of("web-2") == "registry.k8s.io/nginx-slim:0.24"

    # Rolling out a canary: partition 2 updates web-2 only
    old = uid("web-2")
    k("patch", "statefulset", "web", "-p", '{"spec":{"updateStrategy":{"type":"RollingUpdate",'
      '"rollingUpdate":{"partition":2}}}}')
    cluster.wait_for(lambda: replaced("web-2", old), timeout=60, what="web-2 updated")
    assert image_of("web-2") == "registry.k8s.io/nginx-slim:0.21"
    old = uid("web-1")
    k("delete", "pod", "web-1", "--wait=false")
    cluster.wait_for(lambda: replaced("web-1", old), timeout=60, what="web-1 recreated")
    assert image_of("web-1") == "registry.k8s.io/nginx-slim:0.24"

    # Phased roll out: partition 0
    k("patch", "statefulset", "web", "-p", '{"spec":{"updateStrategy":{"type":"RollingUpdate",'
      '"rollingUpdate":{"partition":0}}}}')
    k("rollout", "status", "sts/web", "--timeout=90s")
    assert set(images().values()) == {"registry.k8s.io/nginx-slim:0.21"}

    # OnDelete: a strategic merge patch keeps rollingUpdate, which OnDelete does not allow
    p = k("patch", "statefulset", "web", "-p", '{"spec":{"updateStrategy":{"type":"OnDelete"}}}', check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == (
        'The StatefulSet "web" is invalid: spec.updateStrategy.rollingUpdate: Invalid value: '
        "apps.RollingUpdateStatefulSetStrategy{Partition:0, MaxUnavailable:(*intstr.IntOrString)(nil)}: "
        "only allowed for updateStrategy 'RollingUpdate'")
    k("patch", "statefulset", "web", "-p", '{"spec":{"updateStrategy":{"type":"OnDelete", "rollingUpdate": null}}}')
    assert cluster.kjson("get", "sts", "web", "-n", namespace)["spec"]["updateStrategy"] == {"type": "OnDelete"}
    patch_image("0.24")
    p = k("rollout", "status", "sts/web", check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == "error: rollout status is only available for RollingUpdate strategy type"
    old = uid("web-1")
    k("delete", "pod", "web-1", "--wait=false")
    cluster.wait_for(lambda: replaced("web-1", old), timeout=60, what="web-1 recreated")
    assert images() == {"web-0": "registry.k8s.io/nginx-slim:0.21", "web-1": "registry.k8s.io/nginx-slim:0.24",
                        "web-2": "registry.k8s.io/nginx-slim:0.21"}
    st = cluster.kjson("get", "sts", "web", "-n", namespace)["status"]
    assert st["updatedReplicas"] == 1 and st["currentRevision"] != st["updateRevision"]

    # other values upstream refuses, in its words
    p = k("patch", "statefulset", "web", "-p", '{"spec":{"updateStrategy":{"type":"RollingUpdate",'
          '"rollingUpdate":{"partition":-1}}}}', check=False)
    assert p.stderr.strip() == ('The StatefulSet "web" is invalid: spec.updateStrategy.rollingUpdate.partition: '
                                "Invalid value: -1: must be greater than or equal to 0")
    p = k("patch", "statefulset", "web", "-p", '{"spec":{"updateStrategy":{"type":"Sometimes"}}}', check=False)
    assert p.stderr.strip() == (
        'The StatefulSet "web" is invalid: spec.updateStrategy: Invalid value: apps.StatefulSetUpdateStrategy'
        '{Type:"Sometimes", RollingUpdate:(*apps.RollingUpdateStatefulSetStrategy)(nil)}: '
        "must be 'RollingUpdate' or 'OnDelete'")
    # type RollingUpdate alone stays alone, as upstream defaults rollingUpdate only with the type
    k("patch", "statefulset", "web", "-p", '{"spec":{"updateStrategy":{"type":"RollingUpdate"}}}')
    assert cluster.kjson("get", "sts", "web", "-n", namespace)["spec"]["updateStrategy"] == {"type": "RollingUpdate"}


INDEXED_JOB = """
apiVersion: batch/v1
kind: Job
metadata:
  name: 'indexed-job'
spec:
  completions: 5
  parallelism: 3
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      initContainers:
      - name: 'input'
        image: 'docker.io/library/bash'
        command:
        - "bash"
        - "-c"
        - |
          items=(foo bar baz qux xyz)
          echo ${items[$JOB_COMPLETION_INDEX]} > /input/data.txt
        volumeMounts:
        - mountPath: /input
          name: input
      containers:
      - name: 'worker'
        image: 'docker.io/library/busybox'
        command:
        - "rev"
        - "/input/data.txt"
        volumeMounts:
        - mountPath: /input
          name: input
      volumes:
      - name: input
        emptyDir: {}
"""


def test_indexed_job_static_work_assignment(cluster, namespace):
    _import_stand_ins(cluster)
    ns = ["-n", namespace]
    # "Resource Quotas", object count quota: `count/pods` counts every pod in storage,
    # `pods` only those not terminal (upstream's PodUsageFunc)
    cluster.kubectl("create", *ns, "quota", "counts", "--hard=count/pods=10,pods=10")
    cluster.kubectl("apply", *ns, "-f", "-", input=INDEXED_JOB)
    cluster.kubectl("wait", *ns, "--for=condition=complete", "job/indexed-job", "--timeout=90s")
    cluster.wait_for(lambda: (cluster.kjson("get", *ns, "quota", "counts").get("status") or {}).get("used") ==
                     {"count/pods": "5", "pods": "0"}, timeout=15, what="count/pods keeps the finished pods")
    out = cluster.kubectl("describe", *ns, "jobs/indexed-job").stdout
    assert "Completion Mode:    Indexed" in out
    assert "Pods Statuses:      0 Active (0 Ready) / 5 Succeeded / 0 Failed" in out
    assert "Completed Indexes:  0-4" in out
    logs = {cluster.kubectl("logs", *ns, f"pod/{p}").stdout.strip()
            for p in cluster.kubectl("get", "pods", *ns, "-l", "batch.kubernetes.io/job-completion-index",
                                     "-o", "jsonpath={.items[*].metadata.name}").stdout.split()}
    assert logs == {"oof", "rab", "zab", "xuq", "zyx"}
    # the job controller says so once (it used to repeat it when a sync from a stale cache
    # computed the same completion)
    events = cluster.kjson("get", "events", *ns, "--field-selector", "involvedObject.name=indexed-job,"
                           "reason=Completed")["items"]
    assert [(e["message"], e.get("count")) for e in events] == [("Job completed", 1)]


DOWNWARD = """
apiVersion: v1
kind: Pod
metadata:
  name: dapi-envars-fieldref
spec:
  containers:
    - name: test-container
      image: registry.k8s.io/busybox:1.27.2
      command: [ "sh", "-c"]
      args:
      - while true; do
          echo -en '\\n';
          printenv MY_NODE_NAME MY_POD_NAME MY_POD_NAMESPACE;
          printenv MY_POD_IP MY_POD_SERVICE_ACCOUNT;
          sleep 10;
        done;
      env:
        - name: MY_NODE_NAME
          valueFrom:
            fieldRef:
              fieldPath: spec.nodeName
        - name: MY_POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: MY_POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        - name: MY_POD_IP
          valueFrom:
            fieldRef:
              fieldPath: status.podIP
        - name: MY_POD_SERVICE_ACCOUNT
          valueFrom:
            fieldRef:
              fieldPath: spec.serviceAccountName
  restartPolicy: Never
---
apiVersion: v1
kind: Pod
metadata:
  name: kubernetes-downwardapi-volume-example
  labels:
    zone: us-est-coast
    cluster: test-cluster1
    rack: rack-22
  annotations:
    build: two
    builder: john-doe
spec:
  containers:
    - name: client-container
      image: registry.k8s.io/busybox:1.27.2
      command: ["sh", "-c", "sleep 3600"]
      volumeMounts:
        - name: podinfo
          mountPath: /etc/podinfo
  volumes:
    - name: podinfo
      downwardAPI:
        items:
          - path: "labels"
            fieldRef:
              fieldPath: metadata.labels
          - path: "annotations"
            fieldRef:
              fieldPath: metadata.annotations
---
apiVersion: v1
kind: Pod
metadata:
  name: dapi-envars-resourcefieldref
spec:
  containers:
    - name: test-container
      image: registry.k8s.io/busybox:1.27.2
      command: [ "sh", "-c"]
      args:
      - while true; do
          echo -en '\\n';
          printenv MY_CPU_REQUEST MY_CPU_LIMIT;
          printenv MY_MEM_REQUEST MY_MEM_LIMIT;
          sleep 10;
        done;
      resources:
        requests:
          memory: "32Mi"
          cpu: "125m"
        limits:
          memory: "64Mi"
          cpu: "250m"
      env:
        - name: MY_CPU_REQUEST
          valueFrom:
            resourceFieldRef:
              containerName: test-container
              resource: requests.cpu
        - name: MY_CPU_LIMIT
          valueFrom:
            resourceFieldRef:
              containerName: test-container
              resource: limits.cpu
        - name: MY_MEM_REQUEST
          valueFrom:
            resourceFieldRef:
              containerName: test-container
              resource: requests.memory
        - name: MY_MEM_LIMIT
          valueFrom:
            resourceFieldRef:
              containerName: test-container
              resource: limits.memory
  restartPolicy: Never
"""


def test_expose_pod_information_through_env_and_files(cluster, namespace):
    """"Expose Pod Information to Containers Through Environment Variables" and "...
    Through Files": what the pod prints, and the pod as `kubectl get -o yaml` shows it,
    with the API's defaults (fieldRef apiVersion, the volume's defaultMode)."""
    store = ImageStore(str(cluster.dir / "data" / "node"))
    with tempfile.TemporaryDirectory() as d:
        store.import_dir("registry.k8s.io/busybox:1.27.2", Path(d), config={"env": [f"PATH={PATH}"], "cmd": ["sh"]})
    ns = ["-n", namespace]
    cluster.kubectl("apply", *ns, "-f", "-", input=DOWNWARD)
    cluster.kubectl("wait", *ns, "--for=condition=Ready", "pod/dapi-envars-fieldref",
                    "pod/kubernetes-downwardapi-volume-example", "pod/dapi-envars-resourcefieldref",
                    "--timeout=60s")
    pod = cluster.kjson("get", *ns, "pod", "dapi-envars-fieldref")
    want = [pod["spec"]["nodeName"], "dapi-envars-fieldref", namespace, pod["status"]["podIP"], "default"]

    def printed(name: str, n: int) -> list[str]:
        return [ln for ln in cluster.kubectl("logs", *ns, name).stdout.splitlines()
                if ln.strip() and ln.strip() != "-en"][:n]

    cluster.wait_for(lambda: printed("dapi-envars-fieldref", 5) == want, what="printenv output")
    # resourceFieldRefs without a divisor: cpu rounded up to whole cores, memory in bytes (the
    # page's output), and the API shows each unset divisor as upstream does, "0"
    cluster.wait_for(lambda: printed("dapi-envars-resourcefieldref", 4) == ["1", "1", "33554432", "67108864"],
                     what="printenv of resources")
    out = cluster.kubectl("get", *ns, "pod", "dapi-envars-resourcefieldref", "-o", "yaml").stdout
    assert out.count('resourceFieldRef:\n          containerName: test-container\n          divisor: "0"\n') == 4
    assert pod["spec"]["containers"][0]["env"][0]["valueFrom"] == {
        "fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}

    out = cluster.kubectl("exec", *ns, "kubernetes-downwardapi-volume-example", "--", "cat",
                          "/etc/podinfo/labels").stdout
    assert out == 'cluster="test-cluster1"\nrack="rack-22"\nzone="us-est-coast"'
    vol = cluster.kjson("get", *ns, "pod", "kubernetes-downwardapi-volume-example")["spec"]["volumes"][0]
    assert vol["downwardAPI"]["defaultMode"] == 420
    assert vol["downwardAPI"]["items"][0] == {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"},
                                              "path": "labels"}
    # the labels change, the file follows (the kubelet's sync)
    cluster.kubectl("label", *ns, "pod", "kubernetes-downwardapi-volume-example", "rack=rack-23", "--overwrite")
    cluster.wait_for(lambda: 'rack="rack-23"' in cluster.kubectl(
        "exec", *ns, "kubernetes-downwardapi-volume-example", "--", "cat", "/etc/podinfo/labels").stdout,
        timeout=90, what="labels file updated")

    # a pod exported with `kubectl get -o yaml` is refused by a server-side dry run while its
    # name is in use, as upstream's dry-run storage does
    exported = cluster.kubectl("get", *ns, "pod", "kubernetes-downwardapi-volume-example", "-o", "yaml").stdout
    p = cluster.kubectl("create", *ns, "--dry-run=server", "-f", "-", input=exported, check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == ('Error from server (AlreadyExists): error when creating "STDIN": pods '
                                '"kubernetes-downwardapi-volume-example" already exists')


PV = """
apiVersion: v1
kind: PersistentVolume
metadata:
  name: task-pv-volume-{ns}
  labels:
    type: local
spec:
  storageClassName: manual
  capacity:
    storage: 10Gi
  accessModes:
    - ReadWriteOnce
  hostPath:
    path: "{path}"
"""

PVC = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: task-pv-claim
spec:
  storageClassName: manual
  volumeName: task-pv-volume-{ns}
  accessModes:
    - ReadWriteOnce
  resources:
    requests:
      storage: 3Gi
"""


def test_configure_a_pod_to_use_a_persistent_volume(cluster, namespace, tmp_path):
    """"Configure a Pod to Use a PersistentVolume for Storage": the hostPath volume, the
    claim bound to it, a pod reading the node's file through it. (The claim names its
    volume here, to keep to this test's volume on a shared cluster.)"""
    ns = ["-n", namespace]
    data = tmp_path / "mnt" / "data"
    data.mkdir(parents=True)
    (data / "index.html").write_text("Hello from Kubernetes storage\n")
    pv = f"task-pv-volume-{namespace}"
    cluster.kubectl("apply", "-f", "-", input=PV.format(ns=namespace, path=data))
    try:
        assert cluster.kjson("get", "pv", pv)["spec"]["hostPath"] == {"path": str(data), "type": ""}
        out = cluster.kubectl("get", "pv", pv).stdout.splitlines()
        assert out[0].split() == ["NAME", "CAPACITY", "ACCESS", "MODES", "RECLAIM", "POLICY", "STATUS", "CLAIM",
                                  "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "REASON", "AGE"]
        assert out[1].split()[:6] == [pv, "10Gi", "RWO", "Retain", "Available", "manual"]
        # what upstream's validation refuses in a volume and a claim
        bad_pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{pv}-bad"}, "spec": {
            "capacity": {"storage": "0"}, "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Keep",
            "hostPath": {"path": "/mnt/../data"}}}
        p = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(bad_pv), check=False)
        assert p.stderr.splitlines()[1:] == [
            '* spec.capacity[storage]: Invalid value: "0": must be greater than zero',
            '* spec.persistentVolumeReclaimPolicy: Unsupported value: "Keep": supported values: "Delete", '
            '"Recycle", "Retain"',
            "* spec.hostPath.path: Invalid value: \"/mnt/../data\": must not contain '..'"], p.stderr
        bad_pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "bad"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "0"}}}}
        p = cluster.kubectl("create", *ns, "--dry-run=server", "-f", "-", input=json.dumps(bad_pvc), check=False)
        assert p.stderr.strip() == ('The PersistentVolumeClaim "bad" is invalid: spec.resources[storage]: Invalid '
                                    'value: "0": must be greater than zero'), p.stderr
        # "Resource Quotas", storage resource quota per storage class: one `manual` claim
        cls = "manual.storageclass.storage.k8s.io"
        cluster.kubectl("create", *ns, "quota", "manual-claims", f"--hard={cls}/persistentvolumeclaims=1,"
                        f"{cls}/requests.storage=5Gi")
        cluster.kubectl("apply", *ns, "-f", "-", input=PVC.format(ns=namespace))
        cluster.wait_for(lambda: (cluster.kjson("get", *ns, "quota", "manual-claims").get("status") or {})
                         .get("used") == {f"{cls}/persistentvolumeclaims": "1", f"{cls}/requests.storage": "3Gi"},
                         timeout=10, what="the class's claims counted")
        second = PVC.format(ns=namespace).replace("task-pv-claim", "second-claim")
        p = cluster.kubectl("create", *ns, "--dry-run=server", "-f", "-", input=second, check=False)
        assert p.stderr.strip() == (
            'Error from server (Forbidden): error when creating "STDIN": persistentvolumeclaims "second-claim" is '
            f"forbidden: exceeded quota: manual-claims, requested: {cls}/persistentvolumeclaims=1,{cls}/"
            f"requests.storage=3Gi, used: {cls}/persistentvolumeclaims=1,{cls}/requests.storage=3Gi, limited: "
            f"{cls}/persistentvolumeclaims=1,{cls}/requests.storage=5Gi"), p.stderr
        cluster.wait_for(lambda: cluster.kubectl("get", "pv", pv, "--no-headers").stdout.split()[4:6]
                         == ["Bound", f"{namespace}/task-pv-claim"], what="volume bound")
        assert cluster.kubectl("get", *ns, "pvc", "task-pv-claim", "--no-headers").stdout.split()[:6] == \
            ["task-pv-claim", "Bound", pv, "10Gi", "RWO", "manual"]
        cluster.kubectl("run", *ns, "task-pv-pod", "--image=demo:v1", "--overrides", json.dumps({"spec": {
            "volumes": [{"name": "task-pv-storage", "persistentVolumeClaim": {"claimName": "task-pv-claim"}}],
            "containers": [{"name": "task-pv-pod", "image": "demo:v1", "volumeMounts": [
                {"mountPath": "/usr/share/nginx/html", "name": "task-pv-storage"}]}]}}))
        cluster.kubectl("wait", *ns, "--for=condition=Ready", "pod/task-pv-pod", "--timeout=60s")
        assert cluster.kubectl("exec", *ns, "task-pv-pod", "--", "cat", "/usr/share/nginx/html/index.html"
                               ).stdout == "Hello from Kubernetes storage\n"
        cluster.kubectl("delete", *ns, "pod", "task-pv-pod", "--grace-period=1")
        cluster.kubectl("delete", *ns, "pvc", "task-pv-claim")
        cluster.wait_for(lambda: cluster.kubectl("get", "pv", pv, "--no-headers").stdout.split()[4] == "Released",
                         what="volume released")
    finally:
        cluster.kubectl("delete", "pv", pv, "--wait=false", check=False)


def test_services_are_selected_by_type_and_cluster_ip(cluster, namespace):
    """Services' selectable fields `spec.type` and `spec.clusterIP` (kube-apiserver 1.29+),
    e.g. `kubectl get svc -A --field-selector spec.type=NodePort` after "Use a Service to
    Access an Application in a Cluster" exposed one."""
    ns = ["-n", namespace]
    cluster.kubectl("create", "deployment", "hello-world", "--image=demo:v1", "--replicas=1", *ns)
    cluster.kubectl("expose", "deployment", "hello-world", "--type=NodePort", "--name=example-service",
                    "--port=80", *ns)
    cluster.kubectl("create", "service", "clusterip", "headless", "--clusterip=None", *ns)
    names = lambda sel: cluster.kubectl("get", "svc", *ns, "--field-selector", sel,
                                        "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
    assert names("spec.type=NodePort") == ["example-service"]
    assert names("spec.clusterIP=None") == ["headless"]
    assert names("spec.clusterIP!=None") == ["example-service"]
    p = cluster.kubectl("get", "svc", *ns, "--field-selector", "spec.ports=80", check=False)
    assert p.stderr.strip() == ('Error from server (BadRequest): Unable to find "/v1, Resource=services" that '
                                'match label selector "", field selector "spec.ports=80": field label not '
                                "supported: spec.ports")


RUNTIME_CLASSES = """
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: myclass-{ns}
handler: myconfiguration
---
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: kata-fc-{ns}
handler: kata-fc
overhead:
  podFixed:
    memory: "120Mi"
    cpu: "250m"
scheduling:
  nodeSelector:
    kubernetes.io/os: linux
  tolerations:
  - key: sandbox
    operator: Exists
"""


def test_runtime_class(cluster, namespace):
    """"Runtime Class" (concepts/containers/runtime-class) and "Pod Overhead": the
    node.k8s.io RuntimeClass API, and the RuntimeClass admission of pods that name one."""
    ns = ["-n", namespace]
    mine, kata = f"myclass-{namespace}", f"kata-fc-{namespace}"
    cluster.kubectl("apply", "-f", "-", input=RUNTIME_CLASSES.format(ns=namespace))
    try:
        assert cluster.kjson("get", "runtimeclass", mine)["handler"] == "myconfiguration"
        rows = [ln.split() for ln in cluster.kubectl("get", "runtimeclass", mine, kata).stdout.splitlines()]
        assert [r[:2] for r in rows] == [["NAME", "HANDLER"], [mine, "myconfiguration"], [kata, "kata-fc"]]
        assert rows[0][2:] == ["AGE"] and all(len(r) == 3 for r in rows)
        p = cluster.kubectl("patch", "runtimeclass", mine, "--type=merge", "-p", '{"handler":"other"}', check=False)
        assert p.stderr.strip() == (f'The RuntimeClass "{mine}" is invalid: handler: Invalid value: "other": '
                                    "field is immutable")
        p = cluster.kubectl("run", "norc", *ns, "--image=demo:v1", "--overrides",
                            '{"spec":{"runtimeClassName":"nope"}}', check=False)
        assert p.stderr.strip() == ('Error from server (Forbidden): pods "norc" is forbidden: pod rejected: '
                                    'RuntimeClass "nope" not found')
        cluster.kubectl("run", "mypod", *ns, "--image=demo:v1", "--overrides",
                        json.dumps({"spec": {"runtimeClassName": mine}}))
        cluster.kubectl("run", "test-pod", *ns, "--image=demo:v1", "--overrides", json.dumps({"spec": {
            "runtimeClassName": kata, "containers": [{"name": "test-pod", "image": "demo:v1", "resources": {
                "limits": {"cpu": "500m", "memory": "100Mi"}}}]}}))
        spec = cluster.kjson("get", "pod", "test-pod", *ns)["spec"]
        assert spec["overhead"] == {"cpu": "250m", "memory": "120Mi"}
        assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
        assert {"key": "sandbox", "operator": "Exists"} in spec["tolerations"]
        cluster.kubectl("wait", *ns, "--for=condition=Ready", "pod/mypod", "pod/test-pod", "--timeout=60s")
        # kubectl describe node counts the overhead in the pod's requests, as the scheduler does
        row = next(ln for ln in cluster.kubectl("describe", "node", "node-1").stdout.splitlines()
                   if f" {namespace} " in f" {ln} " and " test-pod " in f" {ln} ")
        assert row.split()[2] == "750m" and row.split()[6] == "220Mi"
        p = cluster.kubectl("run", "overhead", *ns, "--image=demo:v1", "--overrides",
                            '{"spec":{"overhead":{"cpu":"1"}}}', check=False)
        assert p.stderr.strip() == ('Error from server (Forbidden): pods "overhead" is forbidden: pod rejected: '
                                    "Pod Overhead set without corresponding RuntimeClass defined Overhead")
    finally:
        cluster.kubectl("delete", "runtimeclass", mine, kata, "--wait=false", check=False)


PI_JOB = """
apiVersion: batch/v1
kind: Job
metadata:
  name: pi
spec:
  template:
    spec:
      containers:
      - name: pi
        image: demo:v1
        command: ["sh", "-c", "echo 3.14159"]
      restartPolicy: Never
  backoffLimit: 4
"""


def test_job_shows_the_labels_of_its_pods(cluster, namespace):
    """The "Jobs" concept page's `kubectl get job pi -o yaml` and `kubectl describe job pi`:
    a Job given no labels shows its pod template's, the generated selector labels
    included (SetDefaults_Job), and can be found by them."""
    ns = ["-n", namespace]
    cluster.kubectl("apply", *ns, "-f", "-", input=PI_JOB)
    cluster.kubectl("wait", *ns, "--for=condition=complete", "job/pi", "--timeout=60s")
    job = cluster.kjson("get", *ns, "job", "pi")
    uid = job["metadata"]["uid"]
    assert job["metadata"]["labels"] == {"batch.kubernetes.io/controller-uid": uid,
                                         "batch.kubernetes.io/job-name": "pi", "controller-uid": uid,
                                         "job-name": "pi"}
    assert job["metadata"]["labels"] == job["spec"]["template"]["metadata"]["labels"]
    out = cluster.kubectl("describe", *ns, "job", "pi").stdout
    assert f"Labels:           batch.kubernetes.io/controller-uid={uid}\n" in out
    assert cluster.kubectl("get", *ns, "jobs", "-l", "batch.kubernetes.io/job-name=pi", "-o", "name").stdout \
        == "job.batch/pi\n"
    assert cluster.kubectl("logs", *ns, "jobs/pi").stdout == "3.14159\n"


DEFAULTED = """
apiVersion: v1
kind: Pod
metadata: {name: etcd-with-grpc}
spec:
  hostNetwork: true
  volumes: [{name: scratch}]
  containers:
  - name: etcd
    image: demo:v1
    ports: [{containerPort: 2379}]
    lifecycle:
      postStart: {httpGet: {port: 2379}}
    livenessProbe:
      grpc: {port: 2379}
---
apiVersion: v1
kind: Service
metadata: {name: example-service}
spec:
  type: LoadBalancer
  selector: {app: example}
  ports: [{port: 8765, targetPort: 9376}]
---
apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  selector: {app: example}
  sessionAffinity: ClientIP
  ports: [{port: 80}]
"""


def test_objects_read_back_with_upstreams_defaults(cluster, namespace):
    """What `kubectl get -o yaml` shows of objects from the task pages ("Configure
    Liveness, Readiness and Startup Probes" gRPC probe, "Create an External Load
    Balancer", a hostNetwork pod, session affinity), with the defaults kube-apiserver
    fills in. Server-side dry run: nothing runs."""
    out = cluster.kubectl("create", "-n", namespace, "--dry-run=server", "-o", "json", "-f", "-",
                          input=DEFAULTED).stdout
    dec, objs, i = json.JSONDecoder(), [], 0
    while out[i:].strip():
        obj, n = dec.raw_decode(out[i:].lstrip())
        i = len(out) - len(out[i:].lstrip()) + n
        objs.append(obj)
    pod, lb, sticky = objs
    c = pod["spec"]["containers"][0]
    assert c["ports"] == [{"containerPort": 2379, "hostPort": 2379, "protocol": "TCP"}]
    assert c["lifecycle"]["postStart"]["httpGet"] == {"path": "/", "port": 2379, "scheme": "HTTP"}
    assert c["livenessProbe"]["grpc"] == {"port": 2379, "service": ""}
    assert pod["spec"]["volumes"][0] == {"name": "scratch", "emptyDir": {}}
    assert lb["spec"]["allocateLoadBalancerNodePorts"] is True
    assert lb["spec"]["externalTrafficPolicy"] == "Cluster"
    assert sticky["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_service_account_image_pull_secrets_reach_new_pods(cluster, namespace):
    """"Configure Service Accounts for Pods", "Add ImagePullSecrets to a service account":
    a pod created after the patch gets the account's imagePullSecrets (upstream's
    ServiceAccount admission); one that names its own keeps them."""
    ns = ["-n", namespace]
    cluster.kubectl("create", "secret", "docker-registry", "myregistrykey", "--docker-server=example.com",
                    "--docker-username=u", "--docker-password=p", *ns)
    cluster.wait_for(lambda: cluster.kubectl("get", "serviceaccount", "default", *ns, check=False).returncode == 0,
                     what="default service account")
    out = cluster.kubectl("patch", "serviceaccount", "default", *ns, "-p",
                          '{"imagePullSecrets": [{"name": "myregistrykey"}]}').stdout
    assert out.strip() == "serviceaccount/default patched"
    cluster.kubectl("run", "nginx", "--image=demo:v1", "--restart=Never", *ns)
    assert cluster.kubectl("get", "pod", "nginx", *ns, "-o=jsonpath={.spec.imagePullSecrets[0].name}{\"\\n\"}"
                           ).stdout == "myregistrykey\n"
    cluster.kubectl("run", "own", "--image=demo:v1", "--restart=Never", *ns, "--overrides",
                    '{"spec":{"imagePullSecrets":[{"name":"mine"}]}}')
    assert cluster.kjson("get", "pod", "own", *ns)["spec"]["imagePullSecrets"] == [{"name": "mine"}]


def test_long_lived_api_token_for_a_service_account(cluster, namespace):
    """"Configure Service Accounts for Pods", "Manually create a long-lived API token for a
    ServiceAccount": the Secret gets the account's uid and a token that authenticates as
    the account until the Secret is deleted; "Managing Service Accounts": legacy token
    tracking (the `legacy-token-last-used` label) and `legacy-token-invalid-since`."""
    ns = ["-n", namespace]
    cluster.kubectl("create", "serviceaccount", "build-robot", *ns)
    cluster.kubectl("apply", *ns, "-f", "-", input="""
apiVersion: v1
kind: Secret
metadata:
  name: build-robot-secret
  annotations:
    kubernetes.io/service-account.name: build-robot
type: kubernetes.io/service-account-token
""")
    uid = cluster.kubectl("get", "serviceaccount", "build-robot", *ns, "-o", "jsonpath={.metadata.uid}").stdout
    out = cluster.kubectl("describe", "secrets/build-robot-secret", *ns).stdout
    assert f"kubernetes.io/service-account.uid: {uid}" in out
    assert "Type:  kubernetes.io/service-account-token" in out
    assert f"namespace:  {len(namespace)} bytes" in out
    secret = cluster.kjson("get", "secret", "build-robot-secret", *ns)
    assert sorted(secret["data"]) == ["ca.crt", "namespace", "token"]
    token = base64.b64decode(secret["data"]["token"]).decode()
    who = cluster.kubectl("auth", "whoami", f"--token={token}", "-o", "jsonpath={.status.userInfo.username}").stdout
    assert who == f"system:serviceaccount:{namespace}:build-robot"
    # "Managing Service Accounts", legacy token tracking and clean up: a used token's
    # Secret is labelled with the day; one labelled invalid-since is refused until the
    # label is removed
    since = cluster.kjson("get", "configmap", "kube-apiserver-legacy-service-account-token-tracking", "-n",
                          "kube-system")["data"]["since"]
    assert len(since) == 10 and since[4] == since[7] == "-"
    labels = cluster.kjson("get", "secret", "build-robot-secret", *ns)["metadata"]["labels"]
    assert labels == {"kubernetes.io/legacy-token-last-used": time.strftime("%Y-%m-%d", time.gmtime())}
    cluster.kubectl("label", "secret", "build-robot-secret", "kubernetes.io/legacy-token-invalid-since=2026-01-01",
                    *ns)
    p = cluster.kubectl("auth", "whoami", f"--token={token}", check=False)
    assert p.returncode == 1 and "Unauthorized" in p.stderr
    cluster.kubectl("label", "secret", "build-robot-secret", "kubernetes.io/legacy-token-invalid-since-", *ns)
    cluster.kubectl("auth", "whoami", f"--token={token}")
    cluster.kubectl("delete", "secret", "build-robot-secret", *ns)
    p = cluster.kubectl("auth", "whoami", f"--token={token}", check=False)
    assert p.returncode == 1 and "Unauthorized" in p.stderr


DS = """
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: fluentd-elasticsearch
  labels:
    k8s-app: fluentd-logging
spec:
  selector:
    matchLabels:
      name: fluentd-elasticsearch
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 1
  template:
    metadata:
      labels:
        name: fluentd-elasticsearch
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: fluentd-elasticsearch
        image: registry.k8s.io/nginx-slim:0.21
        command: ["sh", "-c", "trap 'sleep 2; exit 0' TERM; sleep 3600 & wait"]
"""


def test_daemonset_rolling_update_replaces_a_pod_once_it_is_gone(cluster, namespace):
    """"Perform a Rolling Update on a DaemonSet": with maxSurge 0 a node's old pod is
    deleted first and its new one created once the old one is gone (upstream's
    podsShouldBeOnNode), never beside it while it terminates; `kubectl rollout status`
    waits for it."""
    _import_stand_ins(cluster)
    ns = ["-n", namespace]
    cluster.kubectl("apply", *ns, "-f", "-", input=DS)
    assert cluster.kubectl("get", *ns, "ds/fluentd-elasticsearch", "-o",
                           "go-template={{.spec.updateStrategy.type}}{{\"\\n\"}}").stdout == "RollingUpdate\n"
    cluster.kubectl("rollout", "status", *ns, "ds/fluentd-elasticsearch", "--timeout=60s")
    cluster.kubectl("set", "image", *ns, "ds/fluentd-elasticsearch",
                    "fluentd-elasticsearch=registry.k8s.io/nginx-slim:0.24")
    seen_new = False
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pods = cluster.kjson("get", *ns, "pods", "-l", "name=fluentd-elasticsearch")["items"]
        old = [p for p in pods if p["spec"]["containers"][0]["image"].endswith(":0.21")]
        new = [p for p in pods if p["spec"]["containers"][0]["image"].endswith(":0.24")]
        assert not (old and new), "a new daemon pod was created beside the terminating old one"
        if new and not old:
            seen_new = True
            break
        time.sleep(0.2)
    assert seen_new
    out = cluster.kubectl("rollout", "status", *ns, "ds/fluentd-elasticsearch", "--timeout=60s").stdout
    assert out.splitlines()[-1] == 'daemon set "fluentd-elasticsearch" successfully rolled out'


def _claims(token: str) -> dict:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def test_bound_service_account_tokens(cluster, namespace):
    """"Managing Service Accounts", "Bound service account tokens" and `kubectl create token
    --bound-object-kind/--bound-object-name/--bound-object-uid`: the token names its Pod
    (and the Pod's node) in its claims and the user's extra, is refused for a missing
    object, another account's pod or a stale uid (sent as protobuf: `uID` on the wire),
    and stops working once its object is deleted."""
    ns = ["-n", namespace]
    cluster.kubectl("create", "serviceaccount", "build-robot", *ns)
    cluster.kubectl("run", "bound", "--image=demo:v1", "--restart=Never", *ns)
    cluster.kubectl("wait", "--for=condition=PodScheduled", "pod/bound", "--timeout=30s", *ns)
    pod = cluster.kjson("get", "pod", "bound", *ns)
    node = cluster.kjson("get", "node", pod["spec"]["nodeName"])
    token = cluster.kubectl("create", "token", "default", "--bound-object-kind", "Pod", "--bound-object-name",
                            "bound", *ns).stdout.strip()
    k8s = _claims(token)["kubernetes.io"]
    assert k8s["pod"] == {"name": "bound", "uid": pod["metadata"]["uid"]}
    assert k8s["node"] == {"name": node["metadata"]["name"], "uid": node["metadata"]["uid"]}
    request = cluster.kjson("create", "token", "default", "--bound-object-kind", "Pod", "--bound-object-name",
                            "bound", *ns)
    assert request["metadata"] == {"creationTimestamp": None, "name": "default", "namespace": namespace}
    assert request["spec"]["boundObjectRef"] == {"apiVersion": "v1", "kind": "Pod", "name": "bound"}
    # what the kubelet asks for a pod's kube-api-access token: a year, warning after 3607 s
    claims = _claims(cluster.kubectl("create", "token", "default", "--bound-object-kind", "Pod",
                                     "--bound-object-name", "bound", "--duration=3607s", *ns).stdout.strip())
    assert claims["exp"] - claims["iat"] == 365 * 24 * 3600
    assert claims["kubernetes.io"]["warnafter"] == claims["iat"] + 3607
    assert "warnafter" not in k8s and _claims(token)["exp"] - _claims(token)["iat"] == 3600
    extra = cluster.kjson("auth", "whoami", f"--token={token}")["status"]["userInfo"]["extra"]
    assert extra["authentication.kubernetes.io/pod-name"] == ["bound"]
    assert extra["authentication.kubernetes.io/pod-uid"] == [pod["metadata"]["uid"]]
    assert extra["authentication.kubernetes.io/node-name"] == [node["metadata"]["name"]]
    for args, error in (
            (["default", "--bound-object-kind", "Pod", "--bound-object-name", "nosuch"], 'pods "nosuch" not found'),
            (["build-robot", "--bound-object-kind", "Pod", "--bound-object-name", "bound"],
             'cannot bind token for serviceaccount "build-robot" to pod running with different serviceaccount '
             'name.'),
            (["default", "--bound-object-kind", "Pod", "--bound-object-name", "bound", "--bound-object-uid", "123"],
             'Operation cannot be fulfilled on Pod "bound": the UID in the bound object reference (123) does not '
             'match the UID in record. The object might have been deleted and then recreated')):
        p = cluster.kubectl("create", "token", *args, *ns, check=False)
        assert p.returncode == 1 and p.stderr.strip() == f"error: failed to create token: {error}"
    cluster.kubectl("create", "secret", "generic", "mysecret", "--from-literal=a=b", *ns)
    secret_token = cluster.kubectl("create", "token", "build-robot", "--bound-object-kind", "Secret",
                                   "--bound-object-name", "mysecret", *ns).stdout.strip()
    cluster.kubectl("auth", "whoami", f"--token={secret_token}")
    cluster.kubectl("delete", "secret", "mysecret", *ns)
    cluster.kubectl("delete", "pod", "bound", "--grace-period=0", "--force", *ns)
    cluster.wait_for(lambda: cluster.kubectl("get", "pod", "bound", *ns, check=False).returncode == 1,
                     what="pod gone")
    for t in (token, secret_token):
        p = cluster.kubectl("auth", "whoami", f"--token={t}", check=False)
        assert p.returncode == 1 and p.stderr.strip() == "error: You must be logged in to the server (Unauthorized)"


def test_rbac_binding_role_ref_cannot_change(cluster, namespace):
    """"Using RBAC Authorization": a binding's roleRef cannot change (upstream's error
    text); `kubectl auth reconcile` deletes and recreates it instead."""
    ns = ["-n", namespace]
    cluster.kubectl("create", "rolebinding", "bob-admin-binding", "--clusterrole=admin", "--user=bob", *ns)
    p = cluster.kubectl("patch", "rolebinding", "bob-admin-binding", "--type=merge", "-p",
                        '{"roleRef":{"name":"view"}}', *ns, check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == ('The RoleBinding "bob-admin-binding" is invalid: roleRef: Invalid value: '
                                'rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", '
                                'Name:"view"}: cannot change roleRef')
    manifest = cluster.kubectl("create", "rolebinding", "bob-admin-binding", "--clusterrole=view", "--user=bob",
                               *ns, "--dry-run=client", "-o", "yaml").stdout
    out = cluster.kubectl("auth", "reconcile", "-f", "-", *ns, input=manifest).stdout
    assert out.strip() == "rolebinding.rbac.authorization.k8s.io/bob-admin-binding reconciled"
    assert cluster.kubectl("auth", "can-i", "create", "pods", "--as=bob", *ns, check=False).stdout.strip() == "no"
    assert cluster.kubectl("auth", "can-i", "list", "pods", "--as=bob", *ns).stdout.strip() == "yes"
    # ValidatePolicyRule / ValidateRoleBindingSubject, with Go's rendering of the value
    for kind, body, error in (
            ("Role", {"rules": [{"verbs": ["get"], "nonResourceURLs": ["/logs", "/x"]}]},
             'rules[0].nonResourceURLs: Invalid value: []string{"/logs", "/x"}: namespaced rules cannot apply to '
             'non-resource URLs'),
            ("RoleBinding", {"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                         "name": "view"},
                             "subjects": [{"kind": "User", "name": "x", "apiGroup": "foo"}]},
             'subjects[0].apiGroup: Unsupported value: "foo": supported values: "rbac.authorization.k8s.io"')):
        obj = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": {"name": "bad"}, **body}
        p = cluster.kubectl("create", "-f", "-", *ns, input=json.dumps(obj), check=False)
        assert p.returncode == 1 and p.stderr.strip() == f'The {kind} "bad" is invalid: {error}'


def test_authorization_overview_access_review(cluster, namespace):
    """"Authorization" overview, "Checking API access": a SelfSubjectAccessReview made
    with `kubectl create -f - -o yaml` comes back as sent plus its status, as upstream's
    (`creationTimestamp: null`: reviews are not stored), and `kubectl auth can-i` with
    `--subresource` and a non-resource URL."""
    out = cluster.kubectl("create", "-f", "-", "-o", "yaml", input=f"""
apiVersion: authorization.k8s.io/v1
kind: SelfSubjectAccessReview
spec:
  resourceAttributes:
    group: apps
    resource: deployments
    verb: create
    namespace: {namespace}
""").stdout
    assert out == f"""apiVersion: authorization.k8s.io/v1
kind: SelfSubjectAccessReview
metadata:
  creationTimestamp: null
spec:
  resourceAttributes:
    group: apps
    namespace: {namespace}
    resource: deployments
    verb: create
status:
  allowed: true
"""
    ns = ["-n", namespace]
    cluster.kubectl("create", "rolebinding", "dave-view", "--clusterrole=view", "--user=dave", *ns)
    for args, want in ((["get", "pods", "--subresource=log"], "yes"), (["get", "pods", "--subresource=exec"], "no"),
                       (["get", "/logs"], "no"), (["get", "/healthz"], "yes")):
        p = cluster.kubectl("auth", "can-i", *args, "--as=dave", *ns, check=False)
        assert p.stdout.strip() == want, args


def test_service_account_issuer_discovery(cluster, namespace):
    """"Configure Service Accounts for Pods", "Service account issuer discovery": a service
    account reads the OpenID configuration and the JWKS (the system:service-account-issuer-
    discovery binding; another user is forbidden), and the JWKS key verifies its token."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    token = cluster.kubectl("create", "token", "default", "-n", namespace).stdout.strip()
    config = json.loads(cluster.kubectl("get", "--raw", "/.well-known/openid-configuration",
                                        f"--token={token}").stdout)
    assert config["issuer"] == _claims(token)["iss"] == "https://kubernetes.default.svc.cluster.local"
    assert config["jwks_uri"].startswith("https://") and config["jwks_uri"].endswith("/openid/v1/jwks")
    assert config["response_types_supported"] == ["id_token"] and config["subject_types_supported"] == ["public"]
    keys = json.loads(cluster.kubectl("get", "--raw", "/openid/v1/jwks", f"--token={token}").stdout)["keys"]
    head_b64, body_b64, sig_b64 = token.split(".")
    head = json.loads(base64.urlsafe_b64decode(head_b64 + "=" * (-len(head_b64) % 4)))
    key = next(k for k in keys if k["kid"] == head["kid"])
    assert head["alg"] == key["alg"] in config["id_token_signing_alg_values_supported"]

    def num(text: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")

    public = ec.EllipticCurvePublicNumbers(num(key["x"]), num(key["y"]), ec.SECP256R1()).public_key()
    sig = base64.urlsafe_b64decode(sig_b64 + "=" * (-len(sig_b64) % 4))
    public.verify(utils.encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")),
                  f"{head_b64}.{body_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    p = cluster.kubectl("get", "--raw", "/openid/v1/jwks", "--as=dave", check=False)
    assert p.stderr.strip() == 'Error from server (Forbidden): forbidden: User "dave" cannot get path "/openid/v1/jwks"'


PFP_JOBS = """
apiVersion: batch/v1
kind: Job
metadata:
  name: job-backoff-limit-per-index-failindex
spec:
  completions: 4
  parallelism: 2
  completionMode: Indexed
  backoffLimitPerIndex: 1
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: docker.io/library/python:3
        command:
        - python3
        - -c
        - |
          import os, sys
          index = int(os.environ.get("JOB_COMPLETION_INDEX"))
          if index == 0:
            sys.exit(1)
          elif index == 1:
            sys.exit(42)
          else:
            sys.exit(0)
  podFailurePolicy:
    rules:
    - action: FailIndex
      onExitCodes:
        containerName: main
        operator: In
        values: [42]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: job-pod-failure-policy-config-issue
spec:
  completions: 8
  parallelism: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: "non-existing-repo/non-existing-image:example"
  backoffLimit: 6
  podFailurePolicy:
    rules:
    - action: FailJob
      onPodConditions:
      - type: ConfigIssue
---
apiVersion: batch/v1
kind: Job
metadata:
  name: job-pod-failure-policy-ignore
spec:
  completions: 1
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: docker.io/library/bash:5
        command: ["bash"]
        args: ["-c", "echo Hello world; sleep 3; exit 0"]
  backoffLimit: 0
  podFailurePolicy:
    rules:
    - action: Ignore
      onPodConditions:
      - type: DisruptionTarget
"""


def test_pod_failure_policy(cluster, namespace):
    """"Handling retriable and non-retriable pod failures with Pod failure policy"
    (tasks/job/pod-failure-policy): a custom pod condition matching FailJob once the
    deleted Pending pod is Failed; an evicted pod (DisruptionTarget) ignored, not counted
    against backoffLimit 0; backoffLimitPerIndex with FailIndex: two pods of index 0, one
    of index 1, failedIndexes "0,1", failed 3."""
    from kubernetes import client

    store = ImageStore(str(cluster.dir / "data" / "node"))
    with tempfile.TemporaryDirectory() as d:
        for ref in ("docker.io/library/python:3", "docker.io/library/bash:5"):
            store.import_dir(ref, Path(d), config={"env": [f"PATH={PATH}"], "cmd": ["sh"]})
    ns = ["-n", namespace]
    p = cluster.kubectl("create", *ns, "--dry-run=server", "-f", "-", check=False, input=PFP_JOBS.split("---")[0]
                        .replace("backoffLimitPerIndex: 1", "backoffLimit: 1"))
    assert p.stderr.strip() == ('The Job "job-backoff-limit-per-index-failindex" is invalid: spec.podFailurePolicy.'
                                'rules[0].action: Invalid value: "FailIndex": requires the backoffLimitPerIndex to '
                                'be set')
    p = cluster.kubectl("create", *ns, "--dry-run=server", "-f", "-", check=False, input=PFP_JOBS.split("---")[0]
                        .replace("values: [42]", "values: [42, 3]").replace("containerName: main",
                                                                           "containerName: side"))
    assert p.stderr.strip() == (
        'The Job "job-backoff-limit-per-index-failindex" is invalid: \n* spec.podFailurePolicy.rules[0].onExitCodes.'
        'containerName: Invalid value: "side": must be one of the container or initContainer names in the pod '
        'template\n* spec.podFailurePolicy.rules[0].onExitCodes.values: Invalid value: []int32{42, 3}: must be '
        'ordered')
    cluster.kubectl("create", *ns, "-f", "-", input=PFP_JOBS)

    def pods(job: str) -> list[dict]:
        return cluster.kjson("get", *ns, "pods", "-l", f"job-name={job}")["items"]

    def job_status(job: str) -> dict:
        return cluster.kjson("get", *ns, "job", job).get("status") or {}

    # the misconfigured image: the pod stays Pending; a user's condition, then a delete
    pod = cluster.wait_for(lambda: next((p for p in pods("job-pod-failure-policy-config-issue")
                                         if (p["status"].get("containerStatuses") or [{}])[0].get("state", {})
                                         .get("waiting", {}).get("reason") in ("ErrImagePull", "ImagePullBackOff")),
                                        None), what="pod waiting on its image")
    assert pod["status"]["phase"] == "Pending"
    name = pod["metadata"]["name"]
    patch = {"status": {"conditions": [{"type": "ConfigIssue", "status": "True", "reason": "NonExistingImage",
                                        "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]}}
    assert cluster.kubectl("patch", *ns, "pod", name, "--subresource=status", "-p", json.dumps(patch)).stdout \
        == f"pod/{name} patched\n"
    cluster.kubectl("delete", *ns, "pod", name)  # returns: the Failed pod's finalizer goes, and the pod

    def failed_condition(job: str) -> dict | None:
        return next((c for c in job_status(job).get("conditions") or [] if c["type"] == "Failed"), None)

    cond = cluster.wait_for(lambda: failed_condition("job-pod-failure-policy-config-issue"), what="job failed")
    assert (cond["reason"], cond["message"]) == (
        "PodFailurePolicy", f"Pod {namespace}/{name} has condition ConfigIssue matching FailJob rule at index 0")

    # an eviction (what `kubectl drain` does) marks the pod DisruptionTarget: ignored
    running = cluster.wait_for(lambda: next((p for p in pods("job-pod-failure-policy-ignore")
                                             if p["status"].get("phase") == "Running"), None), what="pod running")
    client.CoreV1Api(cluster.api_client()).create_namespaced_pod_eviction(
        running["metadata"]["name"], namespace,
        client.V1Eviction(metadata=client.V1ObjectMeta(name=running["metadata"]["name"], namespace=namespace)))
    cluster.kubectl("wait", *ns, "--for=condition=complete", "job/job-pod-failure-policy-ignore", "--timeout=60s")
    assert "failed" not in job_status("job-pod-failure-policy-ignore")
    rules = cluster.kjson("get", *ns, "job", "job-pod-failure-policy-ignore")["spec"]["podFailurePolicy"]["rules"]
    assert rules[0]["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]  # defaulted

    # backoffLimitPerIndex: index 0 retried once (after its 10 s backoff), index 1 not at all
    cluster.kubectl("wait", *ns, "--for=condition=failed", "job/job-backoff-limit-per-index-failindex",
                    "--timeout=60s")
    st = job_status("job-backoff-limit-per-index-failindex")
    assert (st["failedIndexes"], st["completedIndexes"], st["failed"], st["succeeded"]) == ("0,1", "2,3", 3, 2)
    cond = failed_condition("job-backoff-limit-per-index-failindex")
    assert (cond["reason"], cond["message"]) == ("FailedIndexes", "Job has failed indexes")
    listed = sorted((p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"],
                     p["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"],
                     p["status"]["phase"]) for p in pods("job-backoff-limit-per-index-failindex"))
    assert listed == [("0", "0", "Failed"), ("0", "1", "Failed"), ("1", "0", "Failed"), ("2", "0", "Succeeded"),
                      ("3", "0", "Succeeded")]
    env = pods("job-backoff-limit-per-index-failindex")[0]["spec"]["containers"][0]["env"]
    assert env == [{"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
        "apiVersion": "v1", "fieldPath": "metadata.labels['batch.kubernetes.io/job-completion-index']"}}}]


def test_limit_range_default_limit_below_a_request(cluster, namespace):
    """"Limit Ranges" (concepts/policy/limit-range), "LimitRange and admission checks for
    Pods": a request above the namespace's default limit is refused once LimitRanger has
    set that limit (admission before validation); with its own limit the pod is admitted.
    A request above a limit written in a template is refused the same way."""
    ns = ["-n", namespace]
    cluster.kubectl("create", *ns, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "cpu-resource-constraint"},
        "spec": {"limits": [{"default": {"cpu": "500m"}, "defaultRequest": {"cpu": "500m"}, "max": {"cpu": "1"},
                             "min": {"cpu": "100m"}, "type": "Container"}]}}))

    def pod(name: str, resources: dict) -> str:
        return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [
            {"name": "demo", "image": "registry.k8s.io/pause:3.8", "resources": resources}]}})

    p = cluster.kubectl("apply", *ns, "-f", "-", check=False,
                        input=pod("example-conflict-with-limitrange-cpu", {"requests": {"cpu": "700m"}}))
    assert p.returncode == 1
    assert p.stderr.strip() == ('The Pod "example-conflict-with-limitrange-cpu" is invalid: spec.containers[0].'
                                'resources.requests: Invalid value: "700m": must be less than or equal to cpu '
                                'limit of 500m')
    p = cluster.kubectl("apply", *ns, "--dry-run=server", "-f", "-",
                        input=pod("example-no-conflict-with-limitrange-cpu",
                                  {"requests": {"cpu": "700m"}, "limits": {"cpu": "700m"}}))
    assert p.stdout == "pod/example-no-conflict-with-limitrange-cpu created (server dry run)\n"
    deploy = json.loads(cluster.kubectl("create", "deployment", "d", "--image=demo:v1", "--dry-run=client",
                                        "-o", "json").stdout)
    deploy["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"memory": "1.5Gi"},
                                                                        "limits": {"memory": "1Gi"}}
    p = cluster.kubectl("create", *ns, "-f", "-", check=False, input=json.dumps(deploy))
    assert p.stderr.strip() == ('The Deployment "d" is invalid: spec.template.spec.containers[0].resources.requests: '
                                'Invalid value: "1536Mi": must be less than or equal to memory limit of 1Gi')


def test_private_registry_secret(cluster, namespace, tmp_path):
    """"Pull an Image from a Private Registry": a `kubernetes.io/dockerconfigjson` Secret
    made from a Docker config file must hold JSON (upstream quotes encoding/json's error);
    `kubectl create secret docker-registry` makes one whose config reads back. A
    ConfigMap key in both data and binaryData is refused as upstream does."""
    ns = ["-n", namespace]
    config = tmp_path / "config.json"
    config.write_text('{\n  auths: {}\n}\n')  # a hand-edited config without its quotes
    p = cluster.kubectl("create", "secret", "generic", "regcred", f"--from-file=.dockerconfigjson={config}",
                        "--type=kubernetes.io/dockerconfigjson", *ns, check=False)
    assert p.stderr.strip() == ('error: failed to create secret Secret "regcred" is invalid: data[.dockerconfigjson]: '
                                'Invalid value: "<secret contents redacted>": invalid character \'a\' looking for '
                                'beginning of object key string')
    cluster.kubectl("create", "secret", "docker-registry", "regcred", "--docker-server=registry.example",
                    "--docker-username=tiger", "--docker-password=pass1234", "--docker-email=tiger@acme.example", *ns)
    raw = cluster.kubectl("get", "secret", "regcred", *ns, "--output=jsonpath={.data.\\.dockerconfigjson}").stdout
    assert json.loads(base64.b64decode(raw))["auths"]["registry.example"]["auth"] == \
        base64.b64encode(b"tiger:pass1234").decode()
    p = cluster.kubectl("create", *ns, "-f", "-", check=False, input=json.dumps({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dup"}, "data": {"a": "1"},
        "binaryData": {"a": "MQ=="}}))
    assert p.stderr.strip() == ('The ConfigMap "dup" is invalid: data[a]: Invalid value: "a": duplicate of key '
                                'present in binaryData')


def test_connecting_applications_with_services(cluster, namespace):
    """"Connecting Applications with Services": `kubectl expose deployment/my-nginx`, its
    Endpoints and EndpointSlice. An unnamed port is left out of the Endpoints' port (core
    v1 EndpointPort.name is omitempty) but kept as "" in the slice's (a pointer there)."""
    ns = ["-n", namespace]
    cluster.kubectl("create", "deployment", "my-nginx", "--image=demo:v1", "--port=80", *ns)
    assert cluster.kubectl("expose", "deployment/my-nginx", *ns).stdout == "service/my-nginx exposed\n"
    ep = cluster.wait_for(lambda: (e := cluster.kjson("get", "endpoints", "my-nginx", *ns)).get("subsets") and e,
                          what="the endpoints")
    assert ep["subsets"][0]["ports"] == [{"port": 80, "protocol": "TCP"}]
    out = cluster.kubectl("get", "endpoints", "my-nginx", *ns, "-o", "yaml").stdout
    assert 'name: ""' not in out
    sl = cluster.kjson("get", "endpointslices", "-l", "kubernetes.io/service-name=my-nginx", *ns)["items"][0]
    assert sl["ports"] == [{"name": "", "port": 80, "protocol": "TCP"}]


JOB_SUCCESS = """
apiVersion: batch/v1
kind: Job
metadata:
  name: job-success
spec:
  parallelism: 10
  completions: 10
  completionMode: Indexed # Required for the success policy
  successPolicy:
    rules:
      - succeededIndexes: 0,2-3
        succeededCount: 1
  template:
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: docker.io/library/python:3
        command:
          - python3
          - -c
          - |
            import os, sys, time
            if os.environ.get("JOB_COMPLETION_INDEX") == "2":
              sys.exit(0)
            else:
              time.sleep(30)
              sys.exit(1)
      restartPolicy: Never
"""


def test_job_success_policy(cluster, namespace):
    """The "Jobs" concept page, "Success policy" (controllers/job-success-policy.yaml, the
    others made slow here): index 2 succeeding meets the rule, the lingering pods are
    removed, the Job is Complete with reason SuccessPolicy."""
    store = ImageStore(str(cluster.dir / "data" / "node"))
    with tempfile.TemporaryDirectory() as d:
        store.import_dir("docker.io/library/python:3", Path(d), config={"env": [f"PATH={PATH}"], "cmd": ["sh"]})
    ns = ["-n", namespace]
    cluster.kubectl("create", *ns, "-f", "-", input=JOB_SUCCESS)
    cluster.kubectl("wait", *ns, "--for=condition=complete", "job/job-success", "--timeout=60s")
    st = cluster.kjson("get", *ns, "job", "job-success")["status"]
    conds = {c["type"]: (c["reason"], c["message"]) for c in st["conditions"]}
    assert conds == {"SuccessCriteriaMet": ("SuccessPolicy", "Matched rules at index 0"),
                     "Complete": ("SuccessPolicy", "Matched rules at index 0")}
    assert (st["completedIndexes"], st["succeeded"], st.get("failed")) == ("2", 1, None)
    assert cluster.kubectl("get", *ns, "job", "job-success", "--no-headers").stdout.split()[1:3] == \
        ["Complete", "1/10"]


def test_elastic_indexed_job(cluster, namespace):
    """The "Jobs" concept page, "Elastic Indexed Jobs": an Indexed Job's completions may
    change together with its parallelism (not alone, and never for a NonIndexed Job)."""
    ns = ["-n", namespace]
    for name, mode in (("elastic", "Indexed"), ("fixed", "NonIndexed")):
        cluster.kubectl("create", *ns, "-f", "-", input=json.dumps({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"completions": 3, "parallelism": 3, "completionMode": mode, "suspend": True, "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "demo:v1"}]}}}}))
    p = cluster.kubectl("patch", *ns, "job", "elastic", "--type=merge", "-p", '{"spec":{"completions":5}}',
                        check=False)
    assert p.stderr.strip() == ('The Job "elastic" is invalid: spec.completions: Invalid value: 5: can only be '
                                'modified in tandem with spec.parallelism')
    cluster.kubectl("patch", *ns, "job", "elastic", "--type=merge", "-p",
                    '{"spec":{"completions":5,"parallelism":5}}')
    assert cluster.kjson("get", *ns, "job", "elastic")["spec"]["completions"] == 5
    p = cluster.kubectl("patch", *ns, "job", "fixed", "--type=merge", "-p",
                        '{"spec":{"completions":5,"parallelism":5}}', check=False)
    assert p.stderr.strip() == 'The Job "fixed" is invalid: spec.completions: Invalid value: 5: field is immutable'
    # "Mutable Scheduling Directives": a suspended Job that never started takes a new node
    # selector, not a new image; once started, neither
    selector = '{"spec":{"template":{"spec":{"nodeSelector":{"kubernetes.io/os":"linux"}}}}}'
    cluster.kubectl("patch", *ns, "job", "elastic", "--type=merge", "-p", selector)
    p = cluster.kubectl("set", "image", *ns, "job/elastic", "c=demo:v2", check=False)
    assert p.returncode == 1 and "spec.template: Invalid value: " in p.stderr and "field is immutable" in p.stderr
    cluster.kubectl("patch", *ns, "job", "fixed", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    cluster.wait_for(lambda: cluster.kjson("get", *ns, "job", "fixed").get("status", {}).get("startTime"),
                     what="the Job started")
    cluster.kubectl("patch", *ns, "job", "fixed", "--type=merge", "-p", '{"spec":{"suspend":true}}')
    p = cluster.kubectl("patch", *ns, "job", "fixed", "--type=merge", "-p", selector, check=False)
    assert p.returncode == 1 and "field is immutable" in p.stderr


def test_extended_resources(cluster, namespace):
    """"Advertise Extended Resources for a Node" and "Assign Extended Resources to a
    Container": a node's `example.com/dongle` capacity patched in, a pod asking 3 of 4
    scheduled, one asking 2 more left Pending (Insufficient); an extended resource may
    not be overcommitted (requests equal to limits, limits required)."""
    ns = ["-n", namespace]
    node = cluster.kjson("get", "nodes")["items"][0]["metadata"]["name"]
    # the page patches capacity and the kubelet copies it to allocatable at its next
    # status update (10 s); allocatable is patched too here, not to wait for it
    add = ('[{"op": "add", "path": "/status/capacity/example.com~1dongle", "value": "4"}, '
           '{"op": "add", "path": "/status/allocatable/example.com~1dongle", "value": "4"}]')
    cluster.kubectl("patch", "node", node, "--subresource=status", "--type=json", "-p", add)
    try:
        cluster.wait_for(lambda: cluster.kjson("get", "node", node)["status"]["allocatable"].get(
            "example.com/dongle") == "4", what="allocatable dongles")

        def pod(name: str, count: str, limit: str | None = None) -> str:
            res = {"requests": {"example.com/dongle": count}}
            if limit is not None:
                res["limits"] = {"example.com/dongle": limit}
            return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
                "containers": [{"name": "c", "image": "demo:v1", "resources": res}]}})

        cluster.kubectl("apply", *ns, "-f", "-", input=pod("extended-resource-demo", "3", "3"))
        cluster.wait_for(lambda: cluster.kjson("get", *ns, "pod", "extended-resource-demo")["spec"].get("nodeName"),
                         what="scheduled")
        cluster.kubectl("apply", *ns, "-f", "-", input=pod("extended-resource-demo-2", "2", "2"))
        cond = cluster.wait_for(lambda: next((c for c in cluster.kjson("get", *ns, "pod", "extended-resource-demo-2")
                                              .get("status", {}).get("conditions") or []
                                              if c["type"] == "PodScheduled" and c["status"] == "False"), None),
                                what="unschedulable")
        assert "Insufficient example.com/dongle" in cond["message"]
        p = cluster.kubectl("apply", *ns, "-f", "-", check=False, input=pod("no-limit", "1"))
        assert p.stderr.strip() == ('The Pod "no-limit" is invalid: spec.containers[0].resources.limits: Required '
                                    'value: Limit must be set for non overcommitable resources')
        p = cluster.kubectl("apply", *ns, "-f", "-", check=False, input=pod("overcommit", "1", "2"))
        assert p.stderr.strip() == ('The Pod "overcommit" is invalid: spec.containers[0].resources.requests: '
                                    'Invalid value: "1": must be equal to example.com/dongle limit of 2')
        # "Resource Quotas", extended resources: quota'd as `requests.<name>`, counting the
        # pending pod's request too
        res = "requests.example.com/dongle"
        cluster.kubectl("create", *ns, "quota", "dongles", f"--hard={res}=5")
        cluster.wait_for(lambda: (cluster.kjson("get", *ns, "quota", "dongles").get("status") or {}).get("used")
                         == {res: "5"}, timeout=10, what="dongles counted")
        p = cluster.kubectl("create", *ns, "--dry-run=server", "-f", "-", check=False, input=pod("one-more", "1", "1"))
        assert p.stderr.strip() == ('Error from server (Forbidden): error when creating "STDIN": pods "one-more" is '
                                    f"forbidden: exceeded quota: dongles, requested: {res}=1, used: {res}=5, "
                                    f"limited: {res}=5"), p.stderr
    finally:
        cluster.kubectl("delete", *ns, "pod", "--all", "--wait=false", check=False)
        cluster.kubectl("patch", "node", node, "--subresource=status", "--type=json", "-p",
                        '[{"op": "remove", "path": "/status/capacity/example.com~1dongle"}, '
                        '{"op": "remove", "path": "/status/allocatable/example.com~1dongle"}]', check=False)


CRONTAB_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.{group}
spec:
  group: {group}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
"""


def _own(cluster, ns: list[str], what: str, owner: dict, block: bool = False) -> None:
    ref = {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
           "uid": owner["metadata"]["uid"], **({"blockOwnerDeletion": True} if block else {})}
    cluster.kubectl("patch", *ns, what, "--type=merge", "-p", json.dumps({"metadata": {"ownerReferences": [ref]}}))


def test_owners_and_dependents(cluster, namespace):
    """"Owners and Dependents" and "Use Cascading Deletion in a Cluster": owners and
    dependents of any kind the server serves (a ClusterRole owning a ServiceAccount, a
    custom resource owning a ConfigMap), not only the workload kinds; a namespaced owner
    is looked for in its dependent's namespace, and a wrong one is reported as the page
    says (`kubectl get events -A --field-selector=reason=OwnerRefInvalidNamespace`)."""
    ns = ["-n", namespace]
    other = f"{namespace[:40]}-other"
    cluster.kubectl("create", "namespace", other)
    try:
        # a cluster-scoped owner of namespaced dependents of kinds no controller owns
        cluster.kubectl("create", "clusterrole", f"{namespace}-owner", "--verb=get", "--resource=pods")
        owner = cluster.kjson("get", "clusterrole", f"{namespace}-owner")
        cluster.kubectl("create", *ns, "serviceaccount", "dep-sa")
        cluster.kubectl("create", *ns, "role", "dep-role", "--verb=get", "--resource=pods")
        _own(cluster, ns, "serviceaccount/dep-sa", owner)
        _own(cluster, ns, "role/dep-role", owner)
        # a namespaced owner referenced from another namespace, and by a cluster-scoped object
        cluster.kubectl("create", *ns, "configmap", "owner-a")
        cm = cluster.kjson("get", *ns, "configmap", "owner-a")
        cluster.kubectl("create", "-n", other, "configmap", "dep-x")
        cluster.kubectl("create", "clusterrole", f"{namespace}-dep", "--verb=get", "--resource=pods")
        _own(cluster, ["-n", other], "configmap/dep-x", cm)
        _own(cluster, [], f"clusterrole/{namespace}-dep", cm)

        cluster.kubectl("delete", "clusterrole", f"{namespace}-owner")
        cluster.wait_for(lambda: cluster.kubectl("get", *ns, "serviceaccount/dep-sa", "role/dep-role",
                                                 "--ignore-not-found", "-o", "name").stdout == "",
                         timeout=15, what="the ClusterRole's dependents collected")
        cluster.wait_for(lambda: cluster.kubectl("get", "-n", other, "configmap/dep-x", "--ignore-not-found",
                                                 "-o", "name").stdout == "",
                         timeout=15, what="the dependent of an owner in another namespace collected")

        def reported() -> list[str]:
            out = cluster.kubectl("get", "events", "-A", "--field-selector=reason=OwnerRefInvalidNamespace",
                                  "-o", "custom-columns=NS:.metadata.namespace,OBJ:.involvedObject.name,"
                                  "MSG:.message", "--no-headers").stdout
            return sorted(" ".join(ln.split()) for ln in out.splitlines()
                          if ln.split()[1] in ("dep-x", f"{namespace}-dep"))

        uid = cm["metadata"]["uid"]
        cluster.wait_for(lambda: reported() == [
            f'default {namespace}-dep ownerRef [v1/ConfigMap, namespace: , name: owner-a, uid: {uid}] '
            'does not exist in namespace ""',
            f'{other} dep-x ownerRef [v1/ConfigMap, namespace: {other}, name: owner-a, uid: {uid}] '
            f'does not exist in namespace "{other}"'], timeout=10, what="OwnerRefInvalidNamespace events")
        # a cluster-scoped dependent of a namespaced kind is never collected
        cluster.kubectl("get", "clusterrole", f"{namespace}-dep")

        # a custom resource owning a ConfigMap, deleted in the foreground: the dependent
        # (blocking, held by a finalizer) goes first
        group = f"{namespace}.example.com"
        cluster.kubectl("apply", "-f", "-", input=CRONTAB_CRD.format(group=group))
        cluster.kubectl("wait", "--for=condition=Established", f"crd/crontabs.{group}")
        cluster.kubectl("apply", *ns, "-f", "-", input=f"apiVersion: {group}/v1\nkind: CronTab\n"
                        "metadata:\n  name: my-new-cron-object\n")
        ct = cluster.kjson("get", *ns, f"crontabs.{group}", "my-new-cron-object")
        cluster.kubectl("create", *ns, "configmap", "ct-dep")
        cluster.kubectl("patch", *ns, "configmap/ct-dep", "--type=merge", "-p",
                        '{"metadata":{"finalizers":["example.com/hold"]}}')
        _own(cluster, ns, "configmap/ct-dep", ct, block=True)
        cluster.kubectl("delete", *ns, f"crontabs.{group}", "my-new-cron-object", "--cascade=foreground",
                        "--wait=false")
        cluster.wait_for(lambda: cluster.kjson("get", *ns, "configmap", "ct-dep")["metadata"]
                         .get("deletionTimestamp"), timeout=15, what="the CronTab's dependent deleted")
        got = cluster.kjson("get", *ns, f"crontabs.{group}", "my-new-cron-object")["metadata"]
        assert got["finalizers"] == ["foregroundDeletion"] and got["deletionTimestamp"]
        cluster.kubectl("patch", *ns, "configmap/ct-dep", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
        cluster.wait_for(lambda: cluster.kubectl("get", *ns, f"crontabs.{group}", "--ignore-not-found",
                                                 "-o", "name").stdout == "", timeout=15, what="the CronTab gone")
        cluster.kubectl("delete", "crd", f"crontabs.{group}", "--wait=false")

        # "Finalizers": an object being deleted takes no new finalizer; both deletion
        # policies' finalizers at once are refused
        cluster.kubectl("create", *ns, "configmap", "held")
        p = cluster.kubectl("patch", *ns, "configmap/held", "--type=merge", "-p",
                            '{"metadata":{"finalizers":["foregroundDeletion","orphan"]}}', check=False)
        assert p.stderr.strip() == ('The ConfigMap "held" is invalid: metadata.finalizers: Invalid value: '
                                    '[]string{"foregroundDeletion", "orphan"}: finalizer orphan and '
                                    'foregroundDeletion cannot be both set')
        cluster.kubectl("patch", *ns, "configmap/held", "--type=merge", "-p",
                        '{"metadata":{"finalizers":["example.com/a"]}}')
        cluster.kubectl("delete", *ns, "configmap/held", "--wait=false")
        p = cluster.kubectl("patch", *ns, "configmap/held", "--type=json", "-p",
                            '[{"op":"add","path":"/metadata/finalizers/-","value":"example.com/b"}]', check=False)
        assert p.stderr.strip() == ('The ConfigMap "held" is invalid: metadata.finalizers: Forbidden: no new '
                                    'finalizers can be added if the object is being deleted, found new '
                                    'finalizers []string{"example.com/b"}')
        cluster.kubectl("patch", *ns, "configmap/held", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')

        # an owner reference names its owner fully
        p = cluster.kubectl("create", *ns, "--dry-run=server", "-f", "-", check=False, input=json.dumps({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owned", "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner-a", "uid": ""}]}}))
        assert p.stderr.strip() == ('The ConfigMap "owned" is invalid: metadata.ownerReferences.uid: Invalid '
                                    'value: "": uid must not be empty')
    finally:
        cluster.kubectl("delete", "clusterrole", f"{namespace}-dep", "--ignore-not-found", check=False)
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)


POD_QUOTA_DEMO = """
apiVersion: v1
kind: ResourceQuota
metadata:
  name: pod-demo
spec:
  hard:
    pods: "2"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: pod-quota-demo
spec:
  selector:
    matchLabels:
      purpose: quota-demo
  replicas: 3
  template:
    metadata:
      labels:
        purpose: quota-demo
    spec:
      containers:
      - name: pod-quota-demo
        image: registry.k8s.io/nginx-slim:0.21
"""


def test_pod_quota_for_a_namespace(cluster, namespace):
    """"Configure a Pod Quota for a Namespace": three replicas, a quota of two pods: two
    pods, however fast the ReplicaSet creates them (the quota controller no longer
    recounts on each create and status write, which undid the admission's charges), and
    the Deployment's ReplicaFailure condition with upstream's text."""
    ns = ["-n", namespace]
    cluster.kubectl("apply", *ns, "-f", "-", input=POD_QUOTA_DEMO.split("---")[0])
    cluster.wait_for(lambda: (cluster.kjson("get", *ns, "resourcequota", "pod-demo").get("status") or {})
                     .get("used") == {"pods": "0"}, timeout=10, what="the quota counted")
    cluster.kubectl("apply", *ns, "-f", "-", input=POD_QUOTA_DEMO.split("---")[1])

    def failure() -> dict | None:
        conds = (cluster.kjson("get", *ns, "deployment", "pod-quota-demo").get("status") or {}).get("conditions")
        return next((c for c in conds or () if c["type"] == "ReplicaFailure"), None)

    cond = cluster.wait_for(failure, timeout=15, what="ReplicaFailure")
    assert cond["reason"] == "FailedCreate" and cond["status"] == "True"
    assert cond["message"].endswith('" is forbidden: exceeded quota: pod-demo, requested: pods=1, used: pods=2, '
                                    'limited: pods=2'), cond["message"]
    time.sleep(1)  # a third pod let through would show by now
    pods = cluster.kubectl("get", *ns, "pods", "-l", "purpose=quota-demo", "-o", "name").stdout.split()
    assert len(pods) == 2, pods
    assert cluster.kjson("get", *ns, "resourcequota", "pod-demo")["status"]["used"] == {"pods": "2"}
    # "Resource Quotas" concept page, scopes: a scope must fit the resources it limits
    # (BestEffort only pods), scopes may not conflict, a selector's operators and values
    # as upstream's ValidateResourceQuotaSpec; scopes cannot change
    def refused(spec: dict) -> str:
        quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "scoped"}, "spec": spec}
        p = cluster.kubectl("create", *ns, "--dry-run=server", "-f", "-", input=json.dumps(quota), check=False)
        assert p.returncode != 0, p.stdout
        return p.stderr.strip().removeprefix('The ResourceQuota "scoped" is invalid: ')
    assert refused({"hard": {"cpu": "1", "memory": "1Gi"}, "scopes": ["BestEffort"]}) == \
        'spec.scopes: Invalid value: []core.ResourceQuotaScope{"BestEffort"}: unsupported scope applied to resource'
    assert refused({"hard": {"pods": "1"}, "scopes": ["Terminating", "NotTerminating"]}) == \
        ('spec.scopes: Invalid value: []core.ResourceQuotaScope{"Terminating", "NotTerminating"}: conflicting '
         "scopes")
    assert refused({"hard": {"pods": "1"}, "scopeSelector": {"matchExpressions": [
        {"scopeName": "PriorityClass", "operator": "In"}]}}) == (
        "spec.scopeSelector.matchExpressions.values: Required value: must be at least one value when `operator` is "
        "'In' or 'NotIn' for scope selector")
    assert refused({"hard": {"pods": "-1", "foo": "1"}}).splitlines() == [
        "", '* spec.hard[foo]: Invalid value: "foo": must be a standard resource type or fully qualified',
        '* spec.hard[foo]: Invalid value: "foo": must be a standard resource for quota',
        '* spec.hard[pods]: Invalid value: "-1": must be greater than or equal to 0']
    p = cluster.kubectl("patch", *ns, "resourcequota", "pod-demo", "-p", '{"spec":{"scopes":["NotBestEffort"]}}',
                        check=False)
    assert p.stderr.strip() == ('The ResourceQuota "pod-demo" is invalid: spec.scopes: Invalid value: '
                                '[]core.ResourceQuotaScope{"NotBestEffort"}: field is immutable'), p.stderr


DEFAULT_CPU = """
apiVersion: v1
kind: LimitRange
metadata:
  name: cpu-limit-range
spec:
  limits:
  - default:
      cpu: 1
    defaultRequest:
      cpu: 0.5
    type: Container
"""

DEFAULT_CPU_DEMO_3 = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: default-cpu-demo-3
spec:
  replicas: 0
  selector: {matchLabels: {app: default-cpu-demo-3}}
  template:
    metadata: {labels: {app: default-cpu-demo-3}}
    spec:
      containers:
      - name: default-cpu-demo-3-ctr
        image: nginx
        resources:
          requests:
            cpu: "0.75"
            memory: 1.5Gi
"""

DEFAULT_CPU_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: default-cpu-demo-3
spec:
  containers:
  - name: default-cpu-demo-3-ctr
    image: nginx
    resources:
      requests:
        cpu: "0.75"
        memory: 1.5Gi
"""


def test_default_cpu_requests_and_limits(cluster, namespace):
    """"Configure Default CPU Requests and Limits for a Namespace": a container's
    `cpu: "0.75"` reads back as upstream stores it, `750m` (and `1.5Gi` as `1536Mi`),
    next to the LimitRange's default limit; server-side apply of the same manifest over
    it is no conflict (the config's quantities are compared as stored)."""
    ns = ["-n", namespace]
    cluster.kubectl("apply", *ns, "-f", "-", input=DEFAULT_CPU)
    cluster.kubectl("apply", *ns, "-f", "-", input=DEFAULT_CPU_POD)
    res = cluster.kjson("get", *ns, "pod", "default-cpu-demo-3")["spec"]["containers"][0]["resources"]
    assert res == {"limits": {"cpu": "1"}, "requests": {"cpu": "750m", "memory": "1536Mi"}}
    # moving the pod to server-side apply: kubectl hands the client-side manager's fields to
    # its own and applies again, which must not take away what admission added (the
    # service account volume: a pod's spec cannot change), as the create's field manager
    # ran before admission
    p = cluster.kubectl("apply", *ns, "--server-side", "-f", "-", input=DEFAULT_CPU_POD)
    assert (p.stdout.strip(), p.stderr) == ("pod/default-cpu-demo-3 serverside-applied", "")
    cluster.kubectl("create", *ns, "-f", "-", input=DEFAULT_CPU_DEMO_3)
    p = cluster.kubectl("apply", *ns, "--server-side", "-f", "-", input=DEFAULT_CPU_DEMO_3)
    assert p.stdout.strip() == "deployment.apps/default-cpu-demo-3 serverside-applied"


LABELLED_PODS = "---".join(f"""
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {labels}
spec:
  containers:
  - name: c
    image: registry.k8s.io/nginx-slim:0.21
""" for name, labels in (("prod-fe", "{environment: production, tier: frontend, gpu: '2'}"),
                         ("qa-be", "{environment: qa, tier: backend, gpu: '1'}"),
                         ("plain", "{tier: frontend}")))


def test_labels_and_field_selectors(cluster, namespace):
    """"Labels and Selectors" and "Field Selectors": every example selector, the `>`/`<`
    operators of upstream's parser (`-l 'gpu>1'`), and its error texts for a malformed
    selector; an unsupported field selector's error as the page shows it."""
    ns = ["-n", namespace]
    cluster.kubectl("apply", *ns, "-f", "-", input=LABELLED_PODS)

    def names(*sel: str) -> list[str]:
        return sorted(cluster.kubectl("get", *ns, "pods", *sel, "-o", "name").stdout.split())

    assert names("-l", "environment=production,tier=frontend") == ["pod/prod-fe"]
    assert names("-l", "environment in (production),tier in (frontend)") == ["pod/prod-fe"]
    assert names("-l", "environment in (production, qa)") == ["pod/prod-fe", "pod/qa-be"]
    assert names("-l", "environment,environment notin (frontend)") == ["pod/prod-fe", "pod/qa-be"]
    assert names("-l", "!environment") == ["pod/plain"]
    assert names("-l", "gpu>1") == ["pod/prod-fe"]
    assert names("-l", "gpu<2,tier") == ["pod/qa-be"]
    assert names("--field-selector", "metadata.name!=plain,spec.restartPolicy=Always") == ["pod/prod-fe", "pod/qa-be"]
    for sel, why in (("environment in (production", "unable to parse requirement: found '', expected: ',' or ')'"),
                     ("tier=frontend tier", "found 'tier', expected: ',' or 'end of string'"),
                     ("gpu>x", "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' "
                               "operators, the value must be an integer")):
        p = cluster.kubectl("get", *ns, "pods", "-l", sel, check=False)
        assert p.stderr.strip() == (f'Error from server (BadRequest): Unable to find "/v1, Resource=pods" that '
                                    f'match label selector "{sel}", field selector "": {why}'), p.stderr
    # a set-based selector in a workload's spec is validated as one (ValidateLabelSelector),
    # not only found not to match the template
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "sel"}, "spec": {
        "selector": {"matchExpressions": [{"key": "tier", "operator": "Gt", "values": ["1"]}]},
        "template": {"metadata": {"labels": {"tier": "cache"}}, "spec": {"containers": [{"name": "c",
                                                                                        "image": "nginx"}]}}}}
    p = cluster.kubectl("create", *ns, "--dry-run=server", "-f", "-", input=json.dumps(deploy), check=False)
    assert 'spec.selector.matchExpressions[0].operator: Invalid value: "Gt": not a valid selector operator' \
        in p.stderr and "does not match" not in p.stderr, p.stderr
    deploy.update(kind="StatefulSet", spec={**deploy["spec"], "selector": {}, "serviceName": "sel"})
    p = cluster.kubectl("create", *ns, "--dry-run=server", "-f", "-", input=json.dumps(deploy), check=False)
    assert "empty selector is invalid for statefulset" in p.stderr, p.stderr
    p = cluster.kubectl("get", *ns, "ingress", "--field-selector", "foo.bar=baz", check=False)
    assert p.stderr.strip() == ('Error from server (BadRequest): Unable to find "networking.k8s.io/v1, '
                                'Resource=ingresses" that match label selector "", field selector "foo.bar=baz": '
                                '"foo.bar" is not a known field selector: only "metadata.name", '
                                '"metadata.namespace"')


def test_workload_and_scheduling_fields_are_validated(cluster, namespace):
    """"Assign Pods to Nodes using Node Affinity", "Taints and Tolerations", "Pod
    Topology Spread Constraints": a malformed term is refused with upstream's field
    paths and messages (pkg/apis/core/validation), in a pod and in a template, not
    stored to never match."""
    ns = ["-n", namespace]
    affinity = {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "cores", "operator": "Gt", "values": ["4", "5"]},
            {"key": "gpu", "operator": "DoesNotExist", "values": ["a"]},
            {"key": "disktype", "operator": "In"}]}, {"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["Node_1"]}]}]},
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 0, "preference": {"matchExpressions": [
            {"key": "disktype", "operator": "Foo", "values": ["ssd"]}]}}]},
        "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "web"}}}]}}
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "aff"}, "spec": {
        "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
            "affinity": affinity, "containers": [{"name": "c", "image": "nginx"}]}}}}
    p = cluster.kubectl("create", *ns, "--dry-run=server", "-f", "-", input=json.dumps(deploy), check=False)
    na = "spec.template.spec.affinity.nodeAffinity."
    req = na + "requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions"
    pref = na + "preferredDuringSchedulingIgnoredDuringExecution[0]"
    assert p.stderr.splitlines()[1:] == [
        f"* {req}[0].values: Required value: must be specified single value when `operator` is 'Lt' or 'Gt'",
        f"* {req}[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        f"* {req}[2].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
        f'* {req[:-len(".nodeSelectorTerms[0].matchExpressions")]}.nodeSelectorTerms[1].matchFields[0].values[0]: '
        'Invalid value: "Node_1": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric '
        "characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
        "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        f"* {pref}.weight: Invalid value: 0: must be in the range 1-100",
        f'* {pref}.preference.matchExpressions[0].operator: Invalid value: "Foo": not a valid selector operator',
        "* spec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]"
        ".topologyKey: Required value: can not be empty",
        "* spec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]"
        '.topologyKey: Invalid value: "": name part must be non-empty'], p.stderr
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "tol"}, "spec": {
        "containers": [{"name": "c", "image": "nginx"}],
        "tolerations": [{"key": "key1", "operator": "Exists", "value": "value1", "effect": "NoSchedule"},
                        {"operator": "Equal", "value": "x"},
                        {"key": "key1", "tolerationSeconds": 3600, "effect": "NoSchedule"},
                        {"key": "key1", "operator": "Foo", "effect": "Bar"}],
        "topologySpreadConstraints": [
            {"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"},
            {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway", "minDomains": 2},
            {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}]}}
    p = cluster.kubectl("create", *ns, "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    spread = "spec.topologySpreadConstraints"
    assert p.stderr.splitlines()[1:] == [
        f"* {spread}[0].maxSkew: Invalid value: 0: must be greater than zero",
        f'* {spread}[1].{{topologyKey, whenUnsatisfiable}}: Duplicate value: "{{zone, ScheduleAnyway}}"',
        f"* {spread}[1].minDomains: Invalid value: 2: can only use minDomains if whenUnsatisfiable=DoNotSchedule, "
        "not ScheduleAnyway",
        '* spec.tolerations[0].operator: Invalid value: core.Toleration{Key:"key1", Operator:"Exists", '
        'Value:"value1", Effect:"NoSchedule", TolerationSeconds:(*int64)(nil)}: value must be empty when '
        "`operator` is 'Exists'",
        '* spec.tolerations[1].operator: Invalid value: "Equal": operator must be Exists when `key` is empty, '
        'which means "match all values and all keys"',
        "* spec.tolerations[2].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when "
        "`tolerationSeconds` is set",
        '* spec.tolerations[3].operator: Unsupported value: "Foo": supported values: "Equal", "Exists"',
        '* spec.tolerations[3].effect: Unsupported value: "Bar": supported values: "NoSchedule", '
        '"PreferNoSchedule", "NoExecute"'], p.stderr
    # "Taints and Tolerations": a node's taints need an effect upstream knows and are
    # unique by key and effect
    node = cluster.kubectl("get", "nodes", "-o", "name").stdout.split()[0]
    p = cluster.kubectl("patch", node, "--dry-run=server", "--type=json", "-p", json.dumps([
        {"op": "add", "path": "/spec/taints", "value": [{"key": "key1", "value": "value1", "effect": "NoSchedule"},
                                                         {"key": "key1", "effect": "NoSchedule"},
                                                         {"key": "key2", "effect": "Sometimes"}]}]), check=False)
    assert p.stderr.splitlines()[1:] == [
        '* spec.taints[1]: Duplicate value: core.Taint{Key:"key1", Value:"", Effect:"NoSchedule", '
        "TimeAdded:(*v1.Time)(nil)}: taints must be unique by key and effect pair",
        '* spec.taints[2].effect: Unsupported value: "Sometimes": supported values: "NoSchedule", '
        '"PreferNoSchedule", "NoExecute"'], p.stderr
    # "Resource Quotas", cross-namespace pod affinity scope: a quota of 0 such pods refuses
    # a pod whose affinity term has a namespaceSelector (even an empty one), not others
    cluster.kubectl("apply", *ns, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "disable-cross-namespace-affinity"},
        "spec": {"hard": {"pods": "0"}, "scopeSelector": {"matchExpressions": [
            {"scopeName": "CrossNamespacePodAffinity", "operator": "Exists"}]}}}))
    cross = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "cross"}, "spec": {
        "containers": [{"name": "c", "image": "nginx"}], "affinity": {"podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchLabels": {"app": "web"}}, "namespaceSelector": {},
                "topologyKey": "kubernetes.io/hostname"}]}}}}
    want = ('Error from server (Forbidden): error when creating "STDIN": pods "cross" is forbidden: exceeded quota: '
            "disable-cross-namespace-affinity, requested: pods=1, used: pods=0, limited: pods=0")
    cluster.wait_for(lambda: cluster.kubectl("create", *ns, "--dry-run=server", "-f", "-", input=json.dumps(cross),
                                             check=False).stderr.strip() == want, timeout=10, what="quota refusal")
    del cross["spec"]["affinity"]
    cluster.kubectl("create", *ns, "--dry-run=server", "-f", "-", input=json.dumps(cross))
    # "ReplicaSet" page, Pod deletion cost: the annotation must be a 32-bit integer, in a
    # pod or a template ("-007" passes upstream's check, "007" and "+1" do not)
    cost = "controller.kubernetes.io/pod-deletion-cost"
    for value, ok in (("-007", True), ("007", False), ("+1", False), ("2147483648", False)):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "cost", "annotations": {cost: value}},
               "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
        p = cluster.kubectl("create", *ns, "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
        assert (p.returncode == 0) == ok, p.stderr
        if not ok:
            assert p.stderr.strip() == (f'The Pod "cost" is invalid: metadata.annotations[{cost}]: Invalid value: '
                                        f'"{value}": must be a 32bit integer'), p.stderr
    # "Deployments" page: progressDeadlineSeconds above minReadySeconds, maxUnavailable at
    # most 100% and not 0 with maxSurge 0, percents as upstream's IsValidPercent
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "dep"}, "spec": {
        "selector": {"matchLabels": {"app": "web"}}, "minReadySeconds": 10, "progressDeadlineSeconds": 10,
        "revisionHistoryLimit": -1, "strategy": {"rollingUpdate": {"maxSurge": "1.5", "maxUnavailable": "120%"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    p = cluster.kubectl("create", *ns, "--dry-run=server", "-f", "-", input=json.dumps(deploy), check=False)
    ru = "spec.strategy.rollingUpdate"
    assert p.stderr.splitlines()[1:] == [
        f'* {ru}.maxSurge: Invalid value: intstr.IntOrString{{Type:1, IntVal:0, StrVal:"1.5"}}: a valid percent '
        "string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for "
        "validation is '[0-9]+%')",
        f'* {ru}.maxUnavailable: Invalid value: intstr.IntOrString{{Type:1, IntVal:0, StrVal:"120%"}}: must not be '
        "greater than 100%",
        "* spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
        "* spec.progressDeadlineSeconds: Invalid value: 10: must be greater than minReadySeconds"], p.stderr
    deploy["spec"].update(minReadySeconds=0, revisionHistoryLimit=1, progressDeadlineSeconds=600,
                          strategy={"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}})
    p = cluster.kubectl("create", *ns, "--dry-run=server", "-f", "-", input=json.dumps(deploy), check=False)
    assert p.stderr.strip() == ('The Deployment "dep" is invalid: spec.strategy.rollingUpdate.maxUnavailable: Invalid '
                                'value: intstr.IntOrString{Type:0, IntVal:0, StrVal:""}: may not be 0 when `maxSurge` '
                                "is 0"), p.stderr
    # "DaemonSet" page: exactly one of maxUnavailable and maxSurge non-zero
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds"}, "spec": {
        "selector": {"matchLabels": {"app": "web"}}, "updateStrategy": {"rollingUpdate": {"maxSurge": "10%"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    p = cluster.kubectl("create", *ns, "--dry-run=server", "-f", "-", input=json.dumps(ds), check=False)
    assert p.stderr.strip() == ('The DaemonSet "ds" is invalid: spec.updateStrategy.rollingUpdate.maxSurge: Invalid '
                                'value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"10%"}: may not be set when '
                                "maxUnavailable is non-zero"), p.stderr
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "cost"}, "spec": {
        "minReadySeconds": -1, "selector": {"matchLabels": {"tier": "frontend"}}, "template": {
            "metadata": {"labels": {"tier": "frontend"}, "annotations": {cost: "abc"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    p = cluster.kubectl("create", *ns, "--dry-run=server", "-f", "-", input=json.dumps(rs), check=False)
    assert f'spec.template.metadata.annotations[{cost}]: Invalid value: "abc": must be a 32bit integer' \
        in p.stderr, p.stderr
    assert "spec.minReadySeconds: Invalid value: -1: must be greater than or equal to 0" in p.stderr, p.stderr


def test_source_ip_health_check_node_port(cluster, namespace):
    """"Using Source IP": a LoadBalancer Service patched to `externalTrafficPolicy:
    Local` gets a `healthCheckNodePort` from the node port range (`kubectl get svc
    loadbalancer -o yaml | grep -i healthCheckNodePort`), which no nodePort may take,
    where the node with the pod answers 200 and `localEndpoints` (503 once there is
    none), and gives it back with `Cluster`."""
    ns = ["-n", namespace]
    cluster.kubectl("create", *ns, "service", "loadbalancer", "loadbalancer", "--tcp=80:8080")
    assert "healthCheckNodePort" not in cluster.kjson("get", *ns, "svc", "loadbalancer")["spec"]
    cluster.kubectl("patch", *ns, "svc", "loadbalancer", "-p", '{"spec":{"externalTrafficPolicy":"Local"}}')
    spec = cluster.kjson("get", *ns, "svc", "loadbalancer")["spec"]
    hc = spec["healthCheckNodePort"]
    assert 30000 <= hc <= 32767 and hc != spec["ports"][0]["nodePort"]
    p = cluster.kubectl("patch", *ns, "svc", "loadbalancer", "--type=json", "-p",
                        f'[{{"op":"replace","path":"/spec/ports/0/nodePort","value":{hc}}}]', check=False)
    assert p.stderr.strip() == (f'The Service "loadbalancer" is invalid: spec.ports[0].nodePort: Invalid value: '
                                f'{hc}: provided port is already allocated')
    # the node's service proxy answers load balancers' health checks there, as kube-proxy
    _import_stand_ins(cluster)
    cluster.kubectl("create", *ns, "deployment", "loadbalancer", "--image=registry.k8s.io/nginx-slim:0.21")
    cluster.kubectl("rollout", "status", *ns, "deployment/loadbalancer", "--timeout=60s")
    node = cluster.kjson("get", *ns, "pods", "-l", "app=loadbalancer")["items"][0]["spec"]["nodeName"]
    addr = next(a["address"] for a in cluster.kjson("get", "node", node)["status"]["addresses"]
                if a["type"] == "InternalIP")

    def check() -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://{addr}:{hc}/healthz", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return 0, ""

    want = ('{\n\t"service": {\n\t\t"namespace": "%s",\n\t\t"name": "loadbalancer"\n\t},\n\t'
            '"localEndpoints": %d,\n\t"serviceProxyHealthy": true\n}')
    cluster.wait_for(lambda: check() == (200, want % (namespace, 1)), timeout=15, what="a healthy health check")
    cluster.kubectl("scale", *ns, "deployment/loadbalancer", "--replicas=0")
    cluster.wait_for(lambda: check() == (503, want % (namespace, 0)), timeout=15, what="no local endpoint")
    cluster.kubectl("patch", *ns, "svc", "loadbalancer", "-p", '{"spec":{"externalTrafficPolicy":"Cluster"}}')
    assert "healthCheckNodePort" not in cluster.kjson("get", *ns, "svc", "loadbalancer")["spec"]
