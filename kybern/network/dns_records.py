"""The records of the cluster DNS zone, computed from Services and
EndpointSlices as the Kubernetes DNS specification (and CoreDNS's kubernetes
plugin) defines them. Pure data: dns.py feeds it from informers and serves it.

    <svc>.<ns>.svc.<zone>                 A/AAAA  cluster IP, or the ready endpoints (headless)
                                          CNAME   externalName (ExternalName Services)
                                          SRV     one per port
    _<port>._<proto>.<svc>.<ns>.svc.<zone> SRV    the named port (headless: one per endpoint)
    <host>.<svc>.<ns>.svc.<zone>          A/AAAA  an endpoint of a headless Service, by its
                                                  hostname (StatefulSet pods) or dashed IP
    a-b-c-d.<ns>.pod.<zone>               A       the IP spelled by the name ("pods insecure")
    d.c.b.a.in-addr.arpa                  PTR     cluster IPs and headless endpoints

Unknown names in the zone are NXDOMAIN, known names without the asked type
NOERROR with no answer (NODATA); both carry the zone's SOA so resolvers cache
the negative answer for its minimum TTL. `lookup` returns None for names
outside the zone (and reverse names it does not know): those are forwarded.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from typing import Any

import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset

Obj = dict[str, Any]
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
A, AAAA, CNAME, SRV, PTR, SOA, NS, ANY = (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.CNAME,
                                          dns.rdatatype.SRV, dns.rdatatype.PTR, dns.rdatatype.SOA,
                                          dns.rdatatype.NS, dns.rdatatype.ANY)
REVERSE_ZONES = (dns.name.from_text("in-addr.arpa."), dns.name.from_text("ip6.arpa."))


@dataclass
class Answer:
    rcode: int = dns.rcode.NOERROR
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)


def dashed(ip: str) -> str:
    """10.244.0.5 -> 10-244-0-5 (the name CoreDNS gives an endpoint without hostname)."""
    return ip.replace(".", "-").replace(":", "-")


def undashed(label: str) -> str | None:
    text = label.replace("-", ".") if label.count("-") == 3 else label.replace("-", ":")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _family_ok(ip: str, rdtype: int) -> bool:
    return (rdtype == A and ":" not in ip) or (rdtype == AAAA and ":" in ip)


class ClusterRecords:
    def __init__(self, domain: str = "cluster.local", ttl: int = 5) -> None:
        self.zone = dns.name.from_text(domain.rstrip(".") + ".")
        self.ttl = ttl
        self.serial = int(time.time())
        self.services: dict[tuple[str, str], Obj] = {}
        self.slices: dict[tuple[str, str], dict[str, Obj]] = {}  # (ns, service) -> name -> slice

    # -- feeding ------------------------------------------------------------------------
    def set_service(self, svc: Obj) -> None:
        m = svc["metadata"]
        self.services[(m.get("namespace") or "", m["name"])] = svc

    def delete_service(self, svc: Obj) -> None:
        m = svc["metadata"]
        self.services.pop((m.get("namespace") or "", m["name"]), None)

    def set_slice(self, s: Obj) -> None:
        m = s["metadata"]
        owner = (m.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if owner:
            self.slices.setdefault((m.get("namespace") or "", owner), {})[m["name"]] = s

    def delete_slice(self, s: Obj) -> None:
        m = s["metadata"]
        owner = (m.get("labels") or {}).get(SERVICE_NAME_LABEL)
        group = self.slices.get((m.get("namespace") or "", owner or ""))
        if group is not None:
            group.pop(m["name"], None)
            if not group:
                self.slices.pop((m.get("namespace") or "", owner or ""), None)

    # -- helpers ----------------------------------------------------------------------------
    def soa(self) -> dns.rrset.RRset:
        z = self.zone
        return dns.rrset.from_text(z, self.ttl, "IN", "SOA",
                                   f"ns.dns.{z} hostmaster.{z} {self.serial} 7200 1800 86400 {self.ttl}")

    def _rr(self, name: dns.name.Name, rdtype: int, values: list[str]) -> dns.rrset.RRset:
        return dns.rrset.from_text_list(name, self.ttl, dns.rdataclass.IN, rdtype, values)

    def _svc_name(self, ns: str, name: str) -> dns.name.Name:
        return dns.name.from_text(f"{name}.{ns}.svc", self.zone)

    def ready_endpoints(self, ns: str, name: str) -> list[tuple[str, Obj, Obj]]:
        """(address, endpoint, slice) for every ready endpoint of the Service (deduplicated)."""
        out, seen = [], set()
        for s in sorted(self.slices.get((ns, name), {}).values(), key=lambda s: s["metadata"]["name"]):
            for ep in s.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready") is False:
                    continue  # nil means ready, as the API documents
                for ip in ep.get("addresses") or []:
                    if ip not in seen:
                        seen.add(ip)
                        out.append((ip, ep, s))
        return out

    def _nodata(self) -> Answer:
        return Answer(authority=[self.soa()])

    def _nx(self) -> Answer:
        return Answer(rcode=dns.rcode.NXDOMAIN, authority=[self.soa()])

    # -- lookup --------------------------------------------------------------------------
    def lookup(self, qname: dns.name.Name, rdtype: int) -> Answer | None:
        if qname.is_subdomain(self.zone):
            return self._in_zone(qname, rdtype)
        if any(qname.is_subdomain(z) for z in REVERSE_ZONES) and rdtype in (PTR, ANY):
            return self._reverse(qname)
        return None

    def _in_zone(self, qname: dns.name.Name, rdtype: int) -> Answer:
        parts = [lbl.decode(errors="replace").lower() for lbl in qname.relativize(self.zone).labels]
        if not parts:
            if rdtype == SOA:
                return Answer(answer=[self.soa()])
            if rdtype == NS:
                return Answer(answer=[self._rr(qname, NS, [f"ns.dns.{self.zone}"])])
            return self._nodata()
        kind = parts[-1]
        if kind == "svc":
            return self._svc(qname, parts[:-1], rdtype)
        if kind == "pod" and len(parts) == 3:
            ip = undashed(parts[0])
            if ip is None:
                return self._nx()
            if _family_ok(ip, rdtype) or rdtype == ANY:
                return Answer(answer=[self._rr(qname, AAAA if ":" in ip else A, [ip])])
            return self._nodata()
        if kind == "pod" and len(parts) <= 2:
            return self._nodata()
        return self._nx()

    def _svc(self, qname: dns.name.Name, parts: list[str], rdtype: int) -> Answer:
        if len(parts) == 0:
            return self._nodata()
        if len(parts) == 1:  # <ns>.svc: exists while the namespace has Services
            return self._nodata() if any(k[0] == parts[0] for k in self.services) else self._nx()
        ns = parts[-1]
        svc = self.services.get((ns, parts[-2]))
        if svc is None:
            return self._nx()
        if len(parts) == 2:
            return self._service(qname, svc, rdtype)
        if len(parts) == 4 and parts[0].startswith("_") and parts[1].startswith("_"):
            return self._srv(qname, svc, parts[0][1:], parts[1][1:], rdtype)
        if len(parts) == 3:
            return self._endpoint(qname, svc, parts[0], rdtype)
        return self._nx()

    def _service(self, qname: dns.name.Name, svc: Obj, rdtype: int) -> Answer:
        spec = svc.get("spec") or {}
        m = svc["metadata"]
        if spec.get("type") == "ExternalName":
            target = dns.name.from_text(str(spec.get("externalName") or "").rstrip(".") + ".")
            return Answer(answer=[self._rr(qname, CNAME, [target.to_text()])])
        if rdtype == SRV:
            return self._srv(qname, svc, None, None, rdtype)
        if rdtype not in (A, AAAA, ANY):
            return self._nodata()
        if spec.get("clusterIP") == "None":
            ips = [ip for ip, _, _ in self.ready_endpoints(m.get("namespace") or "", m["name"])]
        else:
            ips = list(spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []))
        out = []
        for t in ((A, AAAA) if rdtype == ANY else (rdtype,)):
            vals = [ip for ip in ips if _family_ok(ip, t)]
            if vals:
                out.append(self._rr(qname, t, vals))
        return Answer(answer=out) if out else self._nodata()

    def _srv(self, qname: dns.name.Name, svc: Obj, port: str | None, proto: str | None, rdtype: int) -> Answer:
        """SRV for the Service's ports (all, or the one named `port` with `proto`)."""
        spec = svc.get("spec") or {}
        m = svc["metadata"]
        ns, name = m.get("namespace") or "", m["name"]
        if rdtype not in (SRV, ANY):
            known = any(self._port_match(p, port, proto) for p in spec.get("ports") or [])
            return self._nodata() if known else self._nx()
        records: list[str] = []
        extra: list[dns.rrset.RRset] = []
        base = self._svc_name(ns, name)
        if spec.get("clusterIP") == "None":
            eps = self.ready_endpoints(ns, name)
            targets = []
            for ip, ep, s in eps:
                for p in s.get("ports") or []:
                    if port is None or self._port_match(p, port, proto):
                        targets.append((ip, ep, int(p.get("port") or 0)))
            weight = 100 // len(targets) if targets else 0
            for ip, ep, num in targets:
                host = dns.name.from_text(ep.get("hostname") or dashed(ip), base)
                records.append(f"0 {weight} {num} {host}")
                extra.append(self._rr(host, AAAA if ":" in ip else A, [ip]))
        elif spec.get("type") != "ExternalName":
            ports = [p for p in spec.get("ports") or [] if port is None or self._port_match(p, port, proto)]
            weight = 100 // len(ports) if ports else 0
            for p in ports:
                records.append(f"0 {weight} {int(p.get('port') or 0)} {base}")
            ips = list(spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []))
            for t in (A, AAAA):
                vals = [ip for ip in ips if _family_ok(ip, t)]
                if vals and records:
                    extra.append(self._rr(base, t, vals))
        if not records:
            known = any(self._port_match(p, port, proto) for p in spec.get("ports") or []) or port is None
            return self._nodata() if known else self._nx()
        return Answer(answer=[self._rr(qname, SRV, sorted(set(records)))], additional=_merge(extra))

    @staticmethod
    def _port_match(p: Obj, port: str | None, proto: str | None) -> bool:
        if port is None:
            return True
        return (p.get("name") or "").lower() == port and (p.get("protocol") or "TCP").lower() == (proto or "")

    def _endpoint(self, qname: dns.name.Name, svc: Obj, host: str, rdtype: int) -> Answer:
        m = svc["metadata"]
        ips = [ip for ip, ep, _ in self.ready_endpoints(m.get("namespace") or "", m["name"])
               if (ep.get("hostname") or "").lower() == host or dashed(ip) == host]
        if not ips:
            return self._nx()
        out = []
        for t in ((A, AAAA) if rdtype == ANY else (rdtype,)):
            vals = [ip for ip in ips if _family_ok(ip, t)]
            if vals:
                out.append(self._rr(qname, t, vals))
        return Answer(answer=out) if out else self._nodata()

    def _reverse(self, qname: dns.name.Name) -> Answer | None:
        try:
            ip = str(dns.reversename.to_address(qname))
        except Exception:  # noqa: BLE001 - a partial reverse name: not ours
            return None
        names = []
        for (ns, name), svc in sorted(self.services.items()):
            spec = svc.get("spec") or {}
            if ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]):
                names.append(self._svc_name(ns, name).to_text())
            elif spec.get("clusterIP") == "None":
                for eip, ep, _ in self.ready_endpoints(ns, name):
                    if eip == ip:
                        host = ep.get("hostname") or dashed(ip)
                        names.append(dns.name.from_text(host, self._svc_name(ns, name)).to_text())
        if not names:
            return None
        return Answer(answer=[self._rr(qname, PTR, names)])


def _merge(rrsets: list[dns.rrset.RRset]) -> list[dns.rrset.RRset]:
    out: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = {}
    for rr in rrsets:
        cur = out.get((rr.name, rr.rdtype))
        if cur is None:
            out[(rr.name, rr.rdtype)] = rr
        else:
            cur.union_update(rr)
    return list(out.values())

