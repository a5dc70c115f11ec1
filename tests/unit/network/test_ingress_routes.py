"""The ingress routing table: host and path semantics as ingress-nginx serves them."""

from __future__ import annotations

import base64

from kybern.network import ingress_routes as routes
from kybern.network.ingress import is_ours
from kybern.network.ingress_certs import self_signed, tls_problem

CERT = self_signed("x")


def ing(name: str, rules: list, *, ns: str = "default", tls: list | None = None, default: dict | None = None,
        created: str = "2024-01-01T00:00:00Z", cls: str | None = None) -> dict:
    spec: dict = {"rules": rules}
    if tls:
        spec["tls"] = tls
    if default:
        spec["defaultBackend"] = default
    if cls:
        spec["ingressClassName"] = cls
    return {"metadata": {"name": name, "namespace": ns, "creationTimestamp": created, "uid": name}, "spec": spec}


def backend(svc: str, port: int | str = 80) -> dict:
    return {"service": {"name": svc, "port": {"name": port} if isinstance(port, str) else {"number": port}}}


def rule(host: str | None, *paths: tuple[str, str, str]) -> dict:
    r: dict = {"http": {"paths": [{"path": p, "pathType": t, "backend": backend(s)} for p, t, s in paths]}}
    if host:
        r["host"] = host
    return r


def svc(name: str, ports: list | None = None, selector: dict | None = None, ns: str = "default") -> dict:
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"ports": ports or [{"port": 80, "targetPort": 8080}], "selector": selector or {"app": name}}}


def pod(name: str, app: str, ip: str = "10.0.0.1", ready: bool = True, ports: list | None = None) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
            "spec": {"containers": [{"name": "c", "ports": ports or []}]},
            "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def sources(ingresses, services=(), pods=(), slices=None, endpoints=None, secrets=None) -> routes.Sources:
    return routes.Sources(ingresses=list(ingresses),
                          services={f"{s['metadata']['namespace']}/{s['metadata']['name']}": s for s in services},
                          slices=slices or {}, endpoints=endpoints or {}, pods=list(pods), secrets=secrets or {})


def build(*args, **kw) -> routes.Model:
    return routes.build(sources(*args, **kw), CERT)


def test_prefix_is_element_wise_and_longest_wins():
    m = build([ing("a", [rule("h.test", ("/", "Prefix", "root"), ("/foo", "Prefix", "foo"),
                                ("/foo/bar/", "Prefix", "bar"))])],
              [svc("root"), svc("foo"), svc("bar")], [pod("p1", "root"), pod("p2", "foo"), pod("p3", "bar")])
    srv = m.server_for("H.test")

    def up(path: str) -> str:
        loc = srv.match(path)
        return loc.upstream if loc else ""

    assert up("/foo") == up("/foo/") == up("/foo/x") == "default-foo-80"
    assert up("/foobar") == "default-root-80"
    assert up("/foo/bar") == up("/foo/bar/baz") == "default-bar-80"


def test_exact_beats_prefix_and_unknown_host_gets_default_server():
    m = build([ing("a", [rule("h.test", ("/api", "Exact", "exact"), ("/api", "Prefix", "prefix"))])],
              [svc("exact"), svc("prefix")])
    srv = m.server_for("h.test")
    assert srv.match("/api").upstream == "default-exact-80"
    assert srv.match("/api/v1").upstream == "default-prefix-80"
    assert srv.match("/other") is None  # no "/" and no defaultBackend: 404
    assert m.server_for("other.test").host == "_"


def test_oldest_ingress_wins_a_duplicate_path():
    old = ing("old", [rule("h.test", ("/", "Prefix", "one"))], created="2024-01-01T00:00:00Z")
    new = ing("new", [rule("h.test", ("/", "Prefix", "two"))], created="2024-02-01T00:00:00Z")
    m = build([new, old], [svc("one"), svc("two")])
    assert m.server_for("h.test").match("/").ingress == "default/old"


def test_default_backend_catches_unmatched_paths_and_hosts():
    m = build([ing("a", [rule("h.test", ("/app", "Prefix", "app"))], default=backend("fallback"))],
              [svc("app"), svc("fallback")])
    assert m.server_for("h.test").match("/elsewhere").upstream == "default-fallback-80"
    assert m.server_for("nowhere.test").match("/").upstream == "default-fallback-80"


def test_wildcard_host_matches_one_label():
    m = build([ing("a", [rule("*.w.test", ("/", "Prefix", "w"))])], [svc("w")])
    assert m.server_for("a.w.test").host == "*.w.test"
    assert m.server_for("a.b.w.test").host == "_"


