"""Resource quantities written as YAML numbers (`cpu: 2`, `memory: 1e9`, `cpu: 0.5`),
as many manifests have them: stored and served as upstream's canonical strings, so
`kubectl get -o yaml` shows `cpu: "2"` and the official Python client (whose
models want strings) can read the objects back."""

from __future__ import annotations

from kubernetes import client

MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: sized}
spec:
  replicas: 0
  selector: {matchLabels: {app: sized}}
  template:
    metadata: {labels: {app: sized}}
    spec:
      containers:
      - name: c
        image: demo:v1
        resources:
          limits: {cpu: 2, memory: 1000000000}
          requests: {cpu: 0.5, memory: 128974848}
"""


def test_numeric_quantities_become_canonical_strings(cluster, namespace):
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=MANIFEST)
    apps = client.AppsV1Api(cluster.api_client())
    [d] = apps.list_namespaced_deployment(namespace).items  # the client's models accept what is stored
    res = d.spec.template.spec.containers[0].resources
    assert res.limits == {"cpu": "2", "memory": "1G"}
    assert res.requests == {"cpu": "500m", "memory": "128974848"}
    # a strategic merge patch with a number is stored the same way
    cluster.kubectl("patch", "-n", namespace, "deployment", "sized", "--type=strategic", "-p",
                    '{"spec":{"template":{"spec":{"containers":[{"name":"c","resources":{"limits":{"cpu":1e30}}}]}}}}')
    d = apps.read_namespaced_deployment("sized", namespace)
    assert d.spec.template.spec.containers[0].resources.limits["cpu"] == "1e30"
