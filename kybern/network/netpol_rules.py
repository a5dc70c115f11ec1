"""NetworkPolicies (networking.k8s.io/v1) as one nftables table: which of this
node's pods are isolated and what may reach them or leave them. Pure: unit
tested without root (`nft -c` checks the syntax where it can run).

Semantics (kubernetes.io "Network Policies"):
- a pod is isolated for ingress (egress) when a policy of its namespace selects
  it (`spec.podSelector`, empty = every pod) and has Ingress (Egress) in
  `policyTypes`; the API defaults those (Ingress always, Egress when egress
  rules are given);
- what an isolated pod may receive (send) is the union of the rules of every
  policy selecting it; a connection needs the source's egress and the
  destination's ingress to allow it;
- a rule's peers (`from`/`to`; empty = anyone): `podSelector` (the policy's
  namespace), `namespaceSelector` (every pod of those namespaces), both
  (those pods of those namespaces), `ipBlock` (`cidr` less `except`);
- its ports (empty = all): protocol TCP/UDP/SCTP, a number, a range
  (`port`..`endPort`) or a name, looked up in the destination pod's container
  ports; no port = every port of the protocol;
- replies of allowed connections pass (conntrack), a pod may always reach
  itself (through its Service), and traffic from the node to its pods is never
  seen here (it does not cross the forward hook).

The table: two base chains on the forward hook (bridged pod traffic reaches it
through br_netfilter, routed traffic anyway). `egress` (priority 0) sends a
packet from an isolated pod of this node to its pod's chain; `ingress`
(priority 1) one to an isolated pod of this node. A pod's chain jumps to the
chain of each policy selecting it and drops what none accepted. An `accept`
ends only that base chain, so a packet the source's egress allowed still meets
the destination's ingress. Packets of pods this table does not own fall through
to accept, so the tables of several agents on one machine compose.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kybern.machinery.selectors import from_label_selector_object, matches

Obj = dict[str, Any]
PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass
class Pod:
    namespace: str
    name: str
    ip: str
    labels: dict[str, str]
    # (name, protocol) -> containerPort, for named ports
    ports: dict[tuple[str, str], int] = field(default_factory=dict)
    key: int = 0  # the address as a number, for sorting


def pod_ip(pod: Obj) -> str | None:
    """The pod's IPv4 address when it has a network of its own and is not finished
    (a finished pod's address may already be another's)."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    if spec.get("hostNetwork") or status.get("phase") in ("Succeeded", "Failed"):
        return None
    ips = [p.get("ip") for p in status.get("podIPs") or []] or [status.get("podIP")]
    return next((ip for ip in ips if ip and ":" not in ip), None)


def relevant(pod: Obj | None) -> tuple[Any, ...]:
    """What of a pod the rules depend on: other changes (conditions, container
    states) need no sync."""
    if not pod:
        return ()
    m, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    return (pod_ip(pod), m.get("labels"), spec.get("nodeName"),
            [c.get("ports") for c in spec.get("containers") or []])


def _pod(pod: Obj, ip: str) -> Pod:
    m = pod.get("metadata") or {}
    ports: dict[tuple[str, str], int] = {}
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") and p.get("containerPort"):
                ports.setdefault((p["name"], p.get("protocol") or "TCP"), int(p["containerPort"]))
    return Pod(m.get("namespace") or "", m.get("name") or "", ip, m.get("labels") or {}, ports,
               int(ipaddress.IPv4Address(ip)))


@dataclass
class Plan:
    """The table's content as data: address sets, policy chains, and which own
    pod jumps where."""
    sets: dict[str, list[str]] = field(default_factory=dict)  # set name -> pod addresses
    policy_chains: dict[str, list[str]] = field(default_factory=dict)  # chain name -> rules
    ingress: dict[str, list[str]] = field(default_factory=dict)  # own pod IP -> policy chains
    egress: dict[str, list[str]] = field(default_factory=dict)
    isolated: list[str] = field(default_factory=list)  # "ns/name" of own isolated pods, for the log


def build(policies: Iterable[Obj], pods: Iterable[Obj], namespaces: Iterable[Obj], *,
          pod_cidr: str, node_name: str | None = None) -> Plan:
    """The plan for the pods of `node_name` whose address is in `pod_cidr`; every
    pod of the cluster may be a peer."""
    return _Builder(pods, namespaces, pod_cidr, node_name).build(policies)


