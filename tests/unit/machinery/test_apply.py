"""Server-side apply: merge, ownership, pruning of omitted fields, conflicts."""

from __future__ import annotations

import copy

import orjson
import pytest

from kybern.api import schemas
from kybern.machinery import apply as ap
from kybern.machinery import errors
from kybern.machinery import managedfields as mf

DEPLOYMENT = schemas.definition("io.k8s.api.apps.v1.Deployment")
POD = schemas.definition("io.k8s.api.core.v1.Pod")


def config(replicas: int = 2, **labels: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": labels or {"app": "web"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "nginx", "image": "nginx:1"}]}}}}


def run(live, cfg, manager="kubectl", force=False, schema=DEPLOYMENT):
    obj, managers = ap.apply(live, cfg, mf.decode(live), manager=manager, force=force, api_version="apps/v1",
                             schema=schema, has_status=True)
    mf.encode(obj, managers)
    return obj


def owners(obj) -> dict[str, dict]:
    return {e["manager"]: e["fieldsV1"] for e in obj["metadata"].get("managedFields", [])}


def update(live, manager, change):
    new = copy.deepcopy(live)
    change(new)
    mf.record_update(new, live, manager=manager, api_version="apps/v1", schema=DEPLOYMENT, has_status=True)
    return new


def test_create_owns_exactly_the_applied_fields():
    obj = run(None, config())
    (e,) = obj["metadata"]["managedFields"]
    assert (e["manager"], e["operation"]) == ("kubectl", "Apply")
    spec = e["fieldsV1"]["f:spec"]
    assert set(spec) == {"f:replicas", "f:selector", "f:template"}


def test_reapply_changes_a_field_without_conflict():
    obj = run(run(None, config(2)), config(5))
    assert obj["spec"]["replicas"] == 5


def test_omitted_field_is_removed_when_nobody_else_owns_it():
    live = run(None, config(app="web", tier="front"))
    obj = run(live, config(app="web"))
    assert obj["metadata"]["labels"] == {"app": "web"}
    cfg = config()
    del cfg["spec"]["replicas"]
    assert "replicas" not in run(live, cfg)["spec"]


def test_omitted_field_stays_when_another_manager_owns_it():
    live = run(None, config(app="web", tier="front"))
    live = update(live, "kubectl-edit", lambda o: o["metadata"]["labels"].update(tier="back"))
    obj = run(live, config(app="web"))
    assert obj["metadata"]["labels"] == {"app": "web", "tier": "back"}


def test_conflict_with_an_updater_names_manager_and_field():
    live = run(None, config(2))
    live = update(live, "kubectl-client-side-apply", lambda o: o["spec"].update(replicas=3))
    with pytest.raises(errors.StatusError) as e:
        run(live, config(4))
    st = e.value.status()
    assert (st["code"], st["reason"]) == (409, "Conflict")
    assert st["message"] == ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
                             "using apps/v1: .spec.replicas")
    assert st["details"]["causes"] == [{"reason": "FieldManagerConflict", "field": ".spec.replicas",
                                        "message": 'conflict with "kubectl-client-side-apply" using apps/v1'}]


def test_same_value_is_shared_not_a_conflict_and_force_takes_ownership():
    live = run(None, config(2), manager="a")
    shared = run(live, config(2), manager="b")
    assert "f:replicas" in owners(shared)["a"]["f:spec"] and "f:replicas" in owners(shared)["b"]["f:spec"]
    with pytest.raises(errors.StatusError):
        run(live, config(7), manager="b")
    forced = run(live, config(7), manager="b", force=True)
    assert forced["spec"]["replicas"] == 7
    assert "f:replicas" not in owners(forced)["a"]["f:spec"]


def test_several_conflicts_are_grouped_by_manager():
    live = run(None, config(2, app="web"), manager="a")
    cfg = config(3)
    cfg["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    with pytest.raises(errors.StatusError) as e:
        run(live, cfg, manager="b")
    assert e.value.message == ('Apply failed with 2 conflicts: conflicts with "a":\n- .spec.replicas\n'
                               '- .spec.template.spec.containers[name="nginx"].image')


def test_associative_list_merges_by_key_and_atomic_list_replaces():
    live = run(None, config())
    live = update(live, "other", lambda o: o["spec"]["template"]["spec"]["containers"].append(
        {"name": "sidecar", "image": "busybox", "args": ["a", "b"]}))
    cfg = config()
    cfg["spec"]["template"]["spec"]["containers"][0]["args"] = ["x"]
    obj = run(live, cfg)
    names = [c["name"] for c in obj["spec"]["template"]["spec"]["containers"]]
    assert names == ["nginx", "sidecar"]
    assert obj["spec"]["template"]["spec"]["containers"][0]["args"] == ["x"]
    cfg["spec"]["template"]["spec"]["containers"][0]["args"] = ["y", "z"]
    assert run(obj, cfg)["spec"]["template"]["spec"]["containers"][0]["args"] == ["y", "z"]


def test_removed_list_item_goes_but_other_managers_items_stay():
    cfg = config()
    cfg["spec"]["template"]["spec"]["containers"].append({"name": "log", "image": "busybox"})
    live = run(None, cfg)
    obj = run(live, config())
    assert [c["name"] for c in obj["spec"]["template"]["spec"]["containers"]] == ["nginx"]


def test_set_lists_union():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["a/x"]},
           "spec": {"containers": [{"name": "c", "image": "i"}]}}
    live = run(None, pod, manager="a", schema=POD)
    cfg = copy.deepcopy(pod)
    cfg["metadata"]["finalizers"] = ["b/y"]
    obj = run(live, cfg, manager="b", schema=POD)
    assert obj["metadata"]["finalizers"] == ["a/x", "b/y"]
    assert 'v:"b/y"' in owners(obj)["b"]["f:metadata"]["f:finalizers"]


def test_managed_fields_in_the_config_are_refused():
    cfg = config()
    cfg["metadata"]["managedFields"] = []
    with pytest.raises(errors.StatusError) as e:
        run(None, cfg)
    assert e.value.code == 400


def test_kubectl_upgrades_from_client_side_apply_and_syncs_the_annotation():
    cfg = config(2)
    live = update({"metadata": {}}, "kubectl-client-side-apply", lambda o: o.update(copy.deepcopy(cfg)))
    last = orjson.dumps(cfg).decode()
    live["metadata"]["annotations"] = {ap.LAST_APPLIED: last}
    # another manager name gets the conflict; kubectl may take fields the annotation still describes
    with pytest.raises(errors.StatusError):
        run(live, config(3), manager="my-tool")
    obj = run(live, config(3))
    assert obj["spec"]["replicas"] == 3
    assert orjson.loads(obj["metadata"]["annotations"][ap.LAST_APPLIED])["spec"]["replicas"] == 3
    # a field changed since (live differs from the annotation) still conflicts
    drifted = update(live, "kubectl-client-side-apply", lambda o: o["spec"].update(replicas=9))
    with pytest.raises(errors.StatusError):
        run(drifted, config(3))
