"""Authorization as kube-apiserver's `--authorization-mode` chain: request
attributes (k8s.io/apiserver's RequestInfoFactory), the system:masters bypass,
the Node and RBAC authorizers (plugin/pkg/auth/authorizer/rbac), Forbidden
Statuses worded as upstream's responsewriters, impersonation
(filters/impersonation.go) and RBAC's escalation checks
(pkg/registry/rbac/validation). docs/rbac.md says what differs.

Speed: RBAC objects are read from the watch cache (never from storage per
request) into an index rebuilt only when one of them changes; the rules a
(user, groups, namespace) holds are memoised until then. The admin token's
requests (system:masters) skip all of it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from kybern.apiserver import rbac_policy
from kybern.apiserver.nodegraph import NodeGraph, node_of
from kybern.machinery import errors

if TYPE_CHECKING:
    from kybern.apiserver.server import APIServer

GROUP = "rbac.authorization.k8s.io"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
# who a request with no credentials is, with --anonymous-auth (upstream's default)
ANONYMOUS: dict[str, Any] = {"username": "system:anonymous", "groups": [UNAUTHENTICATED]}
NODES_GROUP = "system:nodes"
SA_PREFIX = "system:serviceaccount:"
MODES = ("AlwaysAllow", "AlwaysDeny", "Node", "RBAC")
DEFAULT_MODES = "Node,RBAC"

# the rbac prefixes in the watch cache (kybern/apiserver/store.py key_prefix)
_PREFIXES = {kind: f"/registry/{GROUP}/{kind}/" for kind in ("clusterroles", "roles", "clusterrolebindings",
                                                             "rolebindings")}

ALLOW, DENY, NO_OPINION = "allow", "deny", "noopinion"


@dataclass
class Attributes:
    """authorizer.Attributes: who asks to do what."""
    user: dict[str, Any]
    verb: str
    resource_request: bool = True
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def username(self) -> str:
        return str(self.user.get("username") or "")

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(self.user.get("groups") or ())


def parse_modes(text: str) -> tuple[str, ...]:
    """The --authorization-mode list, checked as kube-apiserver does."""
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    if not modes:
        raise ValueError("at least one authorization-mode must be passed")
    for m in modes:
        if m in ("Webhook", "ABAC"):
            raise ValueError(f"authorization-mode {m!r} is not supported by kybern")
        if m not in MODES:
            raise ValueError(f"authorization-mode {m!r} is not a valid mode")
    if len(set(modes)) != len(modes):
        raise ValueError(f"authorization-mode {text!r} has mode specified more than once")
    return modes


# -- request attributes ----------------------------------------------------------

_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
                 "DELETE": "delete"}
_NAMESPACE_SUBRESOURCES = ("status", "finalize")


def request_attributes(user: dict[str, Any], method: str, path: str, query: Any) -> Attributes:
    """RequestInfoFactory.NewRequestInfo: resource requests under /api and /apis,
    everything else a non-resource URL with the lower-cased HTTP method as verb."""
    parts = [p for p in path.strip("/").split("/")] if path.strip("/") else []
    nonres = Attributes(user, method.lower(), resource_request=False, path=path)
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return nonres
    cur = parts[1:]
    group = ""
    if parts[0] == "apis":
        if len(cur) < 3:
            return nonres
        group, cur = cur[0], cur[1:]
    a = Attributes(user, "", api_group=group, api_version=cur[0], path=path)
    cur = cur[1:]
    if cur[0] in ("proxy", "watch"):  # the deprecated /watch/ and /proxy/ path prefixes
        if len(cur) < 2:
            return nonres
        a.verb, cur = cur[0], cur[1:]
    else:
        a.verb = _METHOD_VERBS.get(method, "")
    if cur[0] == "namespaces":
        if len(cur) > 1:
            a.namespace = cur[1]
            if len(cur) > 2 and cur[2] not in _NAMESPACE_SUBRESOURCES:
                cur = cur[2:]
    if len(cur) >= 3 and a.verb != "proxy":
        a.subresource = cur[2]
    if len(cur) >= 2:
        a.name = cur[1]
    a.resource = cur[0]
    if not a.name and a.verb == "get":
        a.verb = "watch" if query.get("watch", "").lower() in ("true", "1") else "list"
        fs = query.get("fieldSelector") or ""
        for term in fs.split(","):  # an exact metadata.name match names the object
            k, sep, v = term.partition("==") if "==" in term else term.partition("=")
            if sep and k.strip() == "metadata.name" and not k.endswith("!") and v and "/" not in v \
                    and v not in (".", ".."):
                a.name = v
    if not a.name and a.verb == "delete":
        a.verb = "deletecollection"
    return a


# -- rule matching (rbac.RuleAllows, pkg/apis/rbac/v1 helpers) ---------------------

def rule_allows(a: Attributes, rule: dict[str, Any]) -> bool:
    verbs = rule.get("verbs") or ()
    if "*" not in verbs and a.verb not in verbs:
        return False
    if not a.resource_request:
        return _url_matches(rule.get("nonResourceURLs") or (), a.path)
    groups = rule.get("apiGroups") or ()
    if "*" not in groups and a.api_group not in groups:
        return False
    if not _resource_matches(rule.get("resources") or (), a.resource, a.subresource):
        return False
    names = rule.get("resourceNames")
    return not names or a.name in names


def _resource_matches(resources: Any, resource: str, sub: str) -> bool:
    combined = f"{resource}/{sub}" if sub else resource
    for r in resources:
        if r == "*" or r == combined:
            return True
        if sub and r == "*/" + sub:  # "*/scale": the subresource of any resource
            return True
    return False


def _url_matches(urls: Any, path: str) -> bool:
    for u in urls:
        if u == "*" or u == path or (u.endswith("*") and path.startswith(u[:-1])):
            return True
    return False


# -- the RBAC index ------------------------------------------------------------------

def _subject_keys(s: dict[str, Any], binding_ns: str) -> str | None:
    """What a binding subject matches: a username ("u:...") or a group ("g:...")."""
    kind, name = s.get("kind"), s.get("name") or ""
    if kind == "User":
        return "u:" + name
    if kind == "Group":
        return "g:" + name
    if kind == "ServiceAccount":
        ns = s.get("namespace") or binding_ns
        return f"u:{SA_PREFIX}{ns}:{name}" if ns else None
    return None


def _describe_subject(s: dict[str, Any], binding_ns: str) -> str:
    if s.get("kind") == "ServiceAccount":
        return f'ServiceAccount "{s.get("name", "")}/{s.get("namespace") or binding_ns}"'
    return f'{s.get("kind")} "{s.get("name", "")}"'


@dataclass
class _Grant:
    rules: list[dict[str, Any]]
    source: str
    binding: str  # "ClusterRoleBinding "x" of ClusterRole "y" to Group "z"" (RBAC's allow reason)


@dataclass
class _Index:
    cluster_roles: dict[str, dict[str, Any]] = field(default_factory=dict)
    roles: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    cluster: dict[str, list[_Grant]] = field(default_factory=dict)  # subject key -> grants everywhere
    by_ns: dict[str, dict[str, list[_Grant]]] = field(default_factory=dict)  # ns -> subject key -> grants


class RBAC:
    """The RBAC authorizer over the watch cache's Roles, ClusterRoles and bindings."""

    def __init__(self, server: APIServer) -> None:
        self.server = server
        self._stamp: tuple[Any, ...] | None = None
        self._index = _Index()
        self._memo: dict[tuple[str, tuple[str, ...], str], list[_Grant]] = {}

    def _current_stamp(self) -> tuple[Any, ...]:
        res = self.server.watch_cache.resources
        out: list[Any] = []
        for p in _PREFIXES.values():
            rc = res.get(p)
            out.append(None if rc is None else (id(rc), rc.ring[-1].rv if rc.ring else rc.start_rv,
                                                len(rc.objects)))
        return tuple(out)

    def index(self) -> _Index:
        stamp = self._current_stamp()
        if stamp != self._stamp:
            self._index = self._build()
            self._memo = {}
            self._stamp = stamp
        return self._index

    def _objects(self, kind: str) -> list[dict[str, Any]]:
        rc = self.server.watch_cache.resources.get(_PREFIXES[kind])
        return [] if rc is None else [orjson.loads(e.raw) for e in list(rc.objects.values())]

    def _build(self) -> _Index:
        ix = _Index()
        for cr in self._objects("clusterroles"):
            ix.cluster_roles[cr["metadata"]["name"]] = cr
        for r in self._objects("roles"):
            ix.roles[(r["metadata"].get("namespace") or "", r["metadata"]["name"])] = r
        for b in self._objects("clusterrolebindings"):
            ref = b.get("roleRef") or {}
            role = ix.cluster_roles.get(ref.get("name", "")) if ref.get("kind") == "ClusterRole" else None
            if role is None:
                continue
            for s in b.get("subjects") or []:
                key = _subject_keys(s, "")
                if key:
                    src = (f'ClusterRoleBinding "{b["metadata"]["name"]}" of ClusterRole "{ref.get("name")}" '
                           f"to {_describe_subject(s, '')}")
                    ix.cluster.setdefault(key, []).append(_Grant(role.get("rules") or [], src,
                                                                 "c/" + b["metadata"]["name"]))
        for b in self._objects("rolebindings"):
            ns = b["metadata"].get("namespace") or ""
            ref = b.get("roleRef") or {}
            if ref.get("kind") == "ClusterRole":
                role = ix.cluster_roles.get(ref.get("name", ""))
            elif ref.get("kind") == "Role":
                role = ix.roles.get((ns, ref.get("name", "")))
            else:
                role = None
            if role is None:
                continue
            for s in b.get("subjects") or []:
                key = _subject_keys(s, ns)
                if key:
                    src = (f'RoleBinding "{b["metadata"]["name"]}/{ns}" of {ref.get("kind")} "{ref.get("name")}" '
                           f"to {_describe_subject(s, ns)}")
                    ix.by_ns.setdefault(ns, {}).setdefault(key, []).append(
                        _Grant(role.get("rules") or [], src, f"n/{ns}/{b['metadata']['name']}"))
        return ix

    def grants(self, user: dict[str, Any], namespace: str) -> list[_Grant]:
        """Every rule source that applies to `user` in `namespace` ("" = cluster-wide only)."""
        ix = self.index()
        groups = tuple(user.get("groups") or ())
        key = (str(user.get("username") or ""), groups, namespace)
        got = self._memo.get(key)
        if got is None:
            keys = ["u:" + key[0], *("g:" + g for g in groups)]
            found = [g for k in keys for g in ix.cluster.get(k, ())]
            if namespace:
                ns_grants = ix.by_ns.get(namespace, {})
                found += [g for k in keys for g in ns_grants.get(k, ())]
            seen: set[str] = set()  # a binding naming the user twice (user and group) counts once
            got = []
            for g in found:
                if g.binding not in seen:
                    seen.add(g.binding)
                    got.append(g)
            if len(self._memo) > 10_000:
                self._memo.clear()
            self._memo[key] = got
        return got

    def rules_for(self, user: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
        return [r for g in self.grants(user, namespace) for r in g.rules]

    def authorize(self, a: Attributes) -> tuple[str, str]:
        for g in self.grants(a.user, a.namespace):
            for rule in g.rules:
                if rule_allows(a, rule):
                    return ALLOW, f"RBAC: allowed by {g.source}"
        return NO_OPINION, ""

    def role_rules(self, kind: str, namespace: str, name: str) -> list[dict[str, Any]] | None:
        """GetRoleReferenceRules: the rules of a binding's roleRef, None when it does not exist."""
        ix = self.index()
        role = ix.cluster_roles.get(name) if kind == "ClusterRole" else ix.roles.get((namespace, name))
        return None if role is None else list(role.get("rules") or [])


# -- the Node authorizer ---------------------------------------------------------------

def node_rules() -> list[dict[str, Any]]:
    """What the Node authorizer lets a node do beyond its graph (nodegraph.py): upstream's
    system:node role and, as kybern's node identity also serves the node's kube-proxy and
    NetworkPolicy enforcer, system:node-proxier's rules and list/watch of networkpolicies
    and namespaces (kybern/apiserver/rbac_policy.py). The join token's shared identity
    gets these rules whole, the graph's resources included (docs/rbac.md)."""
    from kybern.apiserver import rbac_policy

    return rbac_policy.NODE_RULES + rbac_policy.NODE_PROXIER_RULES + rbac_policy.NODE_NETWORK_POLICY_RULES


class Authorizer:
    """The --authorization-mode chain, behind the system:masters bypass."""

    def __init__(self, server: APIServer, modes: tuple[str, ...]) -> None:
        self.modes = modes
        # the RBAC objects' rules, for escalation checks whatever the modes
        self.resolver = RBAC(server)
        self.rbac = self.resolver if "RBAC" in modes else None
        self._node_rules = node_rules() if "Node" in modes else []
        self.node_graph = NodeGraph(server) if "Node" in modes else None
        self.server = server
        # the whole chain allows everything: no attributes need computing
        self.always_allow = modes[0] == "AlwaysAllow"

    def _static_node(self, a: Attributes) -> bool:
        return any(rule_allows(a, r) for r in self._node_rules)

    def authorize(self, a: Attributes) -> tuple[bool, str]:
        """(allowed, reason) as the union authorizer: the first decision wins."""
        if MASTERS in a.groups:
            return True, ""
        reasons: list[str] = []
        for mode in self.modes:
            if mode == "AlwaysAllow":
                return True, ""
            if mode == "AlwaysDeny":
                return False, "Everything is forbidden."
            if mode == "Node":
                if NODES_GROUP not in a.groups:
                    continue
                if a.username == rbac_policy.NODE_TOKEN_USER:  # the join token: node rules, unsubdivided
                    if self._static_node(a):
                        return True, ""
                    continue
                node = node_of(a.user)  # "" for "system:node:" itself: upstream's unknown node
                if node is None:  # in the group but not named as a node: not a node
                    continue
                assert self.node_graph is not None
                ok, why = self.node_graph.authorize(node, a, self._static_node)
                if ok:
                    return True, ""
                if why:
                    reasons.append(why)
                continue
            assert self.rbac is not None
            d, why = self.rbac.authorize(a)
            if d == ALLOW:
                return True, why
            if why:
                reasons.append(why)
        return False, "; ".join(reasons)

    async def authorize_fresh(self, a: Attributes) -> tuple[bool, str]:
        """authorize(), and on a denial once more after the watch cache has caught up
        with storage: a role or binding just written (by this or another apiserver
        process) counts at once, where upstream's informers lag a little."""
        ok, why = self.authorize(a)
        # a node's request may name a pod bound an instant ago, by another process (the graph)
        by_node = self.node_graph is not None and NODES_GROUP in a.groups
        if ok or (self.rbac is None and not by_node):
            return ok, why
        before = self.rbac._current_stamp() if self.rbac is not None else None
        try:
            await asyncio.wait_for(self.server.watch_cache.wait_fresh(), 2)
        except (TimeoutError, asyncio.TimeoutError):
            return ok, why
        if not by_node and self.rbac is not None and self.rbac._current_stamp() == before:
            return ok, why
        return self.authorize(a)

    def rules_for(self, user: dict[str, Any], namespace: str
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool, str]:
        """SelfSubjectRulesReview's (resourceRules, nonResourceRules, incomplete, evaluationError)."""
        res: list[dict[str, Any]] = []
        nonres: list[dict[str, Any]] = []
        incomplete, err = False, ""
        for mode in self.modes:
            if mode == "AlwaysAllow":
                res.append({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})
                nonres.append({"verbs": ["*"], "nonResourceURLs": ["*"]})
            elif mode == "Node":
                if NODES_GROUP in (user.get("groups") or ()):
                    incomplete, err = True, "node authorizer does not support user rule resolution"
            elif mode == "RBAC" and self.rbac is not None:
                for r in self.rbac.rules_for(user, namespace):
                    if r.get("resources"):
                        out = {"verbs": list(r.get("verbs") or []), "apiGroups": list(r.get("apiGroups") or []),
                               "resources": list(r["resources"])}
                        if r.get("resourceNames"):
                            out["resourceNames"] = list(r["resourceNames"])
                        res.append(out)
                    if r.get("nonResourceURLs"):
                        nonres.append({"verbs": list(r.get("verbs") or []),
                                       "nonResourceURLs": list(r["nonResourceURLs"])})
        return res, nonres, incomplete, err


# -- Forbidden -------------------------------------------------------------------------

def forbidden(a: Attributes, reason: str = "") -> errors.StatusError:
    """responsewriters.Forbidden: NewForbidden(group resource, name, message)."""
    user = a.username
    if not a.resource_request:
        msg = f'User "{user}" cannot {a.verb} path "{a.path}"'
    else:
        res = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
        where = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
        msg = f'User "{user}" cannot {a.verb} resource "{res}" in API group "{a.api_group}" {where}'
    if reason:
        msg += ": " + reason
    return forbidden_error(a.api_group if a.resource_request else "", a.resource if a.resource_request else "",
                           a.name if a.resource_request else "", msg)


def forbidden_error(group: str, resource: str, name: str, why: str) -> errors.StatusError:
    """apierrors.NewForbidden."""
    if not resource and not group:
        message = f"forbidden: {why}"
    else:
        q = f"{resource}.{group}" if group else resource
        message = f'{q} "{name}" is forbidden: {why}' if name else f"{q} is forbidden: {why}"
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    if resource:
        details["kind"] = resource
    return errors.StatusError(403, "Forbidden", message, details=details)


# -- impersonation ---------------------------------------------------------------------

IMPERSONATE_USER = "Impersonate-User"
IMPERSONATE_GROUP = "Impersonate-Group"
IMPERSONATE_UID = "Impersonate-Uid"
IMPERSONATE_EXTRA = "impersonate-extra-"


def wants_impersonation(headers: Any) -> bool:
    # three C lookups on every request; Impersonate-Extra-* headers are read once a user
    # is impersonated (scanning every header name for them costs ~2 us per request)
    return IMPERSONATE_USER in headers or IMPERSONATE_GROUP in headers or IMPERSONATE_UID in headers


async def impersonate(authz: Authorizer, requestor: dict[str, Any], headers: Any) -> dict[str, Any]:
    """WithImpersonation: each thing asked for must be allowed the `impersonate`
    verb; the request then runs as the user built from the headers."""
    from urllib.parse import unquote

    asked: list[tuple[str, str, str, str, str]] = []  # (kind, group, namespace, name, extra key)
    user_name = headers.get(IMPERSONATE_USER, "")
    if user_name:
        if user_name.startswith(SA_PREFIX) and user_name.count(":") == 3 and all(user_name.split(":")[2:]):
            _, _, ns, name = user_name.split(":")
            asked.append(("ServiceAccount", "", ns, name, ""))
        else:
            asked.append(("User", "", "", user_name, ""))
    groups_given = headers.getall(IMPERSONATE_GROUP, [])
    asked += [("Group", "", "", g, "") for g in groups_given]
    for k in headers:
        if k.lower().startswith(IMPERSONATE_EXTRA):
            key = unquote(k[len(IMPERSONATE_EXTRA):].lower())
            asked += [("UserExtra", "authentication.k8s.io", "", v, key) for v in headers.getall(k)]
    uid = headers.get(IMPERSONATE_UID, "")
    if uid:
        asked.append(("UID", "authentication.k8s.io", "", uid, ""))
    if not user_name:
        raise errors.internal("requested " + " ".join(f"{{{k} {n}}}" for k, _, _, n, _ in asked)
                              + " without impersonating a user")
    username, groups, extra = "", [], {}  # type: ignore[var-annotated]
    for kind, group, ns, name, key in asked:
        resource = {"ServiceAccount": "serviceaccounts", "User": "users", "Group": "groups",
                    "UserExtra": "userextras", "UID": "uids"}[kind]
        a = Attributes(requestor, "impersonate", api_group=group, resource=resource, subresource=key,
                       namespace=ns, name=name)
        ok, why = await authz.authorize_fresh(a)
        if not ok:
            raise forbidden(a, why)
        if kind == "ServiceAccount":
            username = f"{SA_PREFIX}{ns}:{name}"
            if not groups_given:
                groups = ["system:serviceaccounts", f"system:serviceaccounts:{ns}"]
        elif kind == "User":
            username = name
        elif kind == "Group":
            groups.append(name)
        elif kind == "UserExtra":
            extra.setdefault(key, []).append(name)
    if username != "system:anonymous":
        if AUTHENTICATED not in groups and UNAUTHENTICATED not in groups:
            groups.append(AUTHENTICATED)
    elif UNAUTHENTICATED not in groups:
        groups.append(UNAUTHENTICATED)
    out: dict[str, Any] = {"username": username, "groups": groups}
    if uid:
        out["uid"] = uid
    if extra:
        out["extra"] = extra
    return out


# -- escalation checks (pkg/registry/rbac/validation) -----------------------------------------

def _rule_covers(owner: dict[str, Any], sub: dict[str, Any]) -> bool:
    """ruleCovers: whether `owner` grants everything the atomic rule `sub` does."""
    ov, og = owner.get("verbs") or [], owner.get("apiGroups") or []
    if "*" not in ov and not set(sub.get("verbs") or []) <= set(ov):
        return False
    if "*" not in og and not set(sub.get("apiGroups") or []) <= set(og):
        return False
    ores = owner.get("resources") or []
    for r in sub.get("resources") or []:
        if "*" in ores or r in ores:
            continue
        if "/" in r and "*/" + r.split("/", 1)[1] in ores:
            continue
        return False
    ourls = owner.get("nonResourceURLs") or []
    for u in sub.get("nonResourceURLs") or []:
        if not any(o == "*" or o == u or (o.endswith("*") and u.startswith(o[:-1])) for o in ourls):
            return False
    onames, snames = owner.get("resourceNames") or [], sub.get("resourceNames") or []
    if snames:
        return not onames or set(snames) <= set(onames)
    return not onames


def breakdown(rule: dict[str, Any]) -> list[dict[str, Any]]:
    """BreakdownRule: one rule per group, resource, verb (and name); URLs per verb."""
    out: list[dict[str, Any]] = []
    names = rule.get("resourceNames") or []
    for g in rule.get("apiGroups") or []:
        for r in rule.get("resources") or []:
            for v in rule.get("verbs") or []:
                if names:
                    out += [{"apiGroups": [g], "resources": [r], "verbs": [v], "resourceNames": [n]} for n in names]
                else:
                    out.append({"apiGroups": [g], "resources": [r], "verbs": [v]})
    for u in rule.get("nonResourceURLs") or []:
        out += [{"nonResourceURLs": [u], "verbs": [v]} for v in rule.get("verbs") or []]
    return out


def missing_rights(owner_rules: list[dict[str, Any]], rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Covers: the atomic rules of `rules` no owner rule covers."""
    return [sub for r in rules for sub in breakdown(r) if not any(_rule_covers(o, sub) for o in owner_rules)]


def _go_quote_list(items: list[str]) -> str:
    return "[" + " ".join(orjson.dumps(i).decode() for i in items) + "]"


def compact_string(r: dict[str, Any]) -> str:
    """rbacv1helpers.CompactString."""
    parts = []
    for key, label in (("apiGroups", "APIGroups"), ("resources", "Resources"), ("nonResourceURLs", "NonResourceURLs"),
                       ("resourceNames", "ResourceNames"), ("verbs", "Verbs")):
        if r.get(key):
            parts.append(f"{label}:{_go_quote_list(r[key])}")
    return "{" + ", ".join(parts) + "}"


def compact_rules(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """CompactRules: simple rules (one group, one resource, at most one name) of the
    same resource merged into one with all their verbs."""
    out: list[dict[str, Any]] = []
    simple: dict[tuple[str, str, str | None], dict[str, Any]] = {}
    for r in rules:
        names = r.get("resourceNames") or []
        if len(names) <= 1 and not r.get("nonResourceURLs") and len(r.get("apiGroups") or []) == 1 \
                and len(r.get("resources") or []) == 1:
            k = (r["apiGroups"][0], r["resources"][0], names[0] if names else None)
            if k in simple:
                simple[k]["verbs"] = simple[k]["verbs"] + list(r.get("verbs") or [])
            else:
                simple[k] = {**r, "verbs": list(r.get("verbs") or [])}
        else:
            out.append(r)
    return out + list(simple.values())


def escalation_message(user: dict[str, Any], missing: list[dict[str, Any]]) -> str:
    groups = _go_quote_list(list(user.get("groups") or []))
    lines = sorted({compact_string(r) for r in compact_rules(missing)})
    return (f'user "{user.get("username", "")}" (groups={groups}) is attempting to grant RBAC permissions not '
            "currently held:\n" + "\n".join(lines))


# what the node join token authenticates as: every node agent (and its service proxy)
# shares that token, so one identity in system:nodes stands for all of them
NODE_USER: dict[str, Any] = {"username": rbac_policy.NODE_TOKEN_USER, "groups": [NODES_GROUP, AUTHENTICATED]}

FULL_AUTHORITY = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                  {"verbs": ["*"], "nonResourceURLs": ["*"]}]
_GC_FIELDS = ("ownerReferences", "finalizers", "resourceVersion", "managedFields", "generation")


def _only_gc_fields(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """IsOnlyMutatingGCFields: an update that only changes what the garbage collector
    writes needs no escalation check."""
    def strip(o: dict[str, Any]) -> dict[str, Any]:
        m = {k: v for k, v in (o.get("metadata") or {}).items() if k not in _GC_FIELDS}
        return {**o, "metadata": m}
    return strip(new) == strip(old)


async def check_escalation(server: APIServer, plural: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """The RBAC registry's escalation prevention (pkg/registry/rbac/*/policybased):
    a role may only hold rules its writer holds, unless they may `escalate`; a
    binding may only grant a role whose rules its writer holds, unless they may
    `bind` it. system:masters is exempt."""
    from kybern.apiserver import admission_webhooks

    ctx = admission_webhooks.REQUEST.get()
    if ctx is None:
        return  # the apiserver's own writes (bootstrap policy, aggregation)
    request = ctx[0]
    user = request.get("user")
    if user is None or MASTERS in (user.get("groups") or ()):
        return
    authorizer: Authorizer = server.authorizer
    if old is not None and _only_gc_fields(obj, old):
        return
    m = obj.get("metadata") or {}
    ns = (m.get("namespace") or "") if plural in ("roles", "rolebindings") else ""
    name = m.get("name") or ""
    if plural in ("roles", "clusterroles"):
        a = Attributes(user, "escalate", api_group=GROUP, resource=plural, namespace=ns,
                       name="" if request.method == "POST" else name)
        if authorizer.authorize(a)[0]:
            return
        await _fresh(server)
        owner = authorizer.resolver.rules_for(user, ns)
        missing = missing_rights(owner, list(obj.get("rules") or []))
        if missing:
            raise forbidden_error(GROUP, plural, name, escalation_message(user, missing))
        agg = obj.get("aggregationRule")
        if agg and (old is None or old.get("aggregationRule") != agg) and missing_rights(owner, FULL_AUTHORITY):
            raise forbidden_error(GROUP, plural, name, "must have cluster-admin privileges to use the aggregationRule")
        return
    ref = obj.get("roleRef") or {}
    kind = ref.get("kind") or ""
    role_plural = "clusterroles" if kind == "ClusterRole" else "roles"
    a = Attributes(user, "bind", api_group=ref.get("apiGroup") or "", resource=role_plural, namespace=ns,
                   name=ref.get("name") or "")
    if kind in ("ClusterRole", "Role") and authorizer.authorize(a)[0]:
        return
    await _fresh(server)
    rules = authorizer.resolver.role_rules(kind, ns, ref.get("name") or "")
    if rules is None:
        raise forbidden_error(GROUP, plural, name, f'{role_plural}.{GROUP} "{ref.get("name", "")}" not found')
    missing = missing_rights(authorizer.resolver.rules_for(user, ns), rules)
    if missing:
        raise forbidden_error(GROUP, plural, name, escalation_message(user, missing))


async def _fresh(server: APIServer) -> None:
    """The watch cache caught up with storage: a role written just before counts."""
    try:
        await asyncio.wait_for(server.watch_cache.wait_fresh(), 2)
    except (TimeoutError, asyncio.TimeoutError):
        pass


def cel_check(server: APIServer, user: dict[str, Any]) -> Any:
    """check(fields, verb) for CEL's `authorizer` in admission expressions (upstream's
    library.Authz): the request's user, or `serviceAccount(ns, name)`'s, asked of the
    server's authorizer chain."""
    def check(fields: dict[str, str], verb: str) -> tuple[bool, str]:
        who = user
        sa = fields.get("user")
        if sa:
            ns = sa.split(":")[2] if sa.count(":") == 3 else ""
            who = {"username": sa, "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}"]}
        if "path" in fields:
            a = Attributes(who, verb, resource_request=False, path=fields["path"])
        else:
            a = Attributes(who, verb, api_group=fields.get("group", ""), resource=fields.get("resource", ""),
                           subresource=fields.get("subresource", ""), namespace=fields.get("namespace", ""),
                           name=fields.get("name", ""))
        return server.authorizer.authorize(a)
    return check