class _Builder:
    def __init__(self, pods: Iterable[Obj], namespaces: Iterable[Obj], pod_cidr: str,
                 node_name: str | None) -> None:
        subnet = ipaddress.IPv4Network(pod_cidr)
        lo, hi = int(subnet.network_address), int(subnet.broadcast_address)
        self.everyone: list[Pod] = []
        self.own: list[Pod] = []
        for p in pods:
            ip = pod_ip(p)
            if not ip:
                continue
            pod = _pod(p, ip)
            self.everyone.append(pod)
            if lo <= pod.key <= hi and (node_name is None or (p.get("spec") or {}).get("nodeName") == node_name):
                self.own.append(pod)
        self.ns_labels = {(n.get("metadata") or {}).get("name"): (n.get("metadata") or {}).get("labels") or {}
                          for n in namespaces}
        self.by_ns: dict[str, list[Pod]] = {}
        for pod in self.everyone:
            self.by_ns.setdefault(pod.namespace, []).append(pod)
        self.own_by_ns: dict[str, list[Pod]] = {}
        for pod in self.own:
            self.own_by_ns.setdefault(pod.namespace, []).append(pod)
        self.plan = Plan()
        self._sets: dict[tuple[str, ...], str] = {}
        self._peers: dict[tuple[str, str, str], list[Pod]] = {}  # policies often repeat selectors

    def build(self, policies: Iterable[Obj]) -> Plan:
        plan = self.plan
        for pol in sorted(policies, key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"])):
            m, spec = pol["metadata"], pol.get("spec") or {}
            ns, name = m.get("namespace") or "", m["name"]
            sel = from_label_selector_object(spec.get("podSelector") or {}) or []
            selected = [p for p in self.own_by_ns.get(ns, []) if matches(sel, p.labels)]
            if not selected:
                continue
            types = spec.get("policyTypes") or (["Ingress", "Egress"] if spec.get("egress") else ["Ingress"])
            for direction, key, target in (("Ingress", "ingress", plan.ingress), ("Egress", "egress", plan.egress)):
                if direction not in types:
                    continue
                chain = f"{key[:2]}_{hashlib.sha1(f'{ns}/{name}'.encode()).hexdigest()[:12]}"
                rules = self._policy_rules(spec.get(key) or [], key, ns, selected)
                plan.policy_chains[chain] = [f'comment "{ns}/{name}"'] + rules
                for p in selected:
                    target.setdefault(p.ip, []).append(chain)
        isolated = set(plan.ingress) | set(plan.egress)
        plan.isolated = sorted(f"{p.namespace}/{p.name}" for p in self.own if p.ip in isolated)
        return plan

    def _addresses(self, pods: Iterable[Pod]) -> str | None:
        """A named set of the pods' addresses (shared by every rule naming the same
        pods), or None for no pods."""
        ips = tuple(p.ip for p in sorted({p.key: p for p in pods}.values(), key=lambda p: p.key))
        if not ips:
            return None
        if len(ips) == 1:
            return ips[0]
        if ips not in self._sets:
            self._sets[ips] = name = f"pods_{hashlib.sha1(' '.join(ips).encode()).hexdigest()[:12]}"
            self.plan.sets[name] = list(ips)
        return f"@{self._sets[ips]}"

    def _policy_rules(self, rules: list[Obj], direction: str, ns: str, selected: list[Pod]) -> list[str]:
        """The accept rules of one policy in one direction (nothing accepted = deny)."""
        peer_addr = "ip saddr" if direction == "ingress" else "ip daddr"
        out: list[str] = []
        for rule in rules:
            peers = rule.get("from" if direction == "ingress" else "to") or []
            peer_matches: list[str | None] = [None] if not peers else []
            for peer in peers:
                peer_matches += self._peer(peer, peer_addr, ns)
            # named ports are looked up in the destination: the selected pods for
            # ingress, the peers for egress
            destinations = selected if direction == "ingress" else self.everyone
            port_matches: list[str | None] = [None] if not rule.get("ports") else []
            for port in rule.get("ports") or []:
                port_matches += self._port(port, destinations)
            for pm in peer_matches:
                for tm in port_matches:
                    out.append(" ".join(x for x in (pm, tm, "accept") if x))
        return out

    def _peer(self, peer: Obj, addr: str, ns: str) -> list[str]:
        block = peer.get("ipBlock")
        if block:
            try:
                cidr = ipaddress.ip_network(block.get("cidr") or "", strict=False)
                excepts = [ipaddress.ip_network(e, strict=False) for e in block.get("except") or []]
            except ValueError:
                return []
            if cidr.version != 4:
                return []  # the pod network is IPv4: an IPv6 block matches nothing here
            rule = f"{addr} {cidr}"
            # merged: an nft set refuses overlapping intervals
            excepts = list(ipaddress.collapse_addresses(e for e in excepts if e.version == 4))  # type: ignore[misc]
            if excepts:
                rule += f" {addr} != {{ {', '.join(str(e) for e in excepts)} }}"
            return [rule]
        pod_sel, ns_sel = peer.get("podSelector"), peer.get("namespaceSelector")
        if pod_sel is None and ns_sel is None:
            return []
        key = (ns if ns_sel is None else "", json.dumps(pod_sel, sort_keys=True), json.dumps(ns_sel, sort_keys=True))
        if key not in self._peers:
            if ns_sel is None:
                candidates = self.by_ns.get(ns, [])
            else:
                nreqs = from_label_selector_object(ns_sel) or []
                candidates = [p for n, labels in self.ns_labels.items() if matches(nreqs, labels)
                              for p in self.by_ns.get(n or "", [])]
            preqs = from_label_selector_object(pod_sel) if pod_sel is not None else []
            self._peers[key] = [p for p in candidates if matches(preqs or [], p.labels)]
        addresses = self._addresses(self._peers[key])
        return [f"{addr} {addresses}"] if addresses else []

    def _port(self, port: Obj, destinations: list[Pod]) -> list[str]:
        proto = (port.get("protocol") or "TCP").upper()
        if proto not in PROTOCOLS:
            return []
        p = proto.lower()
        number = port.get("port")
        if number is None:
            return [f"meta l4proto {p}"]
        if isinstance(number, str) and not number.isdigit():
            by_number: dict[int, list[Pod]] = {}
            for d in destinations:
                n = d.ports.get((number, proto))
                if n:
                    by_number.setdefault(n, []).append(d)
            return [f"ip daddr {self._addresses(pods)} {p} dport {n}" for n, pods in sorted(by_number.items())]
        first, end = int(number), port.get("endPort")
        return [f"{p} dport {first}-{int(end)}" if end and int(end) > first else f"{p} dport {first}"]


def render_nft(table: str, plan: Plan) -> str:
    """A complete `nft -f` script replacing table `inet <table>` in one transaction."""
    L = [f"table inet {table}", f"delete table inet {table}", f"table inet {table} {{"]
    pod_chains: dict[tuple[str, ...], str] = {}

    def pod_chain(chains: list[str]) -> str:
        # pods selected by the same policies share one chain
        key = tuple(chains)
        if key not in pod_chains:
            pod_chains[key] = f"pod_{hashlib.sha1(' '.join(key).encode()).hexdigest()[:12]}"
        return pod_chains[key]

    for name, ips in plan.sets.items():
        L.append(f"  set {name} {{ type ipv4_addr; elements = {{ {', '.join(ips)} }}; }}")
    for name, rules in plan.policy_chains.items():
        L.append(_chain(name, rules))
    own = sorted(set(plan.ingress) | set(plan.egress), key=ipaddress.ip_address)
    base: dict[str, list[str]] = {}
    for key, by_ip, addr in (("egress", plan.egress, "ip saddr"), ("ingress", plan.ingress, "ip daddr")):
        rules = ["ct state established,related accept"]
        if own:  # a pod may always reach itself (hairpin through its own Service)
            rules.append(f"ip saddr . ip daddr {{ {', '.join(f'{ip} . {ip}' for ip in own)} }} accept")
        vmap = [f"{ip} : jump {pod_chain(by_ip[ip])}" for ip in sorted(by_ip, key=ipaddress.ip_address)]
        if vmap:
            rules.append(f"{addr} vmap {{ {', '.join(vmap)} }}")
        base[key] = rules
    for chains, name in pod_chains.items():
        L.append(_chain(name, [f"jump {c}" for c in chains] + ["drop"]))
    L.append(_chain("egress", base["egress"], "type filter hook forward priority 0; policy accept;"))
    L.append(_chain("ingress", base["ingress"], "type filter hook forward priority 1; policy accept;"))
    L.append("}")
    return "\n".join(L) + "\n"


def _chain(name: str, rules: list[str], head: str = "") -> str:
    inner = ([f"    {head}"] if head else []) + [f"    {r}" for r in rules]
    return f"  chain {name} {{\n" + "\n".join(inner) + "\n  }"
