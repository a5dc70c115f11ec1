"""The root CA publisher: every namespace has the ConfigMap kube-root-ca.crt
holding the cluster's CA (what in-cluster clients verify the apiserver with),
made again if deleted and put back if edited, as upstream."""

from __future__ import annotations

import json
import ssl


def test_every_namespace_has_kube_root_ca(cluster, namespace):
    ca = (cluster.dir / "data" / "pki" / "ca.crt").read_text()

    def published() -> dict | None:
        r = cluster.kubectl("get", "configmap", "kube-root-ca.crt", "-n", namespace, "-o", "json", check=False)
        return json.loads(r.stdout) if r.returncode == 0 else None
    cm = cluster.wait_for(published, timeout=20, what="kube-root-ca.crt in a new namespace")
    assert cm["data"] == {"ca.crt": ca}
    assert "kube-apiserver" in cm["metadata"]["annotations"]["kubernetes.io/description"]
    ssl.create_default_context(cadata=cm["data"]["ca.crt"])  # a usable PEM bundle
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert cluster.kjson("get", "configmap", "kube-root-ca.crt", "-n", ns)["data"]["ca.crt"] == ca

    cluster.kubectl("patch", "configmap", "kube-root-ca.crt", "-n", namespace, "--type=merge",
                    "-p", '{"data": {"ca.crt": "tampered", "extra": "x"}}')
    cluster.wait_for(lambda: (published() or {}).get("data") == {"ca.crt": ca}, timeout=20,
                     what="the edited CA put back")
    uid = published()["metadata"]["uid"]
    cluster.kubectl("delete", "configmap", "kube-root-ca.crt", "-n", namespace)
    again = cluster.wait_for(lambda: (c := published()) and c["metadata"]["uid"] != uid and c, timeout=20,
                             what="the deleted ConfigMap made again")
    assert again["data"] == {"ca.crt": ca}
