"""/metrics: after a few kubectl calls the apiserver's Prometheus series carry
upstream's names and labels; the endpoint wants the bearer token."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def scrape(cluster) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = cluster.kubectl("get", "--raw", "/metrics").stdout
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(series: dict, name: str, **labels: str) -> float:
    return sum(v for lab, v in series.get(name, []) if all(lab.get(k) == w for k, w in labels.items()))


def test_request_storage_and_watch_series(cluster, namespace):
    ns = namespace
    cluster.kubectl("-n", ns, "create", "configmap", "m1", "--from-literal=a=b")
    cluster.kubectl("-n", ns, "get", "configmap", "m1", "-o", "json")
    cluster.kubectl("-n", ns, "get", "configmaps")
    cluster.kubectl("-n", ns, "apply", "--server-side", "-f", "-", input=(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m2\ndata:\n  x: hello\n"))
    cluster.kubectl("-n", ns, "delete", "configmap", "m1")
    m = scrape(cluster)

    common = {"group": "", "version": "v1", "resource": "configmaps", "component": "apiserver",
              "subresource": ""}
    assert value(m, "apiserver_request_total", verb="POST", scope="namespace", code="201", **common) >= 1
    assert value(m, "apiserver_request_total", verb="GET", scope="resource", code="200", **common) >= 1
    assert value(m, "apiserver_request_total", verb="LIST", scope="namespace", code="200", **common) >= 1
    assert value(m, "apiserver_request_total", verb="APPLY", scope="resource", **common) >= 1
    assert value(m, "apiserver_request_total", verb="DELETE", scope="resource", code="200", **common) >= 1
    assert value(m, "apiserver_request_duration_seconds_count", verb="LIST", **common) >= 1
    assert value(m, "apiserver_request_duration_seconds_bucket", verb="GET", le="+Inf", **common) >= 1
    # non-resource requests carry their path in `subresource`, as upstream
    assert value(m, "apiserver_request_total", verb="GET", subresource="/api", code="200") >= 1

    assert value(m, "apiserver_storage_objects", resource="configmaps") >= 1
    assert value(m, "apiserver_storage_objects", resource="namespaces") >= 4
    assert value(m, "etcd_request_duration_seconds_count", operation="create", type="configmaps") >= 1
    assert value(m, "etcd_request_duration_seconds_count", operation="get", type="configmaps") >= 1

    # the scheduler, controllers and node agent watch pods through informers
    assert value(m, "apiserver_registered_watchers", group="", version="v1", kind="Pod") >= 1
    assert value(m, "apiserver_longrunning_requests", verb="WATCH", resource="pods") >= 1
    assert "apiserver_watch_events_total" in m


def test_metrics_is_not_for_anonymous_requests(cluster):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        urllib.request.urlopen(cluster.server + "/metrics", context=ctx, timeout=10)
        raise AssertionError("expected 403")
    except urllib.error.HTTPError as e:  # system:anonymous may not get /metrics (system:monitoring may)
        assert e.code == 403
        assert 'User \\"system:anonymous\\" cannot get path \\"/metrics\\"' in e.read().decode()


def test_node_api_takes_service_account_tokens_by_rbac(cluster, namespace):
    """A monitoring service account scrapes the node's /metrics with its own token, as from
    a kubelet (webhook authentication and authorization): allowed by `get nodes/metrics`,
    other paths and accounts refused in the kubelet's words."""
    node = cluster.kjson("get", "node", "node-1")
    addr = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    base = f"https://{addr}:{port}"
    # HTTPS with the node's self-signed pair, as a kubelet's (scrapers skip verification or get its CA)
    pem = ssl.get_server_certificate((addr, port))
    der = ssl.PEM_cert_to_DER_cert(pem)
    from cryptography import x509
    cert = x509.load_der_x509_certificate(der)
    assert cert.subject.rfc4514_string().startswith("CN=node-1@")
    assert cert.issuer.rfc4514_string().startswith("CN=node-1-ca@")
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert addr in {str(i) for i in sans.get_values_for_type(x509.IPAddress)}
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
    ns = ["-n", namespace]
    for sa in ("scraper", "nobody"):
        cluster.kubectl("create", "serviceaccount", sa, *ns)
    role = f"{namespace}-node-metrics"
    cluster.kubectl("create", "clusterrole", role, "--verb=get", "--resource=nodes/metrics")
    try:
        cluster.kubectl("create", "clusterrolebinding", role, f"--clusterrole={role}",
                        f"--serviceaccount={namespace}:scraper")

        def get(path: str, token: str) -> tuple[int, str]:
            req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
            try:
                with urllib.request.urlopen(req, timeout=10, context=insecure) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()

        scraper = cluster.kubectl("create", "token", "scraper", *ns).stdout.strip()
        nobody = cluster.kubectl("create", "token", "nobody", *ns).stdout.strip()
        code, body = cluster.wait_for(lambda: (r := get("/metrics", scraper))[0] == 200 and r, what="scrape allowed")
        assert "kubelet_running_pods" in body
        assert get("/pods", scraper) == (403, f"Forbidden (user=system:serviceaccount:{namespace}:scraper, verb=get, "
                                              "resource=nodes, subresource=proxy)\n")
        assert get("/metrics", nobody)[0] == 403
        assert get("/metrics", "not-a-token") == (401, "Unauthorized\n")
        # the join token is no key to the node API (it is only a node's identity); the apiserver
        # comes with its kube-apiserver-kubelet-client certificate (system:masters), as upstream's
        node_token = (cluster.dir / "data" / "node.token").read_text().strip()
        assert get("/pods", node_token)[0] == 403
        pki = cluster.dir / "data" / "pki"
        as_apiserver = ssl.create_default_context()
        as_apiserver.check_hostname, as_apiserver.verify_mode = False, ssl.CERT_NONE
        as_apiserver.load_cert_chain(pki / "apiserver-kubelet-client.crt", pki / "apiserver-kubelet-client.key")
        with urllib.request.urlopen(base + "/pods", timeout=10, context=as_apiserver) as r:
            assert r.status == 200 and b'"PodList"' in r.read()
    finally:
        cluster.kubectl("delete", "clusterrolebinding", role, "--ignore-not-found")
        cluster.kubectl("delete", "clusterrole", role)
