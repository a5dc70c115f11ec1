"""kubernetes.io's "Create static Pods", on a node agent started with
`--pod-manifest-path` (the kubelet's staticPodPath): a manifest file becomes a
mirror pod `<name>-<node>` that kubectl sees but cannot remove, an edited file
replaces it, a removed file deletes it, and a static pod may not reference
secrets (the apiserver refuses its mirror pod)."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import start_agent, stop_agent

pytestmark = pytest.mark.e2e

STATIC_WEB = """\
apiVersion: v1
kind: Pod
metadata:
  name: static-web
  labels:
    role: myrole
spec:
  containers:
    - name: web
      image: demo:v1
      ports:
        - name: web
          containerPort: 80
          protocol: TCP
"""


def test_static_pods_from_a_manifest_directory(cluster, tmp_path):
    node = f"static-{int(time.time()) % 100000}"
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "static-web.yaml").write_text(STATIC_WEB)
    (manifests / ".hidden.yaml").write_text(STATIC_WEB.replace("static-web", "hidden"))  # ignored, as upstream
    (manifests / "with-secret.yaml").write_text(STATIC_WEB.replace("static-web", "secretive") + """\
  volumes:
    - name: s
      secret:
        secretName: anything
""")
    log = tmp_path / "agent.log"
    agent = start_agent(cluster, node, tmp_path / "agent", "--pod-manifest-path", str(manifests),
                        env={"KYBERN_STATIC_POD_INTERVAL": "1"}, log=log)
    mirror = f"static-web-{node}"

    def pod() -> dict | None:
        p = cluster.kubectl("get", "pod", mirror, "-o", "json", check=False)
        return json.loads(p.stdout) if p.returncode == 0 else None
    try:
        first = cluster.wait_for(lambda: (lambda p: p if p and p["status"].get("phase") == "Running" else None)(pod()),
                                 timeout=60, what="the static pod's mirror pod Running")
        m = first["metadata"]
        assert m["labels"] == {"role": "myrole"} and m["annotations"]["kubernetes.io/config.source"] == "file"
        assert m["annotations"]["kubernetes.io/config.mirror"] == m["annotations"]["kubernetes.io/config.hash"]
        assert [(o["kind"], o["name"]) for o in m["ownerReferences"]] == [("Node", node)]
        assert "serviceAccountName" not in first["spec"] and not first["spec"].get("volumes")  # no token volume
        names = [p["metadata"]["name"] for p in cluster.kjson("get", "pods")["items"]]
        assert f"hidden-{node}" not in names and f"secretive-{node}" not in names
        assert "a mirror pod may not reference secrets" in log.read_text()

        # "If you try to use kubectl to delete the mirror Pod ... the kubelet will recreate the mirror Pod"
        cluster.kubectl("delete", "pod", mirror)
        cluster.wait_for(lambda: (lambda p: p and p["metadata"]["uid"] != m["uid"]
                                  and p["status"].get("phase") == "Running")(pod()), timeout=30,
                         what="the mirror pod made again")
        (manifests / "static-web.yaml").write_text(STATIC_WEB.replace("myrole", "newrole"))
        cluster.wait_for(lambda: (lambda p: p and p["metadata"]["labels"] == {"role": "newrole"})(pod()),
                         timeout=30, what="the edited manifest's pod")
        (manifests / "static-web.yaml").unlink()
        cluster.wait_for(lambda: pod() is None, timeout=30, what="the mirror pod gone with its file")
    finally:
        stop_agent(agent)
        cluster.kubectl("delete", "node", node, "--wait=false", check=False)
