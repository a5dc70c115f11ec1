"""A claim without a class gets the default StorageClass (`local-path`), as the
DefaultStorageClass admission plugin does upstream."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e

PVC = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Mi}}
"""


def test_claim_without_class_gets_the_default(cluster, namespace):
    cluster.wait_for(lambda: "local-path" in cluster.kubectl("get", "storageclass", check=False).stdout,
                     timeout=20, what="the local-path StorageClass")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=PVC)
    pvc = cluster.kjson("get", "pvc", "data", "-n", namespace)
    assert pvc["spec"]["storageClassName"] == "local-path"
    assert pvc["status"]["phase"] == "Pending"  # WaitForFirstConsumer: bound once a pod uses it
