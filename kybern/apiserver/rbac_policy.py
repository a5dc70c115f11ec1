"""The bootstrap RBAC policy (upstream's plugin/pkg/auth/authorizer/rbac/bootstrappolicy),
reconciled at apiserver start as kube-apiserver's rbac/bootstrap-roles post-start hook
does, and the ClusterRole aggregation controller (pkg/controller/clusterroleaggregation),
which here runs in the first apiserver process (docs/rbac.md).

Reconciling: a missing role or binding is created; an existing one gets the rules
(subjects) it lacks added, with its labels and annotations merged, unless annotated
`rbac.authorization.kubernetes.io/autoupdate: "false"`, which leaves it as the user
edited it. Nothing a user added is removed."""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import TYPE_CHECKING, Any

from kybern.api import bootstrap_token
from kybern.apiserver.store import Predicate
from kybern.machinery import errors, selectors

if TYPE_CHECKING:
    from kybern.apiserver.server import APIServer

log = logging.getLogger(__name__)

GROUP = "rbac.authorization.k8s.io"
API_VERSION = f"{GROUP}/v1"
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
READ_WRITE = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def R(verbs: list[str] | str, groups: list[str] | str, resources: list[str],  # noqa: N802 - upstream's NewRule
      names: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"verbs": [verbs] if isinstance(verbs, str) else list(verbs),
                           "apiGroups": [groups] if isinstance(groups, str) else list(groups),
                           "resources": list(resources)}
    if names:
        out["resourceNames"] = list(names)
    return out


def URLS(verbs: list[str] | str, urls: list[str]) -> dict[str, Any]:  # noqa: N802
    return {"verbs": [verbs] if isinstance(verbs, str) else list(verbs), "nonResourceURLs": list(urls)}


EVENTS_RULE = R(["create", "patch", "update"], ["", "events.k8s.io"], ["events"])

NODE_RULES = [
    R("create", "authentication.k8s.io", ["tokenreviews"]),
    R("create", "authorization.k8s.io", ["localsubjectaccessreviews", "subjectaccessreviews"]),
    R(READ, "", ["services"]),
    R(["create", "get", "list", "watch"], "", ["nodes"]),
    R(["patch", "update"], "", ["nodes/status"]),
    R(["patch", "update"], "", ["nodes"]),
    R(["create", "patch", "update"], "", ["events"]),
    R(READ, "", ["pods"]),
    R(["create", "delete"], "", ["pods"]),
    R(["patch", "update"], "", ["pods/status"]),
    R("create", "", ["pods/eviction"]),
    R(READ, "", ["configmaps", "secrets"]),
    R("get", "", ["persistentvolumeclaims", "persistentvolumes"]),
    R("get", "", ["endpoints"]),
    R(["create", "get", "list", "watch"], "certificates.k8s.io", ["certificatesigningrequests"]),
    R(["create", "delete", "get", "patch", "update"], "coordination.k8s.io", ["leases"]),
    R("get", "storage.k8s.io", ["volumeattachments"]),
    R("create", "", ["serviceaccounts/token"]),
    R(["get", "patch", "update"], "", ["persistentvolumeclaims/status"]),
    R(READ, "storage.k8s.io", ["csidrivers"]),
    R(["create", "delete", "get", "patch", "update"], "storage.k8s.io", ["csinodes"]),
    R(READ, "node.k8s.io", ["runtimeclasses"]),
]

NODE_PROXIER_RULES = [
    R(["list", "watch"], "", ["endpoints", "services"]),
    R(READ, "", ["nodes"]),
    EVENTS_RULE,
    R(["list", "watch"], "discovery.k8s.io", ["endpointslices"]),
]

# what the node's NetworkPolicy enforcer (kybern/network/netpol.py) reads with the
# node token besides pods (system:node has those), as a CNI's policy agent
# (Calico's calico-node, kube-router) does
NODE_NETWORK_POLICY_RULES = [
    R(["list", "watch"], "networking.k8s.io", ["networkpolicies"]),
    R(["list", "watch"], "", ["namespaces"]),
]


def _aggregated(label: str) -> dict[str, Any]:
    return {"clusterRoleSelectors": [{"matchLabels": {f"{GROUP}/{label}": "true"}}]}


