"""StatefulSet identity and revisions, and the DaemonSet node rules they share
history with: ordinals, claim names, ControllerRevision data, node eligibility."""

from __future__ import annotations

from kybern.controllers import daemonset_util as du
from kybern.controllers import history
from kybern.controllers.statefulset import claim_name, ordinal_of


def pod(name: str) -> dict:
    return {"metadata": {"name": name}}


def test_ordinals_come_from_the_name():
    assert ordinal_of("web", pod("web-0")) == 0
    assert ordinal_of("web", pod("web-12")) == 12
    assert ordinal_of("web", pod("web-x")) is None
    assert ordinal_of("web", pod("webby-1")) is None


def test_claim_name():
    assert claim_name({"metadata": {"name": "data"}}, "web", 2) == "data-web-2"


def test_revision_data_is_a_replace_patch_and_hash_is_stable():
    sts = {"spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}}}}
    data = history.revision_data(sts)
    assert data["spec"]["template"]["$patch"] == "replace"
    assert history.template_of({"data": data}) == sts["spec"]["template"]
    assert history.hash_data(data) == history.hash_data(history.revision_data(sts))
    assert history.hash_data(data) != history.hash_data(data, 1)


def test_owned_revisions_sorted_by_number():
    parent = {"metadata": {"uid": "u"}}
    ref = [{"uid": "u", "controller": True}]
    revs = [{"metadata": {"name": "b", "ownerReferences": ref}, "revision": 2},
            {"metadata": {"name": "a", "ownerReferences": ref}, "revision": 1},
            {"metadata": {"name": "x", "ownerReferences": [{"uid": "v", "controller": True}]}, "revision": 9}]
    assert [r["metadata"]["name"] for r in history.owned(revs, parent)] == ["a", "b"]
    assert history.next_number(history.owned(revs, parent)) == 3


def node(name: str, labels=None, taints=None) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []}}


def test_daemon_pods_tolerate_the_default_taints():
    spec: dict = {"containers": []}
    not_ready = node("n", taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}])
    assert du.node_should_run(spec, not_ready) == (True, True)
    custom = node("n", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    assert du.node_should_run(spec, custom) == (False, True)  # keeps a pod already there
    evict = node("n", taints=[{"key": "dedicated", "value": "db", "effect": "NoExecute"}])
    assert du.node_should_run(spec, evict) == (False, False)


def test_node_selector_and_affinity():
    spec = {"nodeSelector": {"disk": "ssd"}}
    assert du.node_should_run(spec, node("a", {"disk": "ssd"}))[0]
    assert not du.node_should_run(spec, node("b", {"disk": "hdd"}))[0]
    aff = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]}]}}}}
    assert du.node_should_run(aff, node("a"))[0]
    assert not du.node_should_run(aff, node("a", {"skip": "1"}))[0]


def test_pinning_keeps_expressions_and_adds_the_node_name():
    spec = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "x", "operator": "Exists"}]}]}}}}
    du.pin_to_node(spec, "node-2")
    term = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert term["matchFields"] == [{"key": "metadata.name", "operator": "In", "values": ["node-2"]}]
    assert term["matchExpressions"]
    assert du.pinned_node({"spec": spec}) == "node-2"
    empty: dict = {}
    du.add_default_tolerations(empty)
    assert {t["key"] for t in empty["tolerations"]} >= {"node.kubernetes.io/not-ready",
                                                        "node.kubernetes.io/unschedulable"}


def test_max_unavailable_rounding():
    assert du.int_or_percent("25%", 10, False, 1) == 2
    assert du.int_or_percent("25%", 10, True, 1) == 3
    assert du.int_or_percent(None, 10, True, 1) == 1
