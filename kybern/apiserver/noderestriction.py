"""The NodeRestriction admission plugin (upstream plugin/pkg/admission/noderestriction):
a node identity — user `system:node:NAME` in group `system:nodes`, as node agents
authenticate with the client certificate they bootstrap (kybern/node/bootstrap.py) —
may write only what belongs to its node:

- pods: create mirror pods only (bound to itself, owned by its Node, referencing no
  service account, secret, config map or claim); delete, update the status of and
  evict only pods with spec.nodeName set to itself;
- nodes: only its own Node; no change to its taints, no `node-restriction.kubernetes.io/`
  label and no kubernetes.io / k8s.io label outside the kubelet's own;
- leases: only its own, in kube-node-lease;
- service account tokens: only bound to a pod on itself.

Messages as upstream's. The node join token's shared identity (system:node:kybern-node-token,
which bootstraps the certificates) is not restricted. What a node may read is the Node
authorizer's business (nodegraph.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kybern.api import podrefs
from kybern.apiserver.nodegraph import node_of
from kybern.machinery import errors, meta

if TYPE_CHECKING:
    from aiohttp import web

    from kybern.apiserver.server import APIServer

MIRROR = meta.MIRROR_POD_ANNOTATION
NODE_LEASE_NAMESPACE = "kube-node-lease"
# kubeletapis.IsKubeletLabel: the kubernetes.io labels a kubelet may set on its Node
KUBELET_LABELS = {"kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch",
                  "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type",
                  "beta.kubernetes.io/os", "beta.kubernetes.io/arch",
                  "failure-domain.beta.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone",
                  "topology.kubernetes.io/region", "topology.kubernetes.io/zone"}
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


def _current_node() -> str | None:
    """The node making the write being admitted (from the REST request's context)."""
    from kybern.apiserver import admission_webhooks

    ctx = admission_webhooks.REQUEST.get()
    return node_of(ctx[0].get("user")) if ctx is not None else None


def forbidden(resource: str, name: str, why: str) -> errors.StatusError:
    return errors.StatusError(403, "Forbidden", f'{resource} "{name}" is forbidden: {why}',
                              details={"name": name, "kind": resource})


def _forbidden_labels(new: dict[str, str], old: dict[str, str]) -> list[str]:
    changed = {k for k in set(new) | set(old) if new.get(k) != old.get(k)}
    out = []
    for k in changed:
        ns = k.split("/", 1)[0] if "/" in k else ""
        restricted = ns == "node-restriction.kubernetes.io" or ns.endswith(".node-restriction.kubernetes.io")
        kubernetes = ns in ("kubernetes.io", "k8s.io") or ns.endswith((".kubernetes.io", ".k8s.io"))
        kubelet = k in KUBELET_LABELS or ns in KUBELET_LABEL_NAMESPACES or \
            ns.endswith(tuple("." + n for n in KUBELET_LABEL_NAMESPACES))
        if restricted or (kubernetes and not kubelet):
            out.append(k)
    return sorted(out)


# -- writes known by name alone: checked before the handler reads the body --------------
async def check_request(server: APIServer, request: web.Request, group: str, plural: str,
                        ns: str | None, name: str | None, sub: str | None) -> None:
    node = node_of(request.get("user"))
    if node is None or request.method in ("GET", "HEAD", "OPTIONS"):
        return
    method = request.method
    op = {"POST": "CREATE", "PUT": "UPDATE", "PATCH": "UPDATE", "DELETE": "DELETE"}.get(method, method)
    if (group, plural) == ("", "pods"):
        if sub not in (None, "status", "eviction"):
            raise forbidden("pods", name or "", f"unexpected pod subresource \"{sub}\", only 'status' and "
                                                "'eviction' are allowed")
        if sub is None and op == "CREATE" and name is None:
            return  # the object's turn: pod_create below
        if sub is None and op != "DELETE" or name is None:
            raise forbidden("pods", name or "", f'unexpected operation "{op}", node "{node}" can only create and '
                                                f'delete mirror pods')
        if sub == "status" and op != "UPDATE" or sub == "eviction" and op != "CREATE":
            raise forbidden("pods", name, f'unexpected operation "{op}"')
        if await _pod_node(server, ns, name) != node:
            why = {None: f'node "{node}" can only delete pods with spec.nodeName set to itself',
                   "status": f'node "{node}" can only update pod status for pods with spec.nodeName set to itself',
                   "eviction": f"node {node} can only evict pods with spec.nodeName set to itself"}[sub]
            raise forbidden("pods", name, why)
    elif (group, plural) == ("", "nodes") and name is not None and name != node:
        raise forbidden("nodes", name, f'node "{node}" is not allowed to modify node "{name}"')
    elif (group, plural) == ("coordination.k8s.io", "leases"):
        if ns != NODE_LEASE_NAMESPACE:
            raise forbidden("leases", name or "", f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system '
                                                  "namespace")
        if name is not None and name != node:
            raise forbidden("leases", name, "can only access node lease with the same name as the requesting node")


async def _pod_node(server: APIServer, ns: str | None, name: str) -> str:
    """A pod's spec.nodeName, from the watch cache as upstream's lister reads it (an
    indexed field: nothing decoded); 404 when there is no such pod."""
    from kybern.apiserver.store import object_key

    store = server.store("", "v1", "pods")
    rc = store.cache.resources.get(store.prefix)
    entry = rc.objects.get(object_key(store.info, ns, name)) if rc is not None and store.cache.is_ready() else None
    if entry is not None:
        return rc.field(entry, "spec.nodeName")  # type: ignore[union-attr]
    pod = await store.get(ns, name)  # not cached (yet): storage answers, or 404
    return str((pod.get("spec") or {}).get("nodeName") or "")


# -- writes whose object tells: admission hooks ------------------------------------------
async def pod_create(server: APIServer, pod: dict[str, Any]) -> None:
    node = _current_node()
    if node is None:
        return
    m, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    name = m.get("name", "")

    def no(why: str) -> errors.StatusError:
        return forbidden("pods", name, why)
    if MIRROR not in (m.get("annotations") or {}):
        raise no(f'pod does not have "{MIRROR}" annotation, node "{node}" can only create mirror pods')
    if spec.get("nodeName") != node:
        raise no(f'node "{node}" can only create pods with spec.nodeName set to itself')
    owners = m.get("ownerReferences") or []
    if len(owners) > 1:
        raise no(f'node "{node}" can only create pods with a single owner reference set to itself')
    if not owners or (owners[0].get("apiVersion"), owners[0].get("kind"), owners[0].get("name")) != ("v1", "Node",
                                                                                                      node):
        raise no(f'node "{node}" can only create pods with an owner reference set to itself')
    if not owners[0].get("controller"):
        raise no(f'node "{node}" can only create pods with a controller owner reference set to itself')
    if owners[0].get("blockOwnerDeletion"):
        raise no(f'node "{node}" must not set blockOwnerDeletion on an owner reference')
    own = await server.store("", "v1", "nodes").get(None, node)
    if owners[0].get("uid") != own["metadata"].get("uid"):
        raise no(f"node {node} UID mismatch: expected {owners[0].get('uid')} got {own['metadata'].get('uid')}")
    if spec.get("serviceAccountName"):
        raise no(f'node "{node}" can not create pods that reference a service account')
    if podrefs.references_secrets(spec):
        raise no(f'node "{node}" can not create pods that reference secrets')
    if podrefs.references_configmaps(spec):
        raise no(f'node "{node}" can not create pods that reference configmaps')
    if podrefs.projects(spec, "clusterTrustBundle"):
        raise no(f'node "{node}" can not create pods that reference clustertrustbundles')
    if any("persistentVolumeClaim" in v for v in spec.get("volumes") or []):
        raise no(f'node "{node}" can not create pods that reference persistentvolumeclaims')


async def node_create(node_obj: dict[str, Any]) -> None:
    node = _current_node()
    if node is None:
        return
    name = (node_obj.get("metadata") or {}).get("name", "")
    if name != node:
        raise forbidden("nodes", name, f'node "{node}" is not allowed to modify node "{name}"')
    bad = _forbidden_labels((node_obj.get("metadata") or {}).get("labels") or {}, {})
    if bad:
        raise forbidden("nodes", name, f'node "{node}" is not allowed to set the following labels: {", ".join(bad)}')


async def node_update(new: dict[str, Any], old: dict[str, Any]) -> None:
    node = _current_node()
    if node is None:
        return
    name = (new.get("metadata") or {}).get("name", "")
    if (new.get("spec") or {}).get("taints") != (old.get("spec") or {}).get("taints"):
        raise forbidden("nodes", name, f'node "{node}" is not allowed to modify taints')
    bad = _forbidden_labels((new.get("metadata") or {}).get("labels") or {},
                            (old.get("metadata") or {}).get("labels") or {})
    if bad:
        raise forbidden("nodes", name, f"is not allowed to modify labels: {', '.join(bad)}")


async def lease_create(lease: dict[str, Any]) -> None:
    node = _current_node()
    name = (lease.get("metadata") or {}).get("name", "")
    if node is not None and name != node:
        raise forbidden("leases", name, "can only access node lease with the same name as the requesting node")


async def token_request(server: APIServer, request: web.Request, ns: str, name: str, spec: dict[str, Any]) -> None:
    """A node's TokenRequest for service account `name` must be bound to a pod on
    itself (admitServiceAccount)."""
    node = node_of(request.get("user"))
    if node is None:
        return
    ref = spec.get("boundObjectRef") or {}
    if ref.get("apiVersion") != "v1" or ref.get("kind") != "Pod" or not ref.get("name"):
        raise forbidden("serviceaccounts", name, "node requested token not bound to a pod")
    if not ref.get("uid"):
        raise forbidden("serviceaccounts", name, "node requested token with a pod binding without a uid")
    store = server.store("", "v1", "pods")
    try:  # the watch cache's copy, as upstream's lister
        pod = await store.get(ns, ref["name"], resource_version="0")
    except errors.StatusError:
        pod = await store.get(ns, ref["name"])
    if ref["uid"] != pod["metadata"].get("uid"):
        raise forbidden("serviceaccounts", name, f"the UID in the bound object reference ({ref['uid']}) does not "
                        "match the UID in record. The object might have been deleted and then recreated")
    if (pod.get("spec") or {}).get("nodeName") != node:
        raise forbidden("serviceaccounts", name, "node requested token bound to a pod scheduled on a different node")
