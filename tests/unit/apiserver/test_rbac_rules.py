"""RBAC rule matching, request attributes and escalation checks (kybern/apiserver/authz.py),
against upstream's RuleAllows, RequestInfoFactory and ConfirmNoEscalation."""

from __future__ import annotations

from multidict import MultiDict

from kybern.apiserver import authz, rbac_policy
from kybern.apiserver.authz import Attributes, rule_allows

U = {"username": "jane", "groups": ["system:authenticated"]}


def res(verb: str, resource: str, *, group: str = "", sub: str = "", ns: str = "", name: str = "") -> Attributes:
    return Attributes(U, verb, api_group=group, resource=resource, subresource=sub, namespace=ns, name=name)


def test_verbs_groups_and_resources():
    rule = {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}
    assert rule_allows(res("get", "pods"), rule)
    assert not rule_allows(res("delete", "pods"), rule)
    assert not rule_allows(res("get", "pods", group="apps"), rule)
    assert not rule_allows(res("get", "pods", sub="log"), rule)  # a subresource is its own resource
    assert rule_allows(res("create", "deployments", group="apps"), {"verbs": ["*"], "apiGroups": ["*"],
                                                                     "resources": ["*"]})


def test_subresources_and_star_slash():
    assert rule_allows(res("get", "pods", sub="log"), {"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]})
    scale = {"verbs": ["update"], "apiGroups": ["*"], "resources": ["*/scale"]}
    assert rule_allows(res("update", "deployments", group="apps", sub="scale"), scale)
    assert not rule_allows(res("update", "deployments", group="apps"), scale)
    # "pods/*" is not a wildcard for RuleAllows (only "*/sub" is)
    assert not rule_allows(res("get", "pods", sub="log"), {"verbs": ["get"], "apiGroups": [""],
                                                           "resources": ["pods/*"]})


def test_resource_names():
    rule = {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}
    assert rule_allows(res("get", "configmaps", name="a"), rule)
    assert not rule_allows(res("get", "configmaps", name="b"), rule)
    assert not rule_allows(res("list", "configmaps"), rule)  # a list names no object


def test_non_resource_urls():
    rule = {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]}
    nr = lambda p, v="get": Attributes(U, v, resource_request=False, path=p)  # noqa: E731
    assert rule_allows(nr("/healthz"), rule)
    assert not rule_allows(nr("/healthz/etcd"), rule)
    assert rule_allows(nr("/apis/apps/v1"), rule)
    assert not rule_allows(nr("/apis"), rule)
    assert not rule_allows(nr("/healthz", "post"), rule)
    assert not rule_allows(nr("/healthz"), {"verbs": ["get"], "apiGroups": [""], "resources": ["*"]})


def attrs(method: str, path: str, **query: str) -> Attributes:
    return authz.request_attributes(U, method, path, MultiDict(query))


def test_request_attributes():
    a = attrs("GET", "/api/v1/namespaces/default/pods")
    assert (a.verb, a.api_group, a.resource, a.namespace, a.name) == ("list", "", "pods", "default", "")
    a = attrs("GET", "/api/v1/namespaces/default/pods", watch="true")
    assert a.verb == "watch"
    a = attrs("GET", "/api/v1/namespaces/default/pods", fieldSelector="metadata.name=web")
    assert (a.verb, a.name) == ("list", "web")
    a = attrs("GET", "/api/v1/namespaces/default/pods/web/log")
    assert (a.verb, a.resource, a.subresource, a.name) == ("get", "pods", "log", "web")
    a = attrs("DELETE", "/apis/apps/v1/namespaces/ns/deployments")
    assert (a.verb, a.api_group, a.resource) == ("deletecollection", "apps", "deployments")
    a = attrs("PATCH", "/apis/apps/v1/namespaces/ns/deployments/d/scale")
    assert (a.verb, a.subresource, a.name) == ("patch", "scale", "d")
    a = attrs("GET", "/api/v1/namespaces/kube-system")
    assert (a.verb, a.resource, a.name, a.namespace) == ("get", "namespaces", "kube-system", "kube-system")
    a = attrs("PUT", "/api/v1/namespaces/ns/finalize")
    assert (a.verb, a.resource, a.name, a.subresource) == ("update", "namespaces", "ns", "finalize")
    a = attrs("GET", "/api/v1/nodes/n1/proxy/stats/summary")
    assert (a.resource, a.name, a.subresource) == ("nodes", "n1", "proxy")
    for path in ("/api", "/api/v1", "/apis/apps", "/apis/apps/v1", "/healthz", "/openapi/v2"):
        a = attrs("GET", path)
        assert not a.resource_request and a.verb == "get" and a.path == path


def test_forbidden_messages():
    e = authz.forbidden(Attributes({"username": "system:serviceaccount:default:foo"}, "list", resource="pods",
                                   namespace="default"))
    assert e.code == 403 and e.reason == "Forbidden"
    assert e.message == ('pods is forbidden: User "system:serviceaccount:default:foo" cannot list resource "pods" '
                         'in API group "" in the namespace "default"')
    assert e.details == {"kind": "pods"}
    e = authz.forbidden(Attributes(U, "get", api_group="apps", resource="deployments", subresource="scale",
                                   name="web", namespace="ns"))
    assert e.message == ('deployments.apps "web" is forbidden: User "jane" cannot get resource "deployments/scale" '
                         'in API group "apps" in the namespace "ns"')
    assert e.details == {"name": "web", "group": "apps", "kind": "deployments"}
    e = authz.forbidden(Attributes(U, "list", resource="nodes"))
    assert e.message.endswith('cannot list resource "nodes" in API group "" at the cluster scope')
    e = authz.forbidden(Attributes(U, "get", resource_request=False, path="/metrics"))
    assert e.message == 'forbidden: User "jane" cannot get path "/metrics"' and e.details == {}


def test_escalation_covers_and_message():
    owner = [{"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods", "secrets"]},
             {"verbs": ["*"], "apiGroups": ["apps"], "resources": ["*"]}]
    assert not authz.missing_rights(owner, [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}])
    assert not authz.missing_rights(owner, [{"verbs": ["delete"], "apiGroups": ["apps"],
                                             "resources": ["deployments/scale"]}])
    missing = authz.missing_rights(owner, [{"verbs": ["get", "list", "delete"], "apiGroups": [""],
                                            "resources": ["pods", "nodes"]}])
    assert authz.escalation_message(U, missing) == (
        'user "jane" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["nodes"], Verbs:["get" "list" "delete"]}\n'
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}')
    # resourceNames: a named grant covers only those names
    named = [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}]
    assert not authz.missing_rights(named, named)
    assert authz.missing_rights(named, [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}])
    assert authz.missing_rights([], [{"verbs": ["get"], "nonResourceURLs": ["/metrics"]}]) == [
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]