def test_missing_service_and_port_are_problems_but_others_still_route():
    m = build([ing("a", [rule("h.test", ("/ok", "Prefix", "ok"), ("/gone", "Prefix", "gone"))]),
               ing("b", [{"host": "p.test", "http": {"paths": [
                   {"path": "/", "pathType": "Prefix", "backend": backend("ok", 9999)}]}}])],
              [svc("ok")], [pod("p", "ok")])
    assert m.problems["default/a"] == ["service default/gone does not exist"]
    assert m.problems["default/b"] == ["service default/ok does not have port 9999"]
    srv = m.server_for("h.test")
    assert srv.match("/gone").upstream == ""  # answers 503
    assert m.upstreams[srv.match("/ok").upstream] == [("10.0.0.1", 8080)]


def test_endpoints_prefer_slices_then_endpoints_then_ready_pods():
    s = svc("web", ports=[{"name": "http", "port": 80, "targetPort": "web"}])
    ready, unready = pod("a", "web", "10.0.0.1", ports=[{"name": "web", "containerPort": 8000}]), \
        pod("b", "web", "10.0.0.2", ready=False, ports=[{"name": "web", "containerPort": 8000}])
    i = ing("a", [{"host": "h.test", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": backend("web", "http")}]}}])
    assert build([i], [s], [ready, unready]).upstreams["default-web-http"] == [("10.0.0.1", 8000)]
    eps = {"default/web": {"subsets": [{"addresses": [{"ip": "10.1.0.1"}], "ports": [{"name": "http", "port": 81}]}]}}
    assert build([i], [s], [ready], endpoints=eps).upstreams["default-web-http"] == [("10.1.0.1", 81)]
    slices = {"default/web": [{"ports": [{"name": "http", "port": 82}], "endpoints": [
        {"addresses": ["10.2.0.1"], "conditions": {"ready": True}},
        {"addresses": ["10.2.0.2"], "conditions": {"ready": False}}]}]}
    assert build([i], [s], [ready], slices=slices, endpoints=eps).upstreams["default-web-http"] == \
        [("10.2.0.1", 82)]
    # only where pods stood in for the endpoints can a pod's change move the routes
    assert build([i], [s], [ready]).pod_namespaces == {"default"}
    assert build([i], [s], [ready], endpoints=eps).pod_namespaces == set()
    assert build([i], [s], [ready], slices=slices).pod_namespaces == set()


def tls_secret(crt: bytes, key: bytes) -> dict:
    return {"type": "kubernetes.io/tls", "data": {"tls.crt": base64.b64encode(crt).decode(),
                                                  "tls.key": base64.b64encode(key).decode()}}


def test_tls_hosts_get_their_secret_and_redirect_bad_secret_falls_back():
    good = self_signed("a.test", ["a.test"])
    other = self_signed("b.test")
    secrets = {"default/good": tls_secret(*good), "default/bad": tls_secret(good[0], other[1])}
    m = build([ing("a", [rule("a.test", ("/", "Prefix", "s")), rule("b.test", ("/", "Prefix", "s"))],
                   tls=[{"hosts": ["a.test"], "secretName": "good"}, {"hosts": ["b.test"], "secretName": "bad"}]),
               ing("c", [rule("c.test", ("/", "Prefix", "s"))], tls=[{"hosts": ["c.test"], "secretName": "none"}])],
              [svc("s")], secrets=secrets)
    a, b = m.server_for("a.test"), m.server_for("b.test")
    assert a.cert == "default-good" and m.certs["default-good"] == good and a.redirect
    assert b.cert == routes.DEFAULT_CERT and b.redirect
    assert "does not match" in m.problems["default/a"][0]
    assert m.problems["default/c"] == ["secret default/none does not exist"]
    assert not m.server_for("_").redirect


def test_tls_problem_messages():
    assert tls_problem(None, "ns/x") == "secret ns/x does not exist"
    assert "tls.crt and tls.key" in tls_problem({"data": {}}, "ns/x")
    assert "not a valid TLS secret" in tls_problem(tls_secret(b"junk", b"junk"), "ns/x")
    assert tls_problem(tls_secret(*CERT), "ns/x") is None


def test_class_selection():
    mine = {"metadata": {"name": "kybern", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
            "spec": {"controller": "kybern.io/ingress-nginx"}}
    other = {"metadata": {"name": "other"}, "spec": {"controller": "example.com/other"}}
    assert is_ours(ing("a", [], cls="kybern"), [mine, other])
    assert not is_ours(ing("a", [], cls="other"), [mine, other])
    assert is_ours(ing("a", []), [mine, other])  # no class: the default class
    not_default = {**mine, "metadata": {"name": "kybern"}}
    assert not is_ours(ing("a", []), [not_default])
    legacy = ing("a", [])
    legacy["metadata"]["annotations"] = {"kubernetes.io/ingress.class": "kybern"}
    assert is_ours(legacy, [mine])
