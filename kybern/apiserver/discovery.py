"""Discovery documents: /api, /apis, /apis/<group>, /<group>/<version>, in the
legacy form and the aggregated form (apidiscovery.k8s.io/v2) kubectl prefers."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from kybern.api.registry import Registry, ResourceInfo

VERSION_INFO = {
    "major": "1", "minor": "32", "gitVersion": "v1.32.0-kybern.0.1.0", "gitCommit": "kybern",
    "gitTreeState": "clean", "buildDate": "2026-11-22T00:00:00Z", "goVersion": "go1.23.0",
    "compiler": "gc", "platform": "linux/amd64",
}

_SUB_VERBS = {"status": ["get", "patch", "update"], "scale": ["get", "patch", "update"],
              "binding": ["create"], "eviction": ["create"], "log": ["get"], "exec": ["create", "get"],
              "attach": ["create", "get"], "portforward": ["create", "get"], "proxy":
              ["create", "delete", "get", "patch", "update"], "finalize": ["update"],
              "ephemeralcontainers": ["get", "patch", "update"], "token": ["create"]}
_SUB_KIND = {"scale": ("autoscaling", "v1", "Scale"), "binding": ("", "v1", "Binding"),
             "eviction": ("policy", "v1", "Eviction"), "exec": ("", "v1", "PodExecOptions"),
             "attach": ("", "v1", "PodAttachOptions"), "portforward": ("", "v1", "PodPortForwardOptions"),
             "log": ("", "v1", "Pod"), "proxy": ("", "v1", "PodProxyOptions"),
             "token": ("authentication.k8s.io", "v1", "TokenRequest")}


def _sub_kind(info: ResourceInfo, sub: str) -> tuple[str, str, str]:
    """(group, version, kind) a subresource answers with; each parent's proxy has its own
    options kind (NodeProxyOptions, ServiceProxyOptions), as upstream's REST storage."""
    if sub == "proxy" and info.kind in ("Node", "Service"):
        return "", "v1", f"{info.kind}ProxyOptions"
    return _SUB_KIND.get(sub, (info.group, info.version, info.kind))


def storage_version_hash(info: ResourceInfo) -> str:
    """Upstream's discovery.StorageVersionHash: base64 of the first 8 bytes of sha256 of
    "<group>/<version>/<kind>" of the version stored, so clients can tell when storage moved.
    Kinds that are not stored (reviews, bindings, componentstatuses) have none."""
    if "watch" not in info.verbs:
        return ""
    stored = getattr(info.strategy, "storage_version", None) or info.api_version
    group, _, version = stored.rpartition("/")
    if info.storage_group is not None:
        group = info.storage_group
    digest = hashlib.sha256(f"{group}/{version}/{info.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def _resource_entries(infos: list[ResourceInfo]) -> list[dict[str, Any]]:
    # keys in metav1.APIResource's field order (name, singularName, namespaced, group, version,
    # kind, verbs, shortNames, categories, storageVersionHash), empty ones omitted as upstream;
    # entries in path order (pods, pods/attach, pods/binding, ...)
    out = []
    for info in sorted(infos, key=lambda i: i.plural):
        e: dict[str, Any] = {"name": info.plural, "singularName": info.singular,
                             "namespaced": info.namespaced, "kind": info.kind, "verbs": list(info.verbs)}
        if info.short_names:
            e["shortNames"] = list(info.short_names)
        if info.categories:
            e["categories"] = list(info.categories)
        if svh := storage_version_hash(info):
            e["storageVersionHash"] = svh
        out.append(e)
        for sub in sorted(info.subresources):  # upstream's installer sorts the paths
            s: dict[str, Any] = {"name": f"{info.plural}/{sub}", "singularName": "",
                                 "namespaced": info.namespaced}
            g, v, kind = _sub_kind(info, sub)
            if g != info.group or v != info.version:
                s["group"], s["version"] = g, v
            s["kind"] = kind
            s["verbs"] = _SUB_VERBS.get(sub, ["get"])
            out.append(s)
    return out


def api_versions(address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]}


def resource_list(reg: Registry, group: str, version: str) -> dict[str, Any] | None:
    infos = [i for i in reg.all() if i.group == group and i.version == version]
    if not infos:
        return None
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": _resource_entries(infos)}


def _group(group: str, versions: list[str]) -> dict[str, Any]:
    vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": vs, "preferredVersion": vs[0]}


def api_group(reg: Registry, group: str) -> dict[str, Any] | None:
    versions = reg.group_versions().get(group)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(group, versions)}


def api_group_list(reg: Registry) -> dict[str, Any]:
    groups = [_group(g, vs) for g, vs in sorted(reg.group_versions().items()) if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


# -- aggregated discovery (apidiscovery.k8s.io/v2) -----------------------------
AGGREGATED_CT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def wants_aggregated(accept: str) -> bool:
    return "as=APIGroupDiscoveryList" in accept and "g=apidiscovery.k8s.io" in accept and "v=v2" in accept


def _aggregated_version(infos: list[ResourceInfo], version: str) -> dict[str, Any]:
    resources = []
    for info in sorted(infos, key=lambda i: i.plural):
        r: dict[str, Any] = {
            "resource": info.plural, "responseKind": {"group": info.group, "version": info.version,
                                                      "kind": info.kind},
            "scope": "Namespaced" if info.namespaced else "Cluster", "singularResource": info.singular,
            "verbs": list(info.verbs)}
        if info.short_names:
            r["shortNames"] = list(info.short_names)
        if info.categories:
            r["categories"] = list(info.categories)
        subs = []
        for sub in sorted(info.subresources):
            g, v, k = _sub_kind(info, sub)
            subs.append({"subresource": sub, "responseKind": {"group": g, "version": v, "kind": k},
                         "verbs": _SUB_VERBS.get(sub, ["get"])})
        if subs:
            r["subresources"] = subs
        resources.append(r)
    return {"version": version, "resources": resources, "freshness": "Current"}


def aggregated(reg: Registry, *, legacy: bool) -> dict[str, Any]:
    items = []
    for group, versions in sorted(reg.group_versions().items()):
        if (group == "") != legacy:
            continue
        items.append({"metadata": {"name": group, "creationTimestamp": None},
                      "versions": [_aggregated_version(
                          [i for i in reg.all() if i.group == group and i.version == v], v)
                          for v in versions]})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": items}
