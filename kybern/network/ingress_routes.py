"""What the ingress data plane should do, computed from API objects: the routing
table (servers by host, locations by path, upstream endpoints, certificates)
that both data planes — nginx (ingress_nginx.py) and the built-in proxy
(ingress_builtin.py) — serve. Pure functions of their inputs, so the semantics
are unit tested without a server.

Semantics follow ingress-nginx:
- one server per host; rules without a host, and requests for unknown hosts, go
  to the default server `_`;
- `Exact` matches the path exactly; `Prefix` (and, here, `ImplementationSpecific`)
  matches element-wise (`/foo` matches `/foo`, `/foo/`, `/foo/bar`, not `/foobar`);
  an exact match beats any prefix, and the longest prefix wins;
- when several Ingresses define the same host and path, the oldest one wins;
- a host without a `/` path falls back to its Ingress's `defaultBackend`, else the
  default 404; the default server's `/` is the oldest classless-host defaultBackend;
- a backend whose Service is missing, or that has no ready endpoints, answers 503;
- a host listed under `spec.tls` is served with its Secret's certificate (or the
  default self-signed one when the Secret is missing or malformed) and plain HTTP
  requests to it are redirected to HTTPS with 308.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kybern.network.ingress_certs import tls_problem

Obj = dict[str, Any]
DEFAULT_SERVER = "_"
DEFAULT_CERT = "default"


@dataclass
class Location:
    path: str        # normalised: no trailing slash except for "/"
    exact: bool
    upstream: str    # key into Model.upstreams; "" means 503 (no such Service/port)
    ingress: str     # ns/name of the Ingress that defined it


@dataclass
class Server:
    host: str
    locations: list[Location] = field(default_factory=list)
    cert: str | None = None  # key into Model.certs when the host has TLS
    redirect: bool = False   # HTTP → HTTPS (308)

    def match(self, path: str) -> Location | None:
        """The location a request path selects: exact first, then the longest prefix."""
        best: Location | None = None
        for loc in self.locations:
            if loc.exact:
                if path == loc.path:
                    return loc
            elif prefix_matches(loc.path, path) and (best is None or len(loc.path) > len(best.path)):
                best = loc
        return best


@dataclass
class Model:
    servers: dict[str, Server] = field(default_factory=dict)
    upstreams: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    certs: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)  # id -> (cert PEM, key PEM)
    problems: dict[str, list[str]] = field(default_factory=dict)  # ingress ns/name -> warnings
    # namespaces with a backend resolved from pods (no EndpointSlice nor Endpoints yet):
    # only there can a pod's change move the routes
    pod_namespaces: set[str] = field(default_factory=set)

    def server_for(self, host: str) -> Server:
        """The server a Host header (port stripped, any case) selects."""
        host = host.lower()
        if host in self.servers:
            return self.servers[host]
        parts = host.split(".", 1)
        if len(parts) == 2 and f"*.{parts[1]}" in self.servers:
            return self.servers[f"*.{parts[1]}"]
        return self.servers[DEFAULT_SERVER]


def prefix_matches(prefix: str, path: str) -> bool:
    """Element-wise prefix match, as the Ingress API defines `Prefix`."""
    if prefix == "/":
        return True
    return path == prefix or path.startswith(prefix + "/")


def normalise_path(path: str | None) -> str:
    p = path or "/"
    if not p.startswith("/"):
        p = "/" + p
    return p.rstrip("/") or "/"


@dataclass
class Sources:
    """The informer caches the model is computed from (lists of dicts)."""
    ingresses: list[Obj]
    services: dict[str, Obj]                 # ns/name -> Service
    slices: dict[str, list[Obj]]             # ns/service -> its EndpointSlices
    endpoints: dict[str, Obj]                # ns/name -> Endpoints
    pods: list[Obj]
    secrets: dict[str, Obj]                  # ns/name -> Secret


def _age_key(ing: Obj) -> tuple[str, str, str]:
    m = ing["metadata"]
    return (m.get("creationTimestamp") or "", m.get("namespace") or "", m["name"])


def build(src: Sources, default_cert: tuple[bytes, bytes]) -> Model:
    """The whole routing table for the Ingresses in `src` (already filtered to ours)."""
    model = Model(certs={DEFAULT_CERT: default_cert})
    model.servers[DEFAULT_SERVER] = Server(DEFAULT_SERVER)
    for ing in sorted(src.ingresses, key=_age_key):
        _add_ingress(model, src, ing)
    for srv in model.servers.values():  # exact locations first: the order nginx renders them in
        srv.locations.sort(key=lambda loc: (not loc.exact, -len(loc.path), loc.path))
    return model


def _add_ingress(model: Model, src: Sources, ing: Obj) -> None:
    ns, name = ing["metadata"]["namespace"], ing["metadata"]["name"]
    key = f"{ns}/{name}"
    problems = model.problems.setdefault(key, [])
    spec = ing.get("spec") or {}

    def upstream(backend: Obj | None) -> str:
        svc = (backend or {}).get("service")
        if not svc:  # resource backends are not supported: 503
            return ""
        up, problem = _upstream(src, ns, svc, model)
        if problem and problem not in problems:
            problems.append(problem)
        return up

    default_up = upstream(spec["defaultBackend"]) if spec.get("defaultBackend") else None
    hosts: list[str] = []
    for rule in spec.get("rules") or []:
        host = (rule.get("host") or DEFAULT_SERVER).lower()
        srv = model.servers.setdefault(host, Server(host))
        hosts.append(host)
        for p in (rule.get("http") or {}).get("paths") or []:
            path = normalise_path(p.get("path"))
            exact = p.get("pathType") == "Exact"
            if any(loc.path == path and loc.exact == exact for loc in srv.locations):
                continue  # an older Ingress already owns this host+path
            srv.locations.append(Location(path, exact, upstream(p.get("backend")), key))
    if default_up is not None:
        # the Ingress's defaultBackend catches what its hosts' paths do not, and
        # (for the oldest such Ingress) what no host matches
        for host in set(hosts) | {DEFAULT_SERVER}:
            srv = model.servers[host]
            if not any(loc.path == "/" and not loc.exact for loc in srv.locations):
                srv.locations.append(Location("/", False, default_up, key))
    for tls in spec.get("tls") or []:
        cert_id = DEFAULT_CERT
        secret_name = tls.get("secretName")
        if secret_name:
            secret = src.secrets.get(f"{ns}/{secret_name}")
            problem = tls_problem(secret, f"{ns}/{secret_name}")
            if problem:
                problems.append(problem)
            else:
                assert secret is not None
                cert_id = f"{ns}-{secret_name}"
                model.certs[cert_id] = (_b64(secret, "tls.crt"), _b64(secret, "tls.key"))
        for host in [h.lower() for h in tls.get("hosts") or []] or [h for h in hosts if h != DEFAULT_SERVER]:
            srv = model.servers.setdefault(host, Server(host))
            if srv.cert is None or srv.cert == DEFAULT_CERT:
                srv.cert = cert_id
            srv.redirect = True


def _b64(secret: Obj, key: str) -> bytes:
    import base64

    return base64.b64decode((secret.get("data") or {}).get(key) or "")


def _upstream(src: Sources, ns: str, backend: Obj, model: Model) -> tuple[str, str | None]:
    """(upstream id, problem): resolve a Service backend to its ready endpoints."""
    name = backend.get("name", "")
    port = backend.get("port") or {}
    svc = src.services.get(f"{ns}/{name}")
    if svc is None:
        return "", f"service {ns}/{name} does not exist"
    want = port.get("name") if port.get("name") else port.get("number")
    sport = next((p for p in (svc.get("spec") or {}).get("ports") or []
                  if (p.get("name") == want if isinstance(want, str) else p.get("port") == want)), None)
    if sport is None:
        return "", f"service {ns}/{name} does not have port {want}"
    up = f"{ns}-{name}-{want}"
    if up not in model.upstreams:
        model.upstreams[up] = resolve_endpoints(src, svc, sport)
        if not src.slices.get(f"{ns}/{name}") and src.endpoints.get(f"{ns}/{name}") is None:
            model.pod_namespaces.add(ns)  # as resolve_endpoints: its last resort
    return up, None


def resolve_endpoints(src: Sources, svc: Obj, sport: Obj) -> list[tuple[str, int]]:
    """Ready (address, port) pairs behind one Service port. EndpointSlices first
    (as ingress-nginx); while no slice exists for the Service, the Endpoints
    object; while neither exists, the ready pods the selector picks (a small
    stand-in for the endpoint controllers, kept until they always run)."""
    ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
    pname = sport.get("name") or ""
    out: list[tuple[str, int]] = []
    slices = src.slices.get(f"{ns}/{name}")
    if slices:
        for sl in slices:
            port = next((p.get("port") for p in sl.get("ports") or [] if (p.get("name") or "") == pname), None)
            if port is None:
                continue
            for ep in sl.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready", True) is not False:
                    out += [(a, int(port)) for a in ep.get("addresses") or []]
        return sorted(set(out))
    eps = src.endpoints.get(f"{ns}/{name}")
    if eps is not None:
        for subset in eps.get("subsets") or []:
            port = next((p.get("port") for p in subset.get("ports") or [] if (p.get("name") or "") == pname), None)
            if port is not None:
                out += [(a["ip"], int(port)) for a in subset.get("addresses") or [] if a.get("ip")]
        return sorted(set(out))
    selector = (svc.get("spec") or {}).get("selector")
    if not selector:
        return []
    target = sport.get("targetPort", sport.get("port"))
    for pod in src.pods:
        m, st = pod["metadata"], pod.get("status") or {}
        if m.get("namespace") != ns or m.get("deletionTimestamp") or not st.get("podIP"):
            continue
        labels = m.get("labels") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            continue
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or []):
            continue
        port = _container_port(pod, target)
        if port is not None:
            out.append((st["podIP"], port))
    return sorted(set(out))


def _container_port(pod: Obj, target: Any) -> int | None:
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return int(target)
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target:
                return int(p["containerPort"])
    return None
