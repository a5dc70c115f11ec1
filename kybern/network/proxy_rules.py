"""What the service proxy must do, as data, and that data as kernel rules.

`build()` turns Services and EndpointSlices into one `ServicePort` per
(Service, port): the addresses it answers on (cluster IPs, the NodePort on
every local address, LoadBalancer ingress IPs) and the endpoints it forwards
to, chosen as kube-proxy does: the `ready` endpoints; if none, the `serving`
and `terminating` ones (so connections drain during a rollout).

`render_nft()` and `render_iptables()` write that as one ruleset file, applied
in a single transaction (`nft -f`, `iptables-restore`) so a reload never
leaves a moment without rules. Both do the same things:
- DNAT in PREROUTING (pods: this node's own, once its pod CIDR is known, and
  traffic from outside the cluster CIDR) and OUTPUT (host processes) to one
  endpoint chosen at random with equal probability;
- `sessionAffinity: ClientIP`: a client keeps its endpoint for
  `timeoutSeconds` (nft: a dynamic set per endpoint; iptables: `recent`);
- masquerade traffic that does not come from a pod (host processes,
  127.0.0.1 NodePorts) and hairpin traffic (a pod reaching itself through its
  Service), and pod traffic leaving the cluster CIDR;
- reject traffic to a Service port without endpoints, and to any address of
  the service CIDR no Service has, instead of letting it go to the default
  route.
Pure functions: unit tested without root.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MASQ_MARK = 0x4000
DEFAULT_AFFINITY_TIMEOUT = 10800  # upstream's default sessionAffinityConfig.clientIP.timeoutSeconds


@dataclass
class ServicePort:
    key: str  # "ns/name:portname"
    protocol: str  # tcp | udp | sctp
    port: int
    cluster_ips: list[str] = field(default_factory=list)
    node_port: int = 0
    lb_ips: list[str] = field(default_factory=list)
    endpoints: list[tuple[str, int]] = field(default_factory=list)
    affinity: int = 0  # seconds; 0 = none

    @property
    def ident(self) -> str:
        return hashlib.sha1(self.key.encode()).hexdigest()[:12]

    def ep_ident(self, ep: tuple[str, int]) -> str:
        return hashlib.sha1(f"{self.key}/{ep[0]}:{ep[1]}".encode()).hexdigest()[:12]


def _endpoints_for(port: dict[str, Any], slices: list[dict[str, Any]]) -> list[tuple[str, int]]:
    name, proto = port.get("name") or "", port.get("protocol") or "TCP"
    ready: list[tuple[str, int]] = []
    draining: list[tuple[str, int]] = []
    for sl in slices:
        if sl.get("addressType", "IPv4") != "IPv4":
            continue
        target = next((p.get("port") for p in sl.get("ports") or []
                       if (p.get("name") or "") == name and (p.get("protocol") or "TCP") == proto), None)
        if not target:
            continue
        for ep in sl.get("endpoints") or []:
            cond = ep.get("conditions") or {}
            is_ready = cond.get("ready") is not False  # nil means ready
            serving = cond.get("serving", is_ready) is not False
            terminating = bool(cond.get("terminating"))
            for addr in (ep.get("addresses") or [])[:1]:  # one address per endpoint, as upstream
                if is_ready and not terminating:
                    ready.append((addr, int(target)))
                elif serving and terminating:
                    draining.append((addr, int(target)))
    return sorted(set(ready or draining))


def build(services: list[dict[str, Any]], slices: list[dict[str, Any]]) -> list[ServicePort]:
    """One ServicePort per port of every proxied Service."""
    by_svc: dict[str, list[dict[str, Any]]] = {}
    for sl in slices:
        m = sl.get("metadata") or {}
        svc = (m.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if svc and not m.get("deletionTimestamp"):
            by_svc.setdefault(f"{m.get('namespace')}/{svc}", []).append(sl)
    out = []
    for svc in services:
        m, spec = svc["metadata"], svc.get("spec") or {}
        typ = spec.get("type") or "ClusterIP"
        ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip and ip != "None" and ":" not in ip]
        if typ == "ExternalName" or not ips:
            continue
        name = f"{m.get('namespace')}/{m['name']}"
        lb = [i["ip"] for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
              if i.get("ip") and ":" not in i["ip"]] if typ == "LoadBalancer" else []
        affinity = 0
        if spec.get("sessionAffinity") == "ClientIP":
            affinity = int(((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds")
                           or DEFAULT_AFFINITY_TIMEOUT)
        for p in spec.get("ports") or []:
            out.append(ServicePort(
                key=f"{name}:{p.get('name') or ''}", protocol=(p.get("protocol") or "TCP").lower(),
                port=int(p["port"]), cluster_ips=ips,
                node_port=int(p.get("nodePort") or 0) if typ in ("NodePort", "LoadBalancer") else 0,
                lb_ips=lb, endpoints=_endpoints_for(p, by_svc.get(name, [])), affinity=affinity))
    return sorted(out, key=lambda s: s.key)


# -- nftables -------------------------------------------------------------------------
def prerouting_sources(cluster_cidr: str, pod_cidr: str | None) -> list[str]:
    """Whose routed traffic this proxy handles: with the node's pod CIDR known, its
    own pods' and what comes from outside the cluster CIDR, not other nodes' pods
    (their own proxies handle them): several clusters on one machine all answer on
    10.96.0.1, and a pod must reach its own cluster's."""
    return [f"ip saddr {pod_cidr}", f"ip saddr != {cluster_cidr}"] if pod_cidr else [""]


