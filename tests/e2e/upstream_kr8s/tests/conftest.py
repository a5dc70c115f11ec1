"""Runs kr8s's own tests (vendored here, see ../README.md) against a private
`kybern up` cluster, shared by every test in this directory.

kr8s's CI runs them on a kind cluster through pytest-kind's `k8s_cluster`
fixture (`.kubectl(*args)`, `.kubeconfig_path`, `.kubectl_path`) with KUBECONFIG
pointing at it; `k8s_cluster` below is that fixture, backed by kybern:

- The kubeconfig is written as kind writes its own (kubeadm's admin.conf): the CA
  inline (certificate-authority-data) and the admin as a client certificate
  (client-certificate-data, client-key-data; CN kubernetes-admin, O system:masters),
  signed by the cluster CA as kubeadm signs it; kr8s's auth tests take these apart.
  `kybern up`'s own kubeconfig names its admin by token instead.
- The tests name public images; kybern never pulls from a registry
  (docs/node.md, Images), so like a user would the fixture imports local
  stand-ins: `gcr.io/google_containers/pause` (kybern's pause, /pause),
  `nginx` (tests/e2e/upstream_python_client's stand-in: the host's nginx on port
  80 serving /usr/share/nginx/html) and `ubuntu` (no files of its own; the host's
  commands on PATH, as the process runtime looks them up).

Most tests are opt-in (KYBERN_SLOW_SUITES=1): the default suite runs DEFAULT,
a broad ~30 s sample. SKIPS and XFAILS say why for the rest (../README.md).
"""

from __future__ import annotations

import base64
import datetime as dt
import gc
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kybern.controllers.csrsigning import sign
from kybern.node.images import ImageStore
from tests.conftest import KUBECTL, Cluster, start_cluster, stop_cluster
from tests.e2e.upstream_python_client.conftest import PATH, import_stand_in_images

PAUSE = Path(__file__).resolve().parents[4] / "kybern" / "node" / "sample_images" / "pause_3.10" / "rootfs"


class KindLikeCluster:
    """pytest-kind's KindCluster, as far as kr8s's tests use it."""

    def __init__(self, c: Cluster, kubeconfig: Path) -> None:
        self.cluster = c
        self.kubeconfig_path = kubeconfig
        self.kubectl_path = Path(KUBECTL)

    def kubectl(self, *args: str, **kwargs: object) -> str:
        # as pytest-kind: check_output, stdout as str, raises on failure
        return subprocess.check_output([str(self.kubectl_path), *args], encoding="utf-8",
                                       env={**os.environ, "KUBECONFIG": str(self.kubeconfig_path)})


def admin_kubeconfig(c: Cluster, path: Path) -> None:
    """kind's kubeconfig shape: one cluster, one client-certificate user, one context."""
    pki = c.dir / "data" / "pki"
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes-admin")])
    req = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    cert = sign(req, ["digital signature", "key encipherment", "client auth"], dt.timedelta(days=1), ca, ca_key)

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    name = "kind-kybern"
    cfg = {
        "apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": name,
        "clusters": [{"name": name, "cluster": {"server": c.server,
                                                "certificate-authority-data": b64((pki / "ca.crt").read_bytes())}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "users": [{"name": name, "user": {
            "client-certificate-data": b64(cert.public_bytes(serialization.Encoding.PEM)),
            "client-key-data": b64(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))}}],
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    path.chmod(0o600)


# kind's kube-system runs pods (coredns, etcd, kube-apiserver, kindnet, ...); kybern's
# control plane and DNS run in-process, so its kube-system is empty. Many kr8s tests
# list "some pod" there or cluster-wide; this one Running pod stands in for them.
KUBE_SYSTEM_STAND_IN = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: kube-system-stand-in, namespace: kube-system}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-system-stand-in}}
  template:
    metadata: {labels: {k8s-app: kube-system-stand-in}}
    spec:
      containers: [{name: pause, image: gcr.io/google_containers/pause}]
"""

# nginx_pod (test_kr8s_objects.py) execs `dd of=/usr/share/nginx/html/foo.dat` and then
# fetches /foo.dat through a port-forward. The process runtime shares the host's
# filesystem (docs/node.md, "Little isolation"), so the exec writes the host's
# /usr/share/nginx/html (the host's nginx package's directory); the stand-in serves its
# own copy of html/ first and that directory after it, which is one directory in a
# real nginx container. The fixture removes foo.dat from the host afterwards.
FOO_DAT = Path("/usr/share/nginx/html/foo.dat")
KR8S_NGINX_CONF = """user root;
daemon off;
master_process off;
worker_processes 1;
pid nginx.pid;
error_log stderr;
events { worker_connections 64; }
http {
    access_log off;
    server {
        listen 80;
        location / { root html; index index.html; try_files $uri $uri/ @shared; }
        location @shared { root /usr/share/nginx/html; }
    }
}
"""


def import_kr8s_nginx(store: ImageStore, work: Path) -> None:
    nginx = work / "nginx-kr8s"
    shutil.copytree(work / "nginx", nginx, symlinks=True)
    (nginx / "usr/share/nginx/conf/nginx.conf").write_text(KR8S_NGINX_CONF)
    img = store.get("nginx:latest")
    assert img is not None
    store.import_dir("nginx:latest", nginx, config=img.config)


@pytest.fixture(scope="package")
def k8s_token(k8s_cluster: KindLikeCluster) -> Iterator[str]:
    """../conftest.py's, package-scoped like k8s_cluster here (kr8s's is session-scoped,
    as pytest-kind's cluster is; this cluster stops when this directory's tests end)."""
    sa = str(Path(__file__).parent / "resources" / "serviceaccount.yaml")
    k8s_cluster.kubectl("apply", "-f", sa)
    yield k8s_cluster.kubectl("create", "token", "pytest")
    k8s_cluster.kubectl("delete", "-f", sa)


@pytest.fixture
def ensure_gc() -> Iterator[None]:
    """kr8s's repository-root conftest.py (not in the wheel): gc before and after a test."""
    gc.collect()
    yield
    gc.collect()


