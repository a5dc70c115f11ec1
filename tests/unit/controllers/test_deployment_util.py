"""Deployment arithmetic: hashes, surge/unavailable rounding, rollout steps, status."""

from kybern.controllers import deployment_util as du
from kybern.controllers.deployment_rollout import max_scaled_down, old_pods_running


def deploy(replicas=10, surge="25%", unavail="25%", strategy="RollingUpdate", **status):
    d = {"metadata": {"name": "web", "namespace": "default", "generation": 2, "uid": "d1"},
         "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}},
                               "spec": {"containers": [{"name": "c", "image": "demo:v1"}]}},
                  "strategy": {"type": strategy}},
         "status": status}
    if strategy == "RollingUpdate":
        d["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavail}
    return d


def rs(name, replicas, available=0, created="2024-01-01T00:00:00Z", ann=None, ready=None, status_replicas=None):
    return {"metadata": {"name": name, "uid": name, "creationTimestamp": created,
                         "annotations": dict(ann or {})},
            "spec": {"replicas": replicas,
                     "template": {"metadata": {"labels": {"app": "web"}}}},
            "status": {"replicas": replicas if status_replicas is None else status_replicas,
                       "availableReplicas": available,
                       "readyReplicas": available if ready is None else ready}}


def test_hash_is_stable_short_and_safe():
    t = deploy()["spec"]["template"]
    h = du.compute_hash(t)
    assert h == du.compute_hash(dict(t))
    assert 1 <= len(h) <= 10
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789")
    t2 = {**t, "spec": {"containers": [{"name": "c", "image": "demo:v2"}]}}
    assert du.compute_hash(t2) != h
    assert du.compute_hash(t, 1) != h


def test_fnv32a_matches_reference_vectors():
    assert du.fnv32a(b"") == 0x811C9DC5
    assert du.fnv32a(b"a") == 0xE40C292C
    assert du.safe_encode("0123") == "bcdf"[0:0] + "".join(
        "bcdfghjklmnpqrstvwxz2456789"[b % 27] for b in b"0123")


def test_equal_ignore_hash():
    a = {"metadata": {"labels": {"app": "web"}}, "spec": {"x": 1}}
    b = {"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}}, "spec": {"x": 1}}
    assert du.equal_ignore_hash(a, b)
    assert not du.equal_ignore_hash(a, {**b, "spec": {"x": 2}})


def test_scaled_values_round_like_upstream():
    assert du.scaled_value("25%", 10, True) == 3   # surge rounds up
    assert du.scaled_value("25%", 10, False) == 2  # unavailable rounds down
    assert du.scaled_value(4, 10, True) == 4
    assert du.scaled_value("0%", 10, True) == 0
    assert du.resolve_fenceposts("0%", "10%", 3) == (0, 1)  # both zero -> one unavailable
    assert du.resolve_fenceposts(0, 0, 3) == (0, 1)


def test_max_surge_and_unavailable():
    d = deploy(10)
    assert du.max_surge(d) == 3 and du.max_unavailable(d) == 2
    assert du.max_unavailable(deploy(1, unavail="100%")) == 1
    assert du.max_unavailable(deploy(3, unavail=5)) == 3  # capped at replicas
    assert du.max_surge(deploy(3, strategy="Recreate")) == 0
    assert du.max_unavailable(deploy(0)) == 0
    assert du.max_surge({"spec": {"replicas": 4}, "metadata": {}}) == 1  # default 25%


def test_new_rs_may_grow_up_to_surge():
    d = deploy(10)
    old = rs("old", 10, 10)
    new = rs("new", 0)
    assert du.new_rs_new_replicas(d, [old, new], new) == 3
    new = rs("new", 3)
    assert du.new_rs_new_replicas(d, [old, new], new) == 3  # total at 13 already
    old = rs("old", 8, 8)
    assert du.new_rs_new_replicas(d, [old, new], new) == 5
    assert du.new_rs_new_replicas(deploy(3, strategy="Recreate"), [new], new) == 3


def test_old_rs_scale_down_budget():
    d = deploy(10)
    new = rs("new", 3, available=0)
    old = rs("old", 10, 10)
    # total 13, minAvailable 8, new unavailable 3 -> 2 may go
    assert max_scaled_down(d, [old, new], new) == 2


def test_proportional_scaling_fraction():
    d = deploy(20)  # surge 5 -> 25 allowed
    r = rs("a", 6, ann={du.MAX_REPLICAS: "13"})
    # 6 * 25 / 13 = 11.54 -> 12, grows by 6
    assert du.rs_fraction(r, d) == 6
    assert du.proportion(r, d, 12, 0) == 6
    assert du.proportion(r, d, 3, 0) == 3  # never more than what is left to add


def test_saturated_and_sorting():
    d = deploy(3)
    new = rs("new", 3, 3, ann={du.DESIRED_REPLICAS: "3"})
    assert du.is_saturated(d, new)
    assert not du.is_saturated(d, rs("new", 3, 2, ann={du.DESIRED_REPLICAS: "3"}))
    a = rs("a", 2, created="2024-01-01T00:00:00Z")
    b = rs("b", 2, created="2024-01-02T00:00:00Z")
    c = rs("c", 5, created="2024-01-03T00:00:00Z")
    assert [x["metadata"]["name"] for x in du.by_size_newer([a, b, c])] == ["c", "b", "a"]
    assert [x["metadata"]["name"] for x in du.by_size_older([a, b, c])] == ["c", "a", "b"]


def test_new_rs_annotations_and_revision_history():
    d = deploy(3)
    d["metadata"]["annotations"] = {"team": "x", du.REVISION: "9",
                                    du.LAST_APPLIED: "{}"}
    r = rs("new", 0)
    assert du.set_new_rs_annotations(d, r, 2, exists=False)
    ann = r["metadata"]["annotations"]
    assert ann["team"] == "x" and ann[du.REVISION] == "2" and du.LAST_APPLIED not in ann
    assert ann[du.DESIRED_REPLICAS] == "3" and ann[du.MAX_REPLICAS] == "4"
    assert du.set_new_rs_annotations(d, r, 5, exists=True)  # rollback onto it
    assert ann[du.REVISION] == "5" and ann[du.REVISION_HISTORY] == "2"
    assert not du.set_new_rs_annotations(d, r, 5, exists=True)


def test_status_and_conditions():
    d = deploy(3)
    new = rs("new", 3, 3)
    old = rs("old", 0, 0)
    st = du.calculate_status(d, [old, new], new)
    assert st["replicas"] == 3 and st["updatedReplicas"] == 3 and st["availableReplicas"] == 3
    assert st["unavailableReplicas"] == 0 and st["observedGeneration"] == 2
    avail = du.get_condition(st, "Available")
    assert avail["status"] == "True" and avail["reason"] == "MinimumReplicasAvailable"
    assert avail["message"] == "Deployment has minimum availability."
    assert du.complete(d, st)
    st2 = du.calculate_status(d, [rs("old", 3, 0), rs("new", 0)], rs("new", 0))
    assert du.get_condition(st2, "Available")["reason"] == "MinimumReplicasUnavailable"
    assert du.clean_status(st2)["unavailableReplicas"] == 3
    assert "availableReplicas" not in du.clean_status(st2)


def test_set_condition_keeps_transition_time_for_same_status():
    st = {}
    c1 = du.new_condition("Progressing", "True", "A", "m")
    c1["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    du.set_condition(st, c1)
    du.set_condition(st, du.new_condition("Progressing", "True", "B", "m2"))
    c = du.get_condition(st, "Progressing")
    assert c["reason"] == "B" and c["lastTransitionTime"] == "2020-01-01T00:00:00Z"


def test_timed_out():
    d = deploy(3)
    d["spec"]["progressDeadlineSeconds"] = 1
    st = {"conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                          "lastUpdateTime": "2020-01-01T00:00:00Z"}]}
    assert du.timed_out(d, st)
    st["conditions"][0]["reason"] = "NewReplicaSetAvailable"
    assert not du.timed_out(d, st)


def test_recreate_waits_for_old_pods():
    old = rs("old", 0, status_replicas=0)
    assert old_pods_running([old], [{"status": {"phase": "Running"}}])
    assert not old_pods_running([old], [{"status": {"phase": "Succeeded"}}])
    assert old_pods_running([rs("old", 0, status_replicas=1)], [])
