"""The Job controller's rules that need no cluster: completed-index notation,
podFailurePolicy matching, pod re-creation back-off, conditions."""

from __future__ import annotations

import pytest

from kybern.controllers import jobutil as ju


def failed_pod(exit_code: int, container: str = "main", conditions=None) -> dict:
    return {"metadata": {"name": "p", "namespace": "ns"},
            "status": {"phase": "Failed", "conditions": conditions or [],
                       "containerStatuses": [{"name": container,
                                              "state": {"terminated": {"exitCode": exit_code}}}]}}


def job_with_rules(*rules: dict) -> dict:
    return {"metadata": {"name": "j", "uid": "u"}, "spec": {"podFailurePolicy": {"rules": list(rules)}}}


@pytest.mark.parametrize("indexes,text", [
    (set(), ""), ({0}, "0"), ({0, 1}, "0,1"), ({0, 1, 2}, "0-2"), ({1, 3, 4, 5, 9}, "1,3-5,9"),
])
def test_completed_indexes_round_trip(indexes, text):
    assert ju.format_indexes(indexes) == text
    assert ju.parse_indexes(text) == indexes


def test_fail_job_on_exit_code_says_which_rule():
    job = job_with_rules({"action": "Ignore", "onExitCodes": {"operator": "In", "values": [1]}},
                         {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In",
                                                               "values": [42]}})
    action, msg = ju.match_failure_policy(job, failed_pod(42))
    assert action == "FailJob"
    assert msg == "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1"


def test_not_in_operator_and_container_name():
    job = job_with_rules({"action": "Count", "onExitCodes": {"containerName": "other", "operator": "NotIn",
                                                             "values": [0]}},
                         {"action": "Ignore", "onExitCodes": {"operator": "NotIn", "values": [5]}})
    assert ju.match_failure_policy(job, failed_pod(3))[0] == "Ignore"
    assert ju.match_failure_policy(job, failed_pod(5)) == (None, "")


def test_pod_condition_rule():
    job = job_with_rules({"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]})
    pod = failed_pod(137, conditions=[{"type": "DisruptionTarget", "status": "True"}])
    assert ju.match_failure_policy(job, pod)[0] == "Ignore"


def test_backoff_doubles_and_caps():
    assert [ju.backoff_delay(n) for n in (0, 1, 2, 3)] == [0.0, 10.0, 20.0, 40.0]
    assert ju.backoff_delay(20) == 360.0


def test_set_condition_changes_only_on_difference():
    st: dict = {}
    assert ju.set_condition(st, "Failed", "True", "BackoffLimitExceeded", ju.MSG_BACKOFF)
    assert not ju.set_condition(st, "Failed", "True", "BackoffLimitExceeded", ju.MSG_BACKOFF)
    job = {"status": st}
    assert ju.is_finished(job) and ju.finish_time(job)


def test_default_selector_is_the_controller_uid():
    assert ju.default_selector({"metadata": {"uid": "abc"}, "spec": {}}) == \
        {"matchLabels": {ju.CONTROLLER_UID_LABEL: "abc"}}


def test_completion_index_from_annotation():
    pod = {"metadata": {"annotations": {ju.INDEX_ANNOTATION: "3"}}}
    assert ju.completion_index(pod) == 3
    assert ju.completion_index({"metadata": {}}) is None


def test_past_backoff_limit_on_failure_counts_every_restart():
    def job(limit: int, policy: str = "OnFailure") -> dict:
        return {"spec": {"backoffLimit": limit, "template": {"spec": {"restartPolicy": policy}}}}

    def pod(phase: str, *restarts: int) -> dict:
        return {"status": {"phase": phase, "containerStatuses": [{"restartCount": r} for r in restarts]}}

    pods = [pod("Running", 1, 1), pod("Failed", 5)]
    assert ju.past_backoff_limit_on_failure(job(2), pods)  # 1 + 1 reaches 2 (the Failed pod's do not count)
    assert not ju.past_backoff_limit_on_failure(job(3), pods)
    assert ju.past_backoff_limit_on_failure(job(0), [pod("Pending", 1)])
    assert not ju.past_backoff_limit_on_failure(job(0), [pod("Pending", 0)])
    assert not ju.past_backoff_limit_on_failure(job(1, "Never"), pods)
