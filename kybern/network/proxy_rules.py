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
- traffic policies: `internalTrafficPolicy: Local` sends cluster IP traffic only to
  this node's endpoints, `externalTrafficPolicy: Local` NodePort and LoadBalancer
  traffic from outside only to this node's endpoints with the client's address
  kept (pods and the node itself still get every endpoint); none on this node:
  dropped, as kube-proxy does;
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
DROP_MARK = 0x8000  # iptables: what a traffic policy with no local endpoint drops (KUBE-MARK-DROP)
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
    # traffic policies (Local: only this node's endpoints); None = Cluster
    local_endpoints: list[tuple[str, int]] | None = None  # this node's, when a policy is Local
    internal_local: bool = False  # internalTrafficPolicy: Local (cluster IPs)
    external_local: bool = False  # externalTrafficPolicy: Local (NodePort, LoadBalancer IPs)

    @property
    def external_addresses(self) -> bool:
        return bool(self.node_port or self.lb_ips)

    @property
    def ident(self) -> str:
        return hashlib.sha1(self.key.encode()).hexdigest()[:12]

    def ep_ident(self, ep: tuple[str, int]) -> str:
        return hashlib.sha1(f"{self.key}/{ep[0]}:{ep[1]}".encode()).hexdigest()[:12]


def _endpoints_for(port: dict[str, Any], slices: list[dict[str, Any]], node: str | None
                   ) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(cluster, local): the usable endpoints, and those on `node`, each the ready ones
    or else the serving terminating ones (CategorizeEndpoints, separately for each)."""
    name, proto = port.get("name") or "", port.get("protocol") or "TCP"
    ready: list[tuple[str, int]] = []
    draining: list[tuple[str, int]] = []
    local_ready: list[tuple[str, int]] = []
    local_draining: list[tuple[str, int]] = []
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
            local = node is not None and ep.get("nodeName") == node
            for addr in (ep.get("addresses") or [])[:1]:  # one address per endpoint, as upstream
                if is_ready and not terminating:
                    ready.append((addr, int(target)))
                    if local:
                        local_ready.append((addr, int(target)))
                elif serving and terminating:
                    draining.append((addr, int(target)))
                    if local:
                        local_draining.append((addr, int(target)))
    return sorted(set(ready or draining)), sorted(set(local_ready or local_draining))


def build(services: list[dict[str, Any]], slices: list[dict[str, Any]], node: str | None = None
          ) -> list[ServicePort]:
    """One ServicePort per port of every proxied Service. `node`: the node this proxy
    serves, whose endpoints are the local ones of the traffic policies (without it
    every policy is Cluster)."""
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
        internal_local = node is not None and spec.get("internalTrafficPolicy") == "Local"
        external_local = node is not None and spec.get("externalTrafficPolicy") == "Local" and \
            typ in ("NodePort", "LoadBalancer")
        for p in spec.get("ports") or []:
            cluster, local = _endpoints_for(p, by_svc.get(name, []), node)
            out.append(ServicePort(
                key=f"{name}:{p.get('name') or ''}", protocol=(p.get("protocol") or "TCP").lower(),
                port=int(p["port"]), cluster_ips=ips,
                node_port=int(p.get("nodePort") or 0) if typ in ("NodePort", "LoadBalancer") else 0,
                lb_ips=lb, endpoints=cluster, affinity=affinity,
                local_endpoints=local if internal_local or external_local else None,
                internal_local=internal_local, external_local=external_local))
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
        internal = [f"ip daddr {ip} {proto} dport {sp.port}" for ip in sp.cluster_ips]
        external = [f"ip daddr {ip} {proto} dport {sp.port}" for ip in sp.lb_ips]
        if sp.node_port:
            external.append(f"fib daddr type local {proto} dport {sp.node_port}")
        if not sp.endpoints:
            no_ep += [f"{a} reject" for a in internal + external]
            continue
        local = sp.local_endpoints or []
        names = {ep: f"ep_{sp.ep_ident(ep)}" for ep in sorted(set(sp.endpoints) | set(local))}
        if sp.affinity:
            for name in names.values():
                L.append(f"  set aff_{name[3:]} {{ type ipv4_addr; flags dynamic,timeout; timeout {sp.affinity}s; }}")

        def pick(eps: list[tuple[str, int]], sp: ServicePort = sp, names: dict = names) -> list[str]:
            """Jump to one of `eps` (a ClientIP affinity's first), or drop when there is none."""
            if not eps:
                return [f'drop comment "{sp.key} has no local endpoints"']
            chosen = [names[ep] for ep in eps]
            out = [f"ip saddr @aff_{n[3:]} goto {n}" for n in chosen] if sp.affinity else []
            if len(chosen) == 1:
                return [*out, f"goto {chosen[0]}"]
            vmap = ", ".join(f"{i} : goto {n}" for i, n in enumerate(chosen))
            return [*out, f"numgen random mod {len(chosen)} vmap {{ {vmap} }}"]

        masq_off_cluster = f"ip saddr != {cluster_cidr} meta mark set meta mark | {MASQ_MARK:#x}"
        svc = f"svc_{sp.ident}"  # the Cluster policy: every endpoint
        chains.append(_chain(svc, [masq_off_cluster, *pick(sp.endpoints)]))
        to_internal = to_external = svc
        if sp.internal_local:
            to_internal = f"int_{sp.ident}"
            chains.append(_chain(to_internal, [masq_off_cluster, *pick(local)]))
        if sp.external_local and external:
            # this node's endpoints, the client's address kept; pods and the node itself are
            # served as by the Cluster policy (kube-proxy's short-circuits)
            to_external = f"ext_{sp.ident}"
            chains.append(_chain(to_external, [
                f'ip saddr {cluster_cidr} goto {svc} comment "short-circuit pod traffic"',
                f'fib saddr type local meta mark set meta mark | {MASQ_MARK:#x} comment "masquerade local traffic"',
                f'fib saddr type local goto {svc} comment "short-circuit local traffic"', *pick(local)]))
        dispatch += [f'{a} jump {to_internal} comment "{sp.key}"' for a in internal]
        dispatch += [f'{a} jump {to_external} comment "{sp.key}"' for a in external]
        for (ip, port), name in names.items():
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
        internal = [f"-d {ip}/32 -p {proto} --dport {sp.port}" for ip in sp.cluster_ips]
        external = [f"-d {ip}/32 -p {proto} --dport {sp.port}" for ip in sp.lb_ips]
        if sp.node_port:
            external.append(f"-m addrtype --dst-type LOCAL -p {proto} --dport {sp.node_port}")
        if not sp.endpoints:
            flt += [f"-A {P}-FILTER {m} -j REJECT" for m in internal + external]
            continue
        local = sp.local_endpoints or []
        names = {ep: f"{P}-E-{sp.ep_ident(ep)}"[:28] for ep in sorted(set(sp.endpoints) | set(local))}

        def pick(chain: str, eps: list[tuple[str, int]], sp: ServicePort = sp, names: dict = names) -> list[str]:
            """Rules of `chain` jumping to one of `eps` (kube-proxy's chain of probabilities:
            1/n, 1/(n-1), ... 1), or dropping when there is none."""
            if not eps:  # the nat table cannot DROP: marked here, dropped by the filter chain
                return [f'-A {chain} -m comment --comment "{sp.key} has no local endpoints" '
                        f"-j MARK --or-mark {DROP_MARK:#x}"]
            chosen = [names[ep] for ep in eps]
            out = [f"-A {chain} -m recent --name {n} --rcheck --seconds {sp.affinity} --reap -j {n}"
                   for n in chosen] if sp.affinity else []
            for i, n in enumerate(chosen):
                if i < len(chosen) - 1:
                    out.append(f"-A {chain} -m statistic --mode random --probability {1 / (len(chosen) - i):.10f} "
                               f"-j {n}")
                else:
                    out.append(f"-A {chain} -j {n}")
            return out

        svc = f"{P}-S-{sp.ident}"[:28]  # the Cluster policy: every endpoint
        nat_chains.append(svc)
        nat.append(f"-A {svc} ! -s {cluster_cidr} -j MARK --or-mark {MASQ_MARK:#x}")
        nat += pick(svc, sp.endpoints)
        to_internal = to_external = svc
        if sp.internal_local:
            to_internal = f"{P}-I-{sp.ident}"[:28]
            nat_chains.append(to_internal)
            nat.append(f"-A {to_internal} ! -s {cluster_cidr} -j MARK --or-mark {MASQ_MARK:#x}")
            nat += pick(to_internal, local)
        if sp.external_local and external:
            to_external = f"{P}-X-{sp.ident}"[:28]
            nat_chains.append(to_external)
            nat += [f'-A {to_external} -s {cluster_cidr} -m comment --comment "short-circuit pod traffic" -j {svc}',
                    f'-A {to_external} -m addrtype --src-type LOCAL -m comment --comment "masquerade local traffic" '
                    f"-j MARK --or-mark {MASQ_MARK:#x}",
                    f'-A {to_external} -m addrtype --src-type LOCAL -m comment --comment "short-circuit local traffic" '
                    f"-j {svc}", *pick(to_external, local)]
        nat += [f'-A {P}-SERVICES {m} -m comment --comment "{sp.key}" -j {to_internal}' for m in internal]
        nat += [f'-A {P}-SERVICES {m} -m comment --comment "{sp.key}" -j {to_external}' for m in external]
        for (ip, port), name in names.items():
            nat_chains.append(name)
            nat.append(f"-A {name} -s {ip}/32 -j MARK --or-mark {MASQ_MARK:#x}")
            rec = f" -m recent --name {name} --set" if sp.affinity else ""
            nat.append(f"-A {name} -p {proto}{rec} -j DNAT --to-destination {ip}:{port}")
    nat.append(f"-A {P}-POSTROUTING -m mark --mark {MASQ_MARK:#x}/{MASQ_MARK:#x} -j MASQUERADE")
    nat.append(f"-A {P}-POSTROUTING -s {cluster_cidr} ! -d {cluster_cidr} -m addrtype ! --dst-type LOCAL "
               f"-j MASQUERADE")
    flt.append(f"-A {P}-FILTER -m mark --mark {DROP_MARK:#x}/{DROP_MARK:#x} -j DROP")
    flt.append(f"-A {P}-FILTER -d {service_cidr} -j REJECT")
    out = ["*nat"] + [f":{c} - [0:0]" for c in nat_chains] + nat + ["COMMIT",
           "*filter", f":{P}-FILTER - [0:0]"] + flt + ["COMMIT"]
    return "\n".join(out) + "\n"


def iptables_hooks(prefix: str) -> list[tuple[str, str, str]]:
    """(table, built-in chain, our chain): jumps installed once with `-I`."""
    P = prefix.upper()[:10]
    return [("nat", "PREROUTING", f"{P}-PREROUTING"), ("nat", "OUTPUT", f"{P}-SERVICES"),
            ("nat", "POSTROUTING", f"{P}-POSTROUTING"), ("filter", "OUTPUT", f"{P}-FILTER"),
            ("filter", "FORWARD", f"{P}-FILTER"), ("filter", "INPUT", f"{P}-FILTER")]
