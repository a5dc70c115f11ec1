"""A pod's /etc/resolv.conf, as the kubelet writes it (pkg/kubelet/network/dns):
from its `dnsPolicy` and `dnsConfig`, the cluster DNS address and domain, and
the host's own resolv.conf.

- ClusterFirst (the default): the cluster DNS, `search <ns>.svc.<domain>
  svc.<domain> <domain>` then the host's search domains, `options ndots:5`.
  A hostNetwork pod with ClusterFirst gets Default instead.
- ClusterFirstWithHostNet: ClusterFirst, also for hostNetwork pods.
- Default: the host's nameservers, search and options.
- None: only what `dnsConfig` says.
`dnsConfig` is merged in last (nameservers and searches appended without
duplicates, options replaced by name). Limits as the kubelet's: 3 nameservers,
32 search domains of at most 2048 characters together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
MAX_SEARCH_CHARS = 2048
ENV_VAR = "KYBERN_RESOLV_CONF"  # where the pod's resolv.conf is, for runtimes without a mount namespace
CLUSTER_DNS_IP = "10.96.0.10"  # the kubelet's --cluster-dns: the kube-dns Service


@dataclass
class ResolvConf:
    nameservers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"nameserver {n}" for n in self.nameservers]
        if self.searches:
            lines.append("search " + " ".join(self.searches))
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "\n".join(lines) + "\n"


def parse(text: str) -> ResolvConf:
    out = ResolvConf()
    for line in text.splitlines():
        f = line.split("#", 1)[0].split(";", 1)[0].split()
        if not f:
            continue
        if f[0] == "nameserver" and len(f) > 1:
            out.nameservers.append(f[1])
        elif f[0] in ("search", "domain"):
            out.searches = f[1:]  # the last one wins, as in glibc
        elif f[0] == "options":
            out.options.extend(f[1:])
    return out


_host_cache: dict[str, tuple[tuple[int, int, int], ResolvConf]] = {}


def host_resolv_conf(path: str = "/etc/resolv.conf") -> ResolvConf:
    """The host's resolv.conf, parsed again only when the file changed (one stat
    per container start instead of a read and a parse). A copy: callers may edit it."""
    try:
        st = os.stat(path)
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        hit = _host_cache.get(path)
        if hit is None or hit[0] != key:
            hit = _host_cache[path] = (key, parse(Path(path).read_text()))
    except OSError:
        return ResolvConf()
    conf = hit[1]
    return ResolvConf(list(conf.nameservers), list(conf.searches), list(conf.options))


def _dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    return [i for i in items if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]


def _merge_options(base: list[str], extra: list[dict[str, Any]]) -> list[str]:
    by_name: dict[str, str] = {}
    for o in base:
        by_name[o.split(":", 1)[0]] = o
    for o in extra:
        name = o.get("name") or ""
        if name:
            by_name[name] = f"{name}:{o['value']}" if o.get("value") is not None else name
    return list(by_name.values())


def for_pod(pod: dict[str, Any], host: ResolvConf, *, cluster_dns: list[str],
            domain: str = "cluster.local") -> ResolvConf:
    spec = pod.get("spec") or {}
    ns = pod["metadata"].get("namespace") or "default"
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "ClusterFirst" and spec.get("hostNetwork"):
        policy = "Default"
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and not cluster_dns:
        policy = "Default"  # no cluster DNS configured: the kubelet falls back too
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        conf = ResolvConf(list(cluster_dns), [f"{ns}.svc.{domain}", f"svc.{domain}", domain] + host.searches,
                          ["ndots:5"])
    elif policy == "None":
        conf = ResolvConf()
    else:
        conf = ResolvConf(list(host.nameservers), list(host.searches), list(host.options))
    extra = spec.get("dnsConfig") or {}
    conf.nameservers = _dedupe(conf.nameservers + list(extra.get("nameservers") or []))[:MAX_NAMESERVERS]
    searches = _dedupe(conf.searches + list(extra.get("searches") or []))[:MAX_SEARCHES]
    while searches and len(" ".join(searches)) > MAX_SEARCH_CHARS:
        searches.pop()
    conf.searches = searches
    conf.options = _merge_options(conf.options, list(extra.get("options") or []))
    return conf


def replace_if_changed(path: str, text: str, mode: int | None = None) -> None:
    """Write `text` to `path` atomically (a .tmp beside it, then os.replace), unless
    the file already says exactly that; `mode` is set on a new version. Its directory
    is made when missing. For the per-pod files written at every container start
    (resolv.conf, etc-hosts): os-level, no existence checks first."""
    try:
        with open(path) as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)


def write_for_pod(pod: dict[str, Any], pod_dir: str, *, cluster_dns: list[str],
                  domain: str = "cluster.local") -> str:
    """Write the pod's resolv.conf into its directory (atomically, only when it
    changed) and return its path."""
    path = os.path.join(pod_dir, "resolv.conf")
    replace_if_changed(path, for_pod(pod, host_resolv_conf(), cluster_dns=cluster_dns, domain=domain).render())
    return path