@pytest.fixture(scope="package")
def k8s_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KindLikeCluster]:
    base = tmp_path_factory.mktemp("kr8s")
    had_foo_dat = FOO_DAT.exists()
    c = start_cluster(base)
    try:
        images = base / "images"
        images.mkdir()
        import_stand_in_images(c.dir / "data", images)  # busybox, python, nginx
        store = ImageStore(str(c.dir / "data" / "node"))
        store.import_dir("gcr.io/google_containers/pause:latest", PAUSE, config={"entrypoint": ["/pause"]})
        (images / "ubuntu").mkdir()
        store.import_dir("ubuntu:latest", images / "ubuntu", config={"env": [f"PATH={PATH}"], "cmd": ["bash"]})
        import_kr8s_nginx(store, images)
        c.kubectl("apply", "-f", "-", input=KUBE_SYSTEM_STAND_IN)
        kubeconfig = base / "kind-kubeconfig"
        admin_kubeconfig(c, kubeconfig)
        c.kubectl("rollout", "status", "-n", "kube-system", "deployment/kube-system-stand-in", "--timeout=60s")
        mp = pytest.MonkeyPatch()
        mp.setenv("KUBECONFIG", str(kubeconfig))  # kr8s's clients find the cluster as on kind
        try:
            yield KindLikeCluster(c, kubeconfig)
        finally:
            mp.undo()
    finally:
        stop_cluster(c)
        if not had_foo_dat:
            FOO_DAT.unlink(missing_ok=True)  # nginx_pod's exec wrote it on the host (see import_kr8s_nginx)


# A broad ~30 s sample for the default suite (discovery with trailing slashes, CRUD,
# patch, labels, watch, exec, logs, port-forward, scale, auth by client certificate,
# token, exec plugin and service account); everything runs with KYBERN_SLOW_SUITES=1.
DEFAULT = {
    "test_kr8s_api.py::test_version",
    "test_kr8s_api.py::test_api_versions",
    "test_kr8s_api.py::test_get_pods_as_table",
    "test_kr8s_api.py::test_watch_pods",
    "test_kr8s_api.py::test_get_raw_with_field_selector",
    "test_kr8s_auth.py::test_bad_auth",
    "test_kr8s_auth.py::test_exec",
    "test_kr8s_auth.py::test_token",
    "test_kr8s_objects.py::test_pod_create_and_delete",
    "test_kr8s_objects.py::test_pod_wait_ready",
    "test_kr8s_objects.py::test_patch_pod",
    "test_kr8s_objects.py::test_deployment_scale",
    "test_kr8s_objects.py::test_pod_logs",
    "test_kr8s_objects.py::test_pod_exec",
    "test_kr8s_objects.py::test_pod_port_forward_context_manager",
    "test_kr8s_objects.py::test_pod_watch",
    "test_kr8s_objects.py::test_field_selector",
    "test_kr8s_objects.py::test_node",
    "test_kr8s_objects.py::test_service_proxy",
    "test_kr8s_objects.py::test_objects_from_files",
    "test_kr8s_auth.py::test_service_account",
    "test_kr8s_auth.py::test_certs_on_disk",
}

SKIPS = {
    "test_kr8s_auth.py::test_no_config": (
        os.path.isdir("/var/run/secrets/kubernetes.io/serviceaccount"),
        "kr8s takes /var/run/secrets/kubernetes.io/serviceaccount existing as running in a pod; "
        "a root kybern node makes that directory on the host (docs/node.md, mount namespaces), "
        "a kind node's host has none"),
}

XFAILS = {
    "test_kr8s_api.py::test_api_resources":
        "kybern serves metrics.k8s.io (metrics-server's API) itself, so two resources are named "
        "'pods' (v1 and metrics.k8s.io/v1beta1) as on any cluster with metrics-server; the test "
        "unpacks exactly one (kind has no metrics-server)",
    "test_kr8s_objects.py::test_cast_to_from_kubernetes":
        "the official client 37 loads its models lazily: kubernetes.client.models has no attribute "
        "v1_pod until imported (a client-library difference; no cluster involved)",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    slow = os.environ.get("KYBERN_SLOW_SUITES") == "1"
    for item in items:
        if "upstream_kr8s" not in item.nodeid:
            continue
        key = item.nodeid.rsplit("/", 1)[-1].split("[", 1)[0]
        if not slow and key not in DEFAULT:
            item.add_marker(pytest.mark.skip(reason="kr8s test outside the default sample; "
                                                    "KYBERN_SLOW_SUITES=1 runs it (docs/compatibility.md)"))
        if key in SKIPS and SKIPS[key][0]:
            item.add_marker(pytest.mark.skip(reason=SKIPS[key][1]))
        if "nginx_pod" in getattr(item, "fixturenames", ()) and not FOO_DAT.parent.is_dir():
            item.add_marker(pytest.mark.skip(reason=(
                "nginx_pod writes /usr/share/nginx/html/foo.dat, which is the host's directory here "
                "(see import_kr8s_nginx); this host has no nginx package (scripts/test installs nginx-light)")))
        if key in XFAILS:
            item.add_marker(pytest.mark.xfail(reason=XFAILS[key], strict=True))
