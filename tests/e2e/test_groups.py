"""The served groups beyond the skeleton, as kubectl sees them: objects of each
kind are stored with upstream's defaults, printed with upstream's columns, and
`kubectl api-resources` lists them with their short names; an HPA written at
autoscaling/v1 reads back at v2 (and the reverse) through conversion."""

from __future__ import annotations

import json

MANIFEST = """
apiVersion: batch/v1
kind: Job
metadata: {name: pi}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: pi, image: demo:v1, command: [python3, -c, "print(1)"]}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "*/5 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: t, image: demo:v1}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 0
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: demo:v1}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {nodeSelector: {disk: ssd}, containers: [{name: a, image: demo:v1}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  ingressClassName: nginx
  rules:
  - host: a.example.com
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny}
spec: {podSelector: {matchLabels: {app: db}}, egress: [{}]}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: db}
spec: {minAvailable: 1, selector: {matchLabels: {app: db}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: read}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects: [{kind: User, name: jane}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1}
addressType: IPv4
ports: [{port: 80}]
endpoints: [{addresses: [10.0.0.1]}]
"""


def header(cluster, *args: str) -> list[str]:
    return cluster.kubectl("get", *args).stdout.splitlines()[0].split()


def test_kinds_are_stored_defaulted_and_printed(cluster, namespace):
    ns = ("-n", namespace)
    cluster.kubectl("apply", *ns, "-f", "-", input=MANIFEST)

    job = cluster.kjson("get", "job", "pi", *ns)
    assert (job["spec"]["completions"], job["spec"]["parallelism"], job["spec"]["backoffLimit"]) == (1, 1, 6)
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert job["spec"]["template"]["metadata"]["labels"]["job-name"] == "pi"
    assert header(cluster, "jobs", *ns) == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]

    cj = cluster.kjson("get", "cj", "tick", *ns)
    assert cj["spec"]["concurrencyPolicy"] == "Allow" and cj["spec"]["successfulJobsHistoryLimit"] == 3
    assert header(cluster, "cronjobs", *ns) == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST",
                                                "SCHEDULE", "AGE"]
    row = cluster.kubectl("get", "cj", "tick", *ns, "--no-headers").stdout.split()
    assert row[1:6] == ["*/5", "*", "*", "*", "*"] and row[6:9] == ["<none>", "False", "0"]

    sts = cluster.kjson("get", "sts", "db", *ns)
    assert sts["spec"]["podManagementPolicy"] == "OrderedReady"
    assert sts["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert header(cluster, "sts", *ns) == ["NAME", "READY", "AGE"]

    assert header(cluster, "ds", *ns) == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE",
                                          "NODE", "SELECTOR", "AGE"]
    assert "disk=ssd" in cluster.kubectl("get", "ds", "agent", *ns).stdout

    ing = cluster.kubectl("get", "ing", "web", *ns).stdout.splitlines()
    assert ing[0].split() == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    assert ing[1].split()[:4] == ["web", "nginx", "a.example.com", "80"]

    assert cluster.kjson("get", "netpol", "deny", *ns)["spec"]["policyTypes"] == ["Ingress", "Egress"]

    pvc = cluster.kjson("get", "pvc", "data", *ns)
    assert pvc["spec"]["volumeMode"] == "Filesystem" and pvc["status"]["phase"] == "Pending"
    assert header(cluster, "pvc", *ns)[:3] == ["NAME", "STATUS", "VOLUME"]

    assert cluster.kubectl("get", "pdb", "db", *ns, "--no-headers").stdout.split()[:4] == ["db", "1", "N/A", "0"]
    assert header(cluster, "roles", *ns) == ["NAME", "CREATED", "AT"]
    assert cluster.kubectl("get", "rolebinding", "read", *ns, "--no-headers").stdout.split()[:2] == \
        ["read", "Role/reader"]
    assert header(cluster, "endpointslices", *ns) == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]

    # upstream's validation: a Job's pods may not restart Always
    bad = cluster.kubectl("create", "job", "bad", "--image=demo:v1", *ns, "--dry-run=server", "-o", "json",
                          check=False)
    assert bad.returncode == 0  # kubectl create job sets restartPolicy Never
    bad = cluster.kubectl("apply", *ns, "-f", "-", check=False, input=MANIFEST.split("---")[0].replace(
        "restartPolicy: Never", "restartPolicy: Always").replace("name: pi}", "name: pi2}"))
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Always"' in bad.stderr