def render_nft(table: str, ports: list[ServicePort], cluster_cidr: str, service_cidr: str,
               pod_cidr: str | None = None) -> str:
    """A complete `nft -f` script replacing table `ip <table>` in one transaction."""
    L = [f"table ip {table}", f"delete table ip {table}", f"table ip {table} {{"]
    chains: list[str] = []
    dispatch: list[str] = []
    no_ep: list[str] = []
    for sp in ports:
        proto = sp.protocol
        addrs = [f"ip daddr {ip} {proto} dport {sp.port}" for ip in sp.cluster_ips + sp.lb_ips]
        if sp.node_port:
            addrs.append(f"fib daddr type local {proto} dport {sp.node_port}")
        if not sp.endpoints:
            no_ep += [f"{a} reject" for a in addrs]
            continue
        svc = f"svc_{sp.ident}"
        dispatch += [f'{a} jump {svc} comment "{sp.key}"' for a in addrs]
        body = [f"ip saddr != {cluster_cidr} meta mark set meta mark | {MASQ_MARK:#x}"]
        eps = [(ep, f"ep_{sp.ep_ident(ep)}") for ep in sp.endpoints]
        if sp.affinity:
            for _ep, name in eps:
                L.append(f"  set aff_{name[3:]} {{ type ipv4_addr; flags dynamic,timeout; timeout {sp.affinity}s; }}")
                body.append(f"ip saddr @aff_{name[3:]} goto {name}")
        if len(eps) == 1:
            body.append(f"goto {eps[0][1]}")
        else:
            vmap = ", ".join(f"{i} : goto {name}" for i, (_ep, name) in enumerate(eps))
            body.append(f"numgen random mod {len(eps)} vmap {{ {vmap} }}")
        chains.append(_chain(svc, body))
        for (ip, port), name in eps:
            eb = [f"ip saddr {ip} meta mark set meta mark | {MASQ_MARK:#x}"]
            if sp.affinity:
                eb.append(f"update @aff_{name[3:]} {{ ip saddr }}")
            eb.append(f"meta l4proto {proto} dnat to {ip}:{port}")
            chains.append(_chain(name, eb))
    L.append(_chain("services", dispatch))
    L += chains
    L.append(_chain("nat_prerouting", [f"{m} jump services".strip() for m in prerouting_sources(cluster_cidr, pod_cidr)],
                    "type nat hook prerouting priority -100; policy accept;"))
    L.append(_chain("nat_output", ["jump services"], "type nat hook output priority -100; policy accept;"))
    L.append(_chain("nat_postrouting", [
        f"meta mark & {MASQ_MARK:#x} == {MASQ_MARK:#x} meta mark set meta mark ^ {MASQ_MARK:#x} masquerade",
        f"ip saddr {cluster_cidr} ip daddr != {cluster_cidr} fib daddr type != local masquerade",
    ], "type nat hook postrouting priority 100; policy accept;"))
    reject = no_ep + [f"ip daddr {service_cidr} reject"]
    L.append(_chain("filter_output", reject, "type filter hook output priority 0; policy accept;"))
    L.append(_chain("filter_forward", reject, "type filter hook forward priority 0; policy accept;"))
    L.append("}")
    return "\n".join(L) + "\n"


