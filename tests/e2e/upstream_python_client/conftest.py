"""Runs the official Python client's own e2e tests (vendored here, see README.md)
against a private `kybern up` cluster: the tests read the kube config at
`kube_config.KUBE_CONFIG_DEFAULT_LOCATION` (base.get_e2e_configuration), which
this fixture points at the cluster's kubeconfig.

The tests name public images (`busybox`, `python`, `nginx`). kybern never pulls
from a registry (docs/node.md, Images); like a user would, the fixture imports
local stand-ins under those names before the tests run:

- `busybox`: no files of its own, busybox's PATH; commands (`sh`, `date`, `gzip`,
  `seq`, `uptime`, `cat`, ...) are the host's, as the process runtime looks them up.
- `python`: `/usr/local/bin/python` -> the host's python3, as in the python image.
- `nginx`: the host's nginx serving nginx's welcome page on port 80 (Python's http.server
  when the host has no nginx).

`nginx:1.15.4`, `nginx:1.7.9` and `k8s.gcr.io/pause:2.0` are not imported: the
tests that name them only check the stored objects, and their pods wait in
ImagePullBackOff as they would on a node without registry access.

Two settings of the test bed, neither of them in the tests:
- The node samples usage every 2 s (`KYBERN_STATS_INTERVAL`, as one would lower
  metrics-server's `--metric-resolution`): test_metrics_utilities_integration
  reads pod metrics 10 s after its pod runs, and a pod has metrics after two
  samples (docs/autoscaling.md), up to 20 s with the default 10 s interval.
- `SharedInformer.stop()` (kubernetes 37.0.2) can hang: when it is called after
  the informer's initial list but before its watch request has returned, it sets
  the stop flag while `_watch` has no response to shut down; the thread then
  watches on until an event arrives, so `stop()`'s join waits forever (against
  any apiserver: an idle watch without timeoutSeconds stays open 30-60 min).
  `_stop_informer` retries the watch's shutdown while joining, which is what
  stop() would need to do; it changes nothing else.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kybern.node.images import ImageStore
from tests.conftest import Cluster, start_cluster, stop_cluster

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

WELCOME = """<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>
</body>
</html>
"""


NGINX_CONF = """user root;
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
        location / { root html; index index.html; }
    }
}
"""


def import_stand_in_images(data_dir: Path, work: Path) -> None:
    store = ImageStore(str(data_dir / "node"))
    busybox = work / "busybox"
    busybox.mkdir()
    store.import_dir("busybox:latest", busybox, config={"env": [f"PATH={PATH}"], "cmd": ["sh"]})

    python = work / "python"
    (python / "usr/local/bin").mkdir(parents=True)
    host_python = shutil.which("python3", path=PATH) or sys.executable
    os.symlink(host_python, python / "usr/local/bin/python")
    os.symlink(host_python, python / "usr/local/bin/python3")
    store.import_dir("python:latest", python, config={"env": [f"PATH=/usr/local/bin:{PATH}"],
                                                      "cmd": ["python3"]})

    nginx = work / "nginx"
    (nginx / "usr/share/nginx/html").mkdir(parents=True)
    (nginx / "usr/share/nginx/conf").mkdir(parents=True)
    (nginx / "usr/share/nginx/html/index.html").write_text(WELCOME)
    (nginx / "usr/share/nginx/conf/nginx.conf").write_text(NGINX_CONF)
    if shutil.which("nginx", path=PATH):  # the host's nginx (scripts/test installs nginx-light)
        # paths relative to the prefix, the container's copy of usr/share/nginx: nginx listens
        # within a few ms of its start, as the test expects (it forwards as soon as the pod runs)
        cmd = ["nginx", "-p", "./", "-c", "conf/nginx.conf"]
    else:
        cmd = [host_python, "-m", "http.server", "80", "--directory", "html"]
    store.import_dir("nginx:latest", nginx, config={
        "env": [f"PATH={PATH}"], "workingDir": "/usr/share/nginx", "cmd": cmd})


def _stop_informer(self) -> None:
    self._stop_event.set()
    while self._thread is not None and self._thread.is_alive():
        if self._watch is not None:
            self._watch.stop()
        self._thread.join(0.5)
    self._thread = None


@pytest.fixture(scope="package", autouse=True)
def upstream_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from kubernetes.config import kube_config
    from kubernetes.informer import SharedInformer

    base = tmp_path_factory.mktemp("pyclient")
    mp = pytest.MonkeyPatch()
    mp.setenv("KYBERN_STATS_INTERVAL", "2")
    mp.setattr(SharedInformer, "stop", _stop_informer)
    try:
        c = start_cluster(base)
    finally:
        mp.delenv("KYBERN_STATS_INTERVAL")
    try:
        (base / "images").mkdir()
        import_stand_in_images(c.dir / "data", base / "images")
        saved = kube_config.KUBE_CONFIG_DEFAULT_LOCATION
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(c.kubeconfig)
        try:
            yield c
        finally:
            kube_config.KUBE_CONFIG_DEFAULT_LOCATION = saved
    finally:
        mp.undo()
        stop_cluster(c)


# Tests of the client library alone (no cluster) that the installed client fails:
# the vendored test file is newer than kubernetes==37.0.2.
CLIENT_ONLY_FAILURES = {
    "test_pyclient_utils.py::TestUtilsUnitTests::test_format_quantity":
        "kubernetes 37.0.2's utils.quantity.format_quantity(Decimal(0.000_000_001), 'n') gives "
        "'1.000000000000000062281591458n', not '1n' (a client-library unit test; no cluster involved)",
}


# Tests that need what kybern cannot give without root.
NEEDS_ROOT = {
    "test_pyclient_client.py::TestClient::test_portforward_raw":
        "runs /opt/port-server.py from a configMap volume mounted at /opt: volumes at absolute "
        "mountPaths need a mount namespace per container, which the process runtime makes as root "
        "only (docs/node.md)",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for suffix, reason in CLIENT_ONLY_FAILURES.items():
            if item.nodeid.endswith(suffix):
                item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
        for suffix, reason in NEEDS_ROOT.items():
            if item.nodeid.endswith(suffix) and os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason=reason))
