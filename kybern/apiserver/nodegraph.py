"""The Node authorizer's graph (upstream plugin/pkg/auth/authorizer/node): a node
identity (`system:node:NAME` in `system:nodes`) may read a Secret, ConfigMap,
PersistentVolumeClaim or PersistentVolume, and request a ServiceAccount token, only
when a pod bound to that node uses it:

    node <- pod <- secret | configmap | serviceaccount | pvc
    node <- pod <- pvc <- pv <- secret
    node <- volumeattachment

Upstream keeps a graph fed by informers. Here the same question is asked of the
watch cache when a request comes: the pods bound to each node are kept in an index
updated from each pod event's indexed `spec.nodeName` (no decode), and what a pod
names is decoded once per pod revision, on demand. A pod spec's references only
grow (ephemeral containers), so a reference found stays true while the pod is on
the node.

Leases and CSINodes: only the node's own (by name; create is left to NodeRestriction).
Nodes and pods are not narrowed (upstream's AuthorizeNodeWithSelectors): kybern's node
identity also runs the node's service proxy, NetworkPolicy enforcer and node routes,
which read every Node and Pod (docs/rbac.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kybern.api import podrefs
from kybern.apiserver import rbac_policy

if TYPE_CHECKING:
    from kybern.apiserver.authz import Attributes
    from kybern.apiserver.server import APIServer
    from kybern.apiserver.watchcache import Entry, Event, ResourceCache

NODE_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
NODE_LEASE_NAMESPACE = "kube-node-lease"

# (group, resource) -> the kind of vertex a request for it starts from
_READ_NAMESPACED = {("", "secrets"): "secret", ("", "configmaps"): "configmap"}
_GET_ONLY = {("", "persistentvolumeclaims"): "pvc", ("", "persistentvolumes"): "pv",
             ("storage.k8s.io", "volumeattachments"): "volumeattachment"}


def node_of(user: dict[str, Any] | None) -> str | None:
    """NodeIdentity: the node a user is, None for anyone else and for the join token
    (kybern's shared identity of every agent, which bootstraps the node certificates)."""
    if not user or NODES_GROUP not in (user.get("groups") or []):
        return None
    name = str(user.get("username") or "")
    if not name.startswith(NODE_PREFIX) or name == rbac_policy.NODE_TOKEN_USER:
        return None
    return name[len(NODE_PREFIX):]


def _no_relationship(node: str) -> str:
    return f"no relationship found between node '{node}' and this object"


class NodeGraph:
    """Which objects the pods bound to each node use, from the watch cache."""

    def __init__(self, server: APIServer) -> None:
        self.server = server
        self._rc: ResourceCache | None = None  # the pods' cache the index was built from
        self._by_node: dict[str, dict[str, set[str]]] = {}  # node -> namespace -> pod keys
        self._node_of: dict[str, str] = {}  # pod key -> node
        self._refs: dict[str, tuple[int, frozenset[tuple[str, str]]]] = {}  # pod key -> (rv, refs)

    # -- the decision -----------------------------------------------------------------
    def authorize(self, node: str, a: Attributes, static: Callable[[Attributes], bool]) -> tuple[bool, str]:
        """(allowed, reason) for a request of node `node`; `static` answers from the
        node rules for what the graph does not subdivide."""
        if not node:
            return False, f'unknown node for user "{a.username}"'
        if a.resource_request:
            gr = (a.api_group, a.resource)
            if gr in _READ_NAMESPACED:
                if a.verb not in ("get", "list", "watch"):
                    return False, "can only read resources of this type"
                if a.subresource:
                    return False, "cannot read subresource"
                if not a.namespace:
                    return False, "can only read namespaced object of this type"
                return self._related(node, _READ_NAMESPACED[gr], a)
            if gr == ("", "persistentvolumeclaims") and a.subresource == "status":
                if a.verb not in ("update", "patch"):
                    return False, "can only get/update/patch this type"
                return self._related(node, "pvc", a)
            if gr in _GET_ONLY:
                if a.verb != "get":
                    return False, "can only get individual resources of this type"
                if a.subresource:
                    return False, "cannot get subresource"
                return self._related(node, _GET_ONLY[gr], a)
            if gr == ("", "serviceaccounts"):
                if a.verb != "create" or not a.name:
                    return False, "can only create tokens for individual service accounts"
                if a.subresource != "token":
                    return False, "can only create token subresource of serviceaccount"
                return self._related(node, "serviceaccount", a)
            if gr in (("coordination.k8s.io", "leases"), ("storage.k8s.io", "csinodes")):
                return self._own(node, a)
        return static(a), ""

    def _own(self, node: str, a: Attributes) -> tuple[bool, str]:
        """authorizeLease / authorizeCSINode: only the node's own, by name."""
        lease = a.resource == "leases"
        what = "a node lease" if lease else "a CSINode"
        if a.verb not in ("get", "create", "update", "patch", "delete"):
            return False, f"can only get, create, update, patch, or delete {what}"
        if lease and a.namespace != NODE_LEASE_NAMESPACE:
            return False, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace'
        if not lease and a.subresource:
            return False, "cannot authorize CSINode subresources"
        if a.verb != "create" and a.name != node:
            which = "node lease" if lease else "CSINode"
            return False, f"can only access {which} with the same name as the requesting node"
        return True, ""

    def _related(self, node: str, kind: str, a: Attributes) -> tuple[bool, str]:
        if not a.name:
            return False, "No Object name found"
        if self.has_path(node, kind, a.namespace, a.name):
            return True, ""
        return False, _no_relationship(node)

    # -- the graph --------------------------------------------------------------------
    def has_path(self, node: str, kind: str, namespace: str, name: str) -> bool:
        """Is there a path from the object to the node?"""
        if kind == "volumeattachment":
            va = self._cached("storage.k8s.io", "volumeattachments", None, name)
            return va is not None and (va.get("spec") or {}).get("nodeName") == node
        pods = self._pods()
        if pods is None:
            return False
        if kind == "pv":
            return any(self._pv_of_claim(ns, claim) == name for ns, claim in self._claims(pods, node))
        if self._named(pods, node, namespace, (kind, name)):
            return True
        if kind == "secret":  # a volume's secret (CSI, CephFS, ...) through the pod's claims
            for ns, claim in self._claims(pods, node):
                pv_name = self._pv_of_claim(ns, claim)
                pv = self._cached("", "persistentvolumes", None, pv_name) if pv_name else None
                if pv is not None and (namespace, name) in _pv_secrets(pv):
                    return True
        return False

    def _named(self, pods: ResourceCache, node: str, namespace: str, ref: tuple[str, str]) -> bool:
        keys = self._by_node.get(node, {}).get(namespace, ())
        if ref[0] == "serviceaccount":  # an indexed field: no decode
            return any((pods.field(pods.objects[k], "spec.serviceAccountName") or "default") == ref[1]
                       for k in keys if k in pods.objects)
        stale = []
        for k in keys:  # what is known first, then the pods changed since
            got = self._refs.get(k)
            if got is not None and ref in got[1]:
                return True
            e = pods.objects.get(k)
            if e is not None and (got is None or got[0] != e.rv):
                stale.append(e)
        for e in stale:
            if ref in self._refresh(e):
                return True
        return False

    def _claims(self, pods: ResourceCache, node: str) -> list[tuple[str, str]]:
        out = []
        for ns, keys in self._by_node.get(node, {}).items():
            for k in keys:
                e = pods.objects.get(k)
                if e is not None:
                    got = self._refs.get(k)
                    refs = got[1] if got is not None and got[0] == e.rv else self._refresh(e)
                    out.extend((ns, n) for kind, n in refs if kind == "pvc")
        return out

    def _pv_of_claim(self, namespace: str, claim: str) -> str:
        pvc = self._cached("", "persistentvolumeclaims", namespace, claim)
        return str(((pvc or {}).get("spec") or {}).get("volumeName") or "")

    def _refresh(self, e: Entry) -> frozenset[tuple[str, str]]:
        pod = e.decode()
        spec = pod.get("spec") or {}
        refs = frozenset([*(("secret", n) for n in podrefs.secret_names(spec)),
                          *(("configmap", n) for n in podrefs.configmap_names(spec)),
                          *(("pvc", n) for n in podrefs.claim_names(pod))])
        self._refs[e.key] = (e.rv, refs)
        return refs

    def _cached(self, group: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        from kybern.apiserver.store import object_key

        try:
            store = self.server.store(group, "v1", plural)
        except Exception:  # not served
            return None
        rc = store.cache.resources.get(store.prefix)
        e = rc.objects.get(object_key(store.info, namespace, name)) if rc is not None else None
        return e.decode() if e is not None else None

    # -- the pods-by-node index ------------------------------------------------------
    def _pods(self) -> ResourceCache | None:
        """The pods' cache, with the index following it (built anew after a re-list)."""
        store = self.server.store("", "v1", "pods")
        if not store.cache.is_ready():
            return None
        rc = store.cache.resource(store.prefix)
        if rc is not self._rc:
            if self._rc is not None:
                self._rc.listeners.remove(self._on_event)
            self._by_node, self._node_of, self._refs = {}, {}, {}
            for e in rc.objects.values():
                self._index(rc, e.key, rc.field(e, "spec.nodeName"))
            rc.listeners.append(self._on_event)
            self._rc = rc
        return rc

    def _on_event(self, rc: ResourceCache, ev: Event) -> None:
        key = ev.entry.key
        if ev.deleted:
            self._unindex(key)
            self._refs.pop(key, None)
        else:
            self._index(rc, key, rc.field(ev.entry, "spec.nodeName"))

    def _index(self, rc: ResourceCache, key: str, node: str) -> None:
        if self._node_of.get(key) == node:
            return
        self._unindex(key)
        if node:
            ns = key[len(rc.prefix):].split("/", 1)[0]
            self._by_node.setdefault(node, {}).setdefault(ns, set()).add(key)
            self._node_of[key] = node

    def _unindex(self, key: str) -> None:
        node = self._node_of.pop(key, None)
        if node is None:
            return
        for ns, keys in list(self._by_node.get(node, {}).items()):
            keys.discard(key)
            if not keys:
                del self._by_node[node][ns]


def _pv_secrets(pv: dict[str, Any]) -> set[tuple[str, str]]:
    """The secrets a PersistentVolume's source names (a secretRef with its namespace)."""
    out = set()
    for src in (pv.get("spec") or {}).values():
        if isinstance(src, dict):
            for k, ref in src.items():
                if k.endswith(("secretRef", "SecretRef")) and isinstance(ref, dict) and ref.get("name"):
                    out.add((str(ref.get("namespace") or ""), str(ref["name"])))
    return out