def _role(name: str, rules: list[dict[str, Any]] | None, *, labels: dict[str, str] | None = None,
          aggregation: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"apiVersion": API_VERSION, "kind": "ClusterRole", "metadata": {
        "name": name, "labels": {**LABELS, **(labels or {})}, "annotations": {AUTOUPDATE: "true"}}}
    if aggregation:
        out["aggregationRule"] = _aggregated(aggregation)
    if rules:
        out["rules"] = rules
    return out


CLUSTER_ROLES: list[dict[str, Any]] = [
    _role("cluster-admin", [R("*", "*", ["*"]), URLS("*", ["*"])]),
    _role("admin", None, aggregation="aggregate-to-admin"),
    _role("edit", None, aggregation="aggregate-to-edit", labels={f"{GROUP}/aggregate-to-admin": "true"}),
    _role("view", None, aggregation="aggregate-to-view", labels={f"{GROUP}/aggregate-to-edit": "true"}),
    _role("system:aggregate-to-admin", [
        R("create", "authorization.k8s.io", ["localsubjectaccessreviews"]),
        R(READ_WRITE, GROUP, ["rolebindings", "roles"]),
    ], labels={f"{GROUP}/aggregate-to-admin": "true"}),
    _role("system:aggregate-to-edit", [
        R(READ, "", ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"]),
        R("impersonate", "", ["serviceaccounts"]),
        R(WRITE, "", ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"]),
        R("create", "", ["pods/eviction"]),
        R(WRITE, "", ["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                      "replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy"]),
        R("create", "", ["serviceaccounts/token"]),
        R(WRITE, "apps", ["daemonsets", "deployments", "deployments/rollback", "deployments/scale", "replicasets",
                          "replicasets/scale", "statefulsets", "statefulsets/scale"]),
        R(WRITE, "autoscaling", ["horizontalpodautoscalers"]),
        R(WRITE, "batch", ["cronjobs", "jobs"]),
        R(WRITE, "extensions", ["daemonsets", "deployments", "deployments/rollback", "deployments/scale", "ingresses",
                                "networkpolicies", "replicasets", "replicasets/scale",
                                "replicationcontrollers/scale"]),
        R(WRITE, "policy", ["poddisruptionbudgets"]),
        R(WRITE, "networking.k8s.io", ["ingresses", "networkpolicies"]),
        R(READ_WRITE, "coordination.k8s.io", ["leases"]),
    ], labels={f"{GROUP}/aggregate-to-edit": "true"}),
    _role("system:aggregate-to-view", [
        R(READ, "", ["configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "pods",
                     "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
                     "services/status"]),
        R(READ, "", ["bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status",
                     "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"]),
        R(READ, "", ["namespaces"]),
        R(READ, "discovery.k8s.io", ["endpointslices"]),
        R(READ, "apps", ["controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                         "deployments/status", "replicasets", "replicasets/scale", "replicasets/status",
                         "statefulsets", "statefulsets/scale", "statefulsets/status"]),
        R(READ, "autoscaling", ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
        R(READ, "batch", ["cronjobs", "cronjobs/status", "jobs", "jobs/status"]),
        R(READ, "extensions", ["daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                               "deployments/status", "ingresses", "ingresses/status", "networkpolicies", "replicasets",
                               "replicasets/scale", "replicasets/status", "replicationcontrollers/scale"]),
        R(READ, "policy", ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
        R(READ, "networking.k8s.io", ["ingresses", "ingresses/status", "networkpolicies"]),
    ], labels={f"{GROUP}/aggregate-to-view": "true"}),
    _role("system:auth-delegator", [
        R("create", "authentication.k8s.io", ["tokenreviews"]),
        R("create", "authorization.k8s.io", ["subjectaccessreviews"]),
    ]),
    _role("system:basic-user", [
        R("create", "authorization.k8s.io", ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
        R("create", "authentication.k8s.io", ["selfsubjectreviews"]),
    ]),
    _role("system:discovery", [URLS("get", ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
                                            "/openapi/*", "/readyz", "/version", "/version/"])]),
    _role("system:public-info-viewer", [URLS("get", ["/healthz", "/livez", "/readyz", "/version", "/version/"])]),
    _role("system:monitoring", [URLS("get", ["/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics",
                                             "/metrics/slis", "/readyz", "/readyz/*"])]),
    _role("system:node", NODE_RULES),
    _role("system:node-proxier", NODE_PROXIER_RULES),
    _role("system:node-bootstrapper", [
        R(["create", "get", "list", "watch"], "certificates.k8s.io", ["certificatesigningrequests"])]),
    # what the csrapproving controller asks before approving a kubelet client CSR
    _role("system:certificates.k8s.io:certificatesigningrequests:nodeclient", [
        R("create", "certificates.k8s.io", ["certificatesigningrequests/nodeclient"])]),
    _role("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", [
        R("create", "certificates.k8s.io", ["certificatesigningrequests/selfnodeclient"])]),
    # who may approve requests for the well-known signers (bind with update on
    # certificatesigningrequests/approval; docs/certificates.md)
    *[_role(f"system:certificates.k8s.io:{signer}-approver",
            [R("approve", "certificates.k8s.io", ["signers"], [f"kubernetes.io/{signer}"])])
      for signer in ("kube-apiserver-client", "kube-apiserver-client-kubelet", "kubelet-serving", "legacy-unknown")],
    _role("system:kube-scheduler", [
        EVENTS_RULE,
        R("create", "coordination.k8s.io", ["leases"]),
        R(["get", "update"], "coordination.k8s.io", ["leases"], ["kube-scheduler"]),
        R(READ, "", ["nodes"]),
        R(["delete", "get", "list", "watch"], "", ["pods"]),
        R("create", "", ["bindings", "pods/binding"]),
        R(["patch", "update"], "", ["pods/status"]),
        R(READ, "", ["replicationcontrollers", "services"]),
        R(READ, ["apps", "extensions"], ["replicasets"]),
        R(READ, "apps", ["statefulsets"]),
        R(READ, "policy", ["poddisruptionbudgets"]),
        R(READ, "", ["persistentvolumeclaims", "persistentvolumes"]),
        R("create", "authentication.k8s.io", ["tokenreviews"]),
        R("create", "authorization.k8s.io", ["subjectaccessreviews"]),
        R(READ, "storage.k8s.io", ["csinodes"]),
        R(READ, "", ["namespaces"]),
        R(READ, "storage.k8s.io", ["csidrivers"]),
        R(READ, "storage.k8s.io", ["csistoragecapacities"]),
    ]),
    _role("system:volume-scheduler", [
        R(["get", "list", "patch", "update", "watch"], "", ["persistentvolumes"]),
        R(READ, "storage.k8s.io", ["storageclasses"]),
        R(["get", "list", "patch", "update", "watch"], "", ["persistentvolumeclaims"]),
    ]),
    _role("system:kube-controller-manager", [
        EVENTS_RULE,
        R("create", "coordination.k8s.io", ["leases"]),
        R(["get", "update"], "coordination.k8s.io", ["leases"], ["kube-controller-manager"]),
        R("create", "", ["secrets", "serviceaccounts"]),
        R("delete", "", ["secrets"]),
        R("get", "", ["configmaps", "namespaces", "secrets", "serviceaccounts"]),
        R("update", "", ["secrets", "serviceaccounts"]),
        R("create", "authentication.k8s.io", ["tokenreviews"]),
        R("create", "authorization.k8s.io", ["subjectaccessreviews"]),
        R(["list", "watch"], "*", ["*"]),
        R("create", "", ["serviceaccounts/token"]),
    ]),
    _role("system:kube-dns", [R(["list", "watch"], "", ["endpoints", "services"])]),
    _role("system:service-account-issuer-discovery", [
        URLS("get", ["/.well-known/openid-configuration", "/.well-known/openid-configuration/", "/openid/v1/jwks",
                     "/openid/v1/jwks/"])]),
]


def _subject(kind: str, name: str, namespace: str = "") -> dict[str, Any]:
    if kind == "ServiceAccount":
        return {"kind": kind, "name": name, "namespace": namespace}
    return {"apiGroup": GROUP, "kind": kind, "name": name}


def _binding(name: str, subjects: list[dict[str, Any]], role: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"apiVersion": API_VERSION, "kind": "ClusterRoleBinding", "metadata": {
        "name": name, "labels": dict(LABELS), "annotations": {AUTOUPDATE: "true"}},
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role or name}}
    if subjects:
        out["subjects"] = subjects
    return out


# what the node join token authenticates as (authz.NODE_USER)
NODE_TOKEN_USER = "system:node:kybern-node-token"

CLUSTER_ROLE_BINDINGS: list[dict[str, Any]] = [
    _binding("cluster-admin", [_subject("Group", "system:masters")]),
    _binding("system:basic-user", [_subject("Group", "system:authenticated")]),
    _binding("system:discovery", [_subject("Group", "system:authenticated")]),
    _binding("system:public-info-viewer", [_subject("Group", "system:authenticated"),
                                           _subject("Group", "system:unauthenticated")]),
    _binding("system:kube-controller-manager", [_subject("User", "system:kube-controller-manager")]),
    _binding("system:kube-dns", [_subject("ServiceAccount", "kube-dns", "kube-system")]),
    _binding("system:kube-scheduler", [_subject("User", "system:kube-scheduler")]),
    _binding("system:monitoring", [_subject("Group", "system:monitoring")]),
    # no subjects: the Node authorizer grants nodes these rules (as upstream since 1.8)
    _binding("system:node", []),
    _binding("system:node-proxier", [_subject("User", "system:kube-proxy")]),
    # as kubeadm's kubeadm:kubelet-bootstrap, kubeadm:node-autoapprove-bootstrap and
    # ...-certificate-rotation: the node join token's identity and `kybern token create`'s
    # bootstrap tokens ask for node client certificates, which are approved; a node renews its own
    _binding("kybern:kubelet-bootstrap", [_subject("Group", bootstrap_token.NODE_GROUP)], "system:node-bootstrapper"),
    _binding("kybern:node-autoapprove-bootstrap", [_subject("User", NODE_TOKEN_USER),
                                                   _subject("Group", bootstrap_token.NODE_GROUP)],
             "system:certificates.k8s.io:certificatesigningrequests:nodeclient"),
    _binding("kybern:node-autoapprove-certificate-rotation", [_subject("Group", "system:nodes")],
             "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"),
    _binding("system:service-account-issuer-discovery", [_subject("Group", "system:serviceaccounts")]),
    _binding("system:volume-scheduler", [_subject("User", "system:kube-scheduler")], "system:volume-scheduler"),
]


# -- reconciliation ---------------------------------------------------------------------------

def _merge_meta(live: dict[str, Any], want: dict[str, Any]) -> bool:
    changed = False
    m, w = live.setdefault("metadata", {}), want["metadata"]
    for key in ("labels", "annotations"):
        cur = m.get(key) or {}
        for k, v in (w.get(key) or {}).items():
            if k not in cur:
                cur[k] = v
                changed = True
        if cur:
            m[key] = cur
    return changed


async def reconcile(server: APIServer) -> None:
    """Create the bootstrap roles and bindings that are missing; add what an
    auto-updated one lacks (ReconcileRoleOperation/ReconcileRoleBindingOperation)."""
    from kybern.apiserver import authz

    roles = server.store(GROUP, "v1", "clusterroles")
    for want in CLUSTER_ROLES:
        await _reconcile_one(roles, want, lambda live, w: _add_missing_rules(live, w, authz))
    bindings = server.store(GROUP, "v1", "clusterrolebindings")
    for want in CLUSTER_ROLE_BINDINGS:
        await _reconcile_one(bindings, want, _add_missing_subjects)


def _add_missing_rules(live: dict[str, Any], want: dict[str, Any], authz: Any) -> bool:
    changed = False
    if want.get("aggregationRule"):
        # an aggregated role's rules are the controller's; its selectors are unioned
        cur = (live.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
        add = [s for s in want["aggregationRule"]["clusterRoleSelectors"] if s not in cur]
        if add:
            live["aggregationRule"] = {"clusterRoleSelectors": cur + add}
            changed = True
        return changed
    rules = live.get("rules") or []
    missing = [r for r in want.get("rules") or [] if authz.missing_rights(rules, [r])]
    if missing:
        live["rules"] = rules + missing
        changed = True
    return changed


def _add_missing_subjects(live: dict[str, Any], want: dict[str, Any]) -> bool:
    subjects = live.get("subjects") or []
    add = [s for s in want.get("subjects") or [] if not any(
        (x.get("kind"), x.get("name"), x.get("namespace") or "") == (s["kind"], s["name"], s.get("namespace") or "")
        for x in subjects)]
    if add:
        live["subjects"] = subjects + add
    return bool(add)


class _Unchanged(Exception):
    pass


async def _reconcile_one(store: Any, want: dict[str, Any], add: Any) -> None:
    name = want["metadata"]["name"]
    try:
        await store.create(None, copy.deepcopy(want))
        return
    except errors.StatusError as e:
        if e.reason != "AlreadyExists":
            raise

    def make(cur: dict[str, Any] | None) -> dict[str, Any]:
        if cur is None:
            raise _Unchanged
        if (cur["metadata"].get("annotations") or {}).get(AUTOUPDATE) == "false":
            raise _Unchanged  # the user turned auto-update off: their edits stand
        changed = _merge_meta(cur, want)
        if not (add(cur, want) or changed):
            raise _Unchanged
        return cur
    try:
        await store.update(None, name, make)
    except _Unchanged:
        pass


# -- the ClusterRole aggregation controller ---------------------------------------------------------

def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    try:
        return selectors.selector_matches(selector, labels)
    except (ValueError, AttributeError, TypeError):
        return False


def aggregate(role: dict[str, Any], all_roles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rules an aggregated ClusterRole gets: every selected role's rules, in name
    order, without duplicates (ClusterRoleAggregationController.syncClusterRole)."""
    rules: list[dict[str, Any]] = []
    name = role["metadata"]["name"]
    sels = (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
    for other in sorted(all_roles, key=lambda r: r["metadata"]["name"]):
        if other["metadata"]["name"] == name:
            continue
        labels = other["metadata"].get("labels") or {}
        if not any(_selects(s, labels) for s in sels):
            continue
        for r in other.get("rules") or []:
            if r not in rules:
                rules.append(r)
    return rules


class Aggregator:
    """Keeps aggregated ClusterRoles' rules current from the watch cache (run by
    the apiserver process that bootstraps, so it writes once per change)."""

    def __init__(self, server: APIServer) -> None:
        self.server = server
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Aggregate what the bootstrap policy asks for now (view into edit into admin),
        then follow changes."""
        store = self.server.store(GROUP, "v1", "clusterroles")
        for _ in range(5):
            if not (await self.sync_all(store))[1]:
                break
        self._task = asyncio.create_task(self._run(), name="clusterrole-aggregation")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        store = self.server.store(GROUP, "v1", "clusterroles")
        rv = ""
        while True:
            try:
                rv = (await self.sync_all(store))[0]
                w: Any = await store.watch(None, pred=Predicate(), resource_version=rv)
                try:
                    while True:
                        batch = await w.next_batch(30.0)
                        if batch is None:
                            break
                        if isinstance(batch, str):
                            continue
                        rv = (await self.sync_all(store))[0]
                finally:
                    w.close()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep aggregating; the next round lists again
                log.exception("clusterrole aggregation failed")
                await asyncio.sleep(1)

    async def sync_all(self, store: Any) -> tuple[str, bool]:
        """(resourceVersion listed, whether a role was updated)."""
        lst = await store.list(None, pred=Predicate())
        roles = lst["items"]
        changed = False
        for role in roles:
            if not (role.get("aggregationRule") or {}).get("clusterRoleSelectors"):
                continue
            want = aggregate(role, roles)
            if (role.get("rules") or []) == want:
                continue
            name = role["metadata"]["name"]

            def set_rules(cur: dict[str, Any], want: list[dict[str, Any]] = want) -> dict[str, Any]:
                cur["rules"] = want
                return cur
            try:
                await store.update(None, name, set_rules)
                changed = True
            except errors.StatusError as e:
                if e.code not in (404, 409):
                    raise
        return str(lst["metadata"]["resourceVersion"]), changed