def _chain(name: str, rules: list[str], head: str = "") -> str:
    inner = ([f"    {head}"] if head else []) + [f"    {r}" for r in rules]
    return f"  chain {name} {{\n" + "\n".join(inner) + "\n  }"


def nft_cleanup(table: str) -> str:
    return f"table ip {table}\ndelete table ip {table}\n"


# -- iptables ---------------------------------------------------------------------------
def render_iptables(prefix: str, ports: list[ServicePort], cluster_cidr: str, service_cidr: str,
                    pod_cidr: str | None = None) -> str:
    """An `iptables-restore --noflush` script owning chains `<prefix>-*` in the nat
    and filter tables (hooked from the built-in chains by `iptables_hooks`)."""
    P = prefix.upper()[:10]
    nat_chains = [f"{P}-SERVICES", f"{P}-PREROUTING", f"{P}-POSTROUTING"]
    nat: list[str] = []
    for m in prerouting_sources(cluster_cidr, pod_cidr):
        m = m.replace("ip saddr != ", "! -s ").replace("ip saddr ", "-s ")
        nat.append(f"-A {P}-PREROUTING {m} -j {P}-SERVICES".replace("  ", " "))
    flt: list[str] = []
    for sp in ports:
        proto = sp.protocol
        matches = [f"-d {ip}/32 -p {proto} --dport {sp.port}" for ip in sp.cluster_ips + sp.lb_ips]
        if sp.node_port:
            matches.append(f"-m addrtype --dst-type LOCAL -p {proto} --dport {sp.node_port}")
        if not sp.endpoints:
            flt += [f"-A {P}-FILTER {m} -j REJECT" for m in matches]
            continue
        svc = f"{P}-S-{sp.ident}"[:28]
        nat_chains.append(svc)
        nat += [f'-A {P}-SERVICES {m} -m comment --comment "{sp.key}" -j {svc}' for m in matches]
        nat.append(f"-A {svc} ! -s {cluster_cidr} -j MARK --or-mark {MASQ_MARK:#x}")
        eps = [(ep, f"{P}-E-{sp.ep_ident(ep)}"[:28]) for ep in sp.endpoints]
        if sp.affinity:
            for _ep, name in eps:
                nat.append(f"-A {svc} -m recent --name {name} --rcheck --seconds {sp.affinity} --reap -j {name}")
        n = len(eps)
        for i, (_ep, name) in enumerate(eps):
            if i < n - 1:  # kube-proxy's chain of probabilities: 1/n, 1/(n-1), ... 1
                nat.append(f"-A {svc} -m statistic --mode random --probability {1 / (n - i):.10f} -j {name}")
            else:
                nat.append(f"-A {svc} -j {name}")
        for (ip, port), name in eps:
            nat_chains.append(name)
            nat.append(f"-A {name} -s {ip}/32 -j MARK --or-mark {MASQ_MARK:#x}")
            rec = f" -m recent --name {name} --set" if sp.affinity else ""
            nat.append(f"-A {name} -p {proto}{rec} -j DNAT --to-destination {ip}:{port}")
    nat.append(f"-A {P}-POSTROUTING -m mark --mark {MASQ_MARK:#x}/{MASQ_MARK:#x} -j MASQUERADE")
    nat.append(f"-A {P}-POSTROUTING -s {cluster_cidr} ! -d {cluster_cidr} -m addrtype ! --dst-type LOCAL "
               f"-j MASQUERADE")
    flt.append(f"-A {P}-FILTER -d {service_cidr} -j REJECT")
    out = ["*nat"] + [f":{c} - [0:0]" for c in nat_chains] + nat + ["COMMIT",
           "*filter", f":{P}-FILTER - [0:0]"] + flt + ["COMMIT"]
    return "\n".join(out) + "\n"


def iptables_hooks(prefix: str) -> list[tuple[str, str, str]]:
    """(table, built-in chain, our chain): jumps installed once with `-I`."""
    P = prefix.upper()[:10]
    return [("nat", "PREROUTING", f"{P}-PREROUTING"), ("nat", "OUTPUT", f"{P}-SERVICES"),
            ("nat", "POSTROUTING", f"{P}-POSTROUTING"), ("filter", "OUTPUT", f"{P}-FILTER"),
            ("filter", "FORWARD", f"{P}-FILTER")]