def test_hpa_converts_between_v1_and_v2(cluster, namespace):
    ns = ("-n", namespace)
    cluster.kubectl("apply", *ns, "-f", "-", input="""
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 5
  targetCPUUtilizationPercentage: 60
""")
    v2 = cluster.kjson("get", "horizontalpodautoscalers.v2.autoscaling", "web", *ns)
    assert v2["apiVersion"] == "autoscaling/v2" and v2["spec"]["minReplicas"] == 1
    assert v2["spec"]["metrics"] == [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 60}}}]
    row = cluster.kubectl("get", "hpa", "web", *ns, "--no-headers").stdout.split()
    assert row[:7] == ["web", "Deployment/web", "cpu:", "<unknown>/60%", "1", "5", "0"]

    # written at v2 with a second metric: v1 keeps it in an annotation and gives it back
    cluster.kubectl("apply", *ns, "-f", "-", input="""
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: two}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 3
  metrics:
  - {type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}}
  - {type: Resource, resource: {name: memory, target: {type: AverageValue, averageValue: 100Mi}}}
""")
    v1 = cluster.kjson("get", "horizontalpodautoscalers.v1.autoscaling", "two", *ns)
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 70
    assert "autoscaling.alpha.kubernetes.io/metrics" in v1["metadata"]["annotations"]
    cluster.kubectl("label", "horizontalpodautoscalers.v1.autoscaling", "two", *ns, "team=a")
    back = cluster.kjson("get", "hpa", "two", *ns)
    assert [m["resource"]["name"] for m in back["spec"]["metrics"]] == ["cpu", "memory"]
    assert "annotations" not in back["metadata"] or \
        "autoscaling.alpha.kubernetes.io/metrics" not in back["metadata"]["annotations"]


def test_api_resources_lists_the_groups(cluster):
    rows = {line.split()[0]: line.split() for line in cluster.kubectl("api-resources").stdout.splitlines()[1:]}
    expect = {"statefulsets": "sts", "daemonsets": "ds", "cronjobs": "cj", "horizontalpodautoscalers": "hpa",
              "ingresses": "ing", "networkpolicies": "netpol", "persistentvolumeclaims": "pvc",
              "persistentvolumes": "pv", "poddisruptionbudgets": "pdb", "storageclasses": "sc",
              "customresourcedefinitions": "crd,crds", "endpoints": "ep", "resourcequotas": "quota",
              "limitranges": "limits", "replicationcontrollers": "rc"}
    for plural, short in expect.items():
        assert rows[plural][1] == short, rows.get(plural)
    assert rows["horizontalpodautoscalers"][2] == "autoscaling/v2"
    for plural in ("jobs", "controllerrevisions", "ingressclasses", "endpointslices", "roles", "rolebindings",
                   "clusterroles", "clusterrolebindings", "csidrivers", "csinodes", "volumeattachments"):
        assert plural in rows


def test_legacy_discovery_entries_match_upstream_bytes(cluster):
    # upstream's test/cmd discovery.sh greps the raw /api/v1 text: keys in metav1.APIResource order,
    # storageVersionHash last and only for stored kinds
    raw = cluster.kubectl("get", "--raw", "/api/v1").stdout
    assert ('{"name":"configmaps","singularName":"configmap","namespaced":true,"kind":"ConfigMap","verbs":'
            '["create","delete","deletecollection","get","list","patch","update","watch"],"shortNames":["cm"],'
            '"storageVersionHash":"qFsyl6wFWjQ="}') in raw
    assert '{"name":"bindings","singularName":"binding","namespaced":true,"kind":"Binding","verbs":["create"]}' in raw
    names = [r["name"] for r in json.loads(raw)["resources"]]
    assert names[names.index("pods"):names.index("podtemplates")] == [
        "pods", "pods/attach", "pods/binding", "pods/ephemeralcontainers", "pods/eviction", "pods/exec",
        "pods/log", "pods/portforward", "pods/proxy", "pods/status"]
    kinds = {r["name"]: r["kind"] for r in json.loads(raw)["resources"]}
    assert (kinds["nodes/proxy"], kinds["services/proxy"], kinds["pods/proxy"]) == (
        "NodeProxyOptions", "ServiceProxyOptions", "PodProxyOptions")
    apps = cluster.kubectl("get", "--raw", "/apis/apps/v1").stdout
    assert ('{"name":"deployments/scale","singularName":"","namespaced":true,"group":"autoscaling",'
            '"version":"v1","kind":"Scale","verbs":') in apps
