"""A pod's /etc/hosts, as the kubelet manages it (pkg/kubelet/kubelet_pods.go
ensureHostsFile): localhost entries, the pod's IP with its hostname (and its FQDN
when `subdomain` is set), then `hostAliases`; a hostNetwork pod gets the node's own
file with the aliases added. Written into the pod's directory and mounted at
/etc/hosts in each container (containers.py), unless a volume covers it."""

from __future__ import annotations

import os
from typing import Any

from kybern.network import resolvconf

MANAGED_HEADER = "# Kubernetes-managed hosts file.\n"
MANAGED_HEADER_HOST_NETWORK = "# Kubernetes-managed hosts file (host network).\n"
NODE_HOSTS = "/etc/hosts"


def hostname_and_domain(pod: dict[str, Any], cluster_domain: str = "cluster.local") -> tuple[str, str]:
    """GeneratePodHostNameAndDomain: spec.hostname or the pod's name, cut to 63
    characters; `<subdomain>.<namespace>.svc.<cluster domain>` when a subdomain is set."""
    spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
    name = spec.get("hostname") or meta.get("name", "")
    if len(name) > 63:
        name = name[:63].rstrip("-.")
    sub = spec.get("subdomain") or ""
    domain = f"{sub}.{meta.get('namespace', 'default')}.svc.{cluster_domain}" if sub else ""
    return name, domain


def _aliases(pod: dict[str, Any]) -> str:
    aliases = (pod.get("spec") or {}).get("hostAliases") or []
    if not aliases:
        return ""
    lines = ["", "# Entries added by HostAliases."]
    # one line per IP, its hostnames tab-separated (hostsEntriesFromHostAliases)
    lines += [f"{a.get('ip', '')}\t" + "\t".join(a.get("hostnames") or []) for a in aliases]
    return "\n".join(lines) + "\n"


def content(pod: dict[str, Any], pod_ips: list[str]) -> str:
    if (pod.get("spec") or {}).get("hostNetwork"):
        try:
            with open(NODE_HOSTS) as f:
                node = f.read()
        except OSError:
            node = ""
        return MANAGED_HEADER_HOST_NETWORK + node + _aliases(pod)
    name, domain = hostname_and_domain(pod)
    out = [MANAGED_HEADER, "127.0.0.1\tlocalhost\n", "::1\tlocalhost ip6-localhost ip6-loopback\n",
           "fe00::0\tip6-localnet\n", "fe00::0\tip6-mcastprefix\n", "fe00::1\tip6-allnodes\n",
           "fe00::2\tip6-allrouters\n"]
    for ip in pod_ips:
        out.append(f"{ip}\t{name}.{domain}\t{name}\n" if domain else f"{ip}\t{name}\n")
    return "".join(out) + _aliases(pod)


def write_for_pod(pod: dict[str, Any], pod_dir: str, pod_ips: list[str]) -> str:
    """Write the pod's hosts file (`<pod dir>/etc-hosts`, mode 0644) and return its path.
    As the kubelet, at every container start (only when the content differs: a program's
    own edit lasts until the next container of the pod starts)."""
    path = os.path.join(pod_dir, "etc-hosts")
    resolvconf.replace_if_changed(path, content(pod, pod_ips), 0o644)
    return path