def test_aggregation_selects_by_labels():
    view = {"metadata": {"name": "view"}, "aggregationRule": {"clusterRoleSelectors": [
        {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}]}}
    r1 = {"metadata": {"name": "b", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
          "rules": [{"verbs": ["get"], "apiGroups": ["x"], "resources": ["widgets"]}]}
    r2 = {"metadata": {"name": "a", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
          "rules": [{"verbs": ["get"], "apiGroups": ["x"], "resources": ["gadgets"]},
                    {"verbs": ["get"], "apiGroups": ["x"], "resources": ["widgets"]}]}
    other = {"metadata": {"name": "c"}, "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]}
    assert rbac_policy.aggregate(view, [view, r1, r2, other]) == [
        {"verbs": ["get"], "apiGroups": ["x"], "resources": ["gadgets"]},
        {"verbs": ["get"], "apiGroups": ["x"], "resources": ["widgets"]}]


def test_modes():
    assert authz.parse_modes("Node,RBAC") == ("Node", "RBAC")
    for bad in ("", "RBAC,RBAC", "Foo", "Webhook"):
        try:
            authz.parse_modes(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


async def test_bootstrap_reconcile_adds_missing_and_respects_autoupdate_false(tmp_path):
    from kybern.apiserver.server import APIServer
    from kybern.storage.sqlite import SQLiteStore

    storage = SQLiteStore(str(tmp_path / "state.db"))
    api = APIServer(storage)
    try:
        await api.watch_cache.ready()
        await rbac_policy.reconcile(api)
        roles = api.store("rbac.authorization.k8s.io", "v1", "clusterroles")
        view = await roles.get(None, "system:aggregate-to-view")
        assert view["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"

        def edit(rules, annotation=None):
            def make(cur):
                cur["rules"] = rules
                if annotation:
                    cur["metadata"]["annotations"][rbac_policy.AUTOUPDATE] = annotation
                return cur
            return make
        mine = {"verbs": ["get"], "apiGroups": ["example.com"], "resources": ["widgets"]}
        # a user's edit: a rule added, one removed; reconciling adds back only what is missing
        basic = await roles.get(None, "system:basic-user")
        await roles.update(None, "system:basic-user", edit([mine, basic["rules"][1]]))
        await rbac_policy.reconcile(api)
        got = (await roles.get(None, "system:basic-user"))["rules"]
        assert got[0] == mine and len(got) == 3 and basic["rules"][0] in got
        # autoupdate "false": left as edited
        await roles.update(None, "system:discovery", edit([mine], "false"))
        await rbac_policy.reconcile(api)
        assert (await roles.get(None, "system:discovery"))["rules"] == [mine]
        # a deleted one comes back
        await roles.delete(None, "system:monitoring", {})
        await rbac_policy.reconcile(api)
        assert (await roles.get(None, "system:monitoring"))["rules"]
    finally:
        await api.watch_cache.stop()
        await storage.close()
