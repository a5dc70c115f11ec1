"""The namespace controller's deletion conditions (upstream's namespaceConditionUpdater)."""

from kybern.controllers.namespace import deletion_conditions


def test_first_pass_writes_all_five_and_reports_what_is_left():
    conds = deletion_conditions([], {"pods.": 2, "widgets.example.com": 1}, {"example.com/hold": 1}, "T1")
    assert [c["type"] for c in conds] == [
        "NamespaceDeletionDiscoveryFailure", "NamespaceDeletionGroupVersionParsingFailure",
        "NamespaceDeletionContentFailure", "NamespaceContentRemaining", "NamespaceFinalizersRemaining"]
    by = {c["type"]: c for c in conds}
    assert by["NamespaceContentRemaining"]["message"] == (
        "Some resources are remaining: pods. has 2 resource instances, widgets.example.com has 1 resource instances")
    assert by["NamespaceFinalizersRemaining"]["reason"] == "SomeFinalizersRemain"
    assert by["NamespaceDeletionDiscoveryFailure"]["status"] == "False"


def test_unchanged_is_none_and_transition_time_moves_with_the_status_only():
    first = deletion_conditions([], {"pods.": 2}, {}, "T1")
    assert deletion_conditions(first, {"pods.": 2}, {}, "T2") is None
    fewer = deletion_conditions(first, {"pods.": 1}, {}, "T2")
    remaining = next(c for c in fewer if c["type"] == "NamespaceContentRemaining")
    assert remaining["message"].endswith("pods. has 1 resource instances") and remaining["lastTransitionTime"] == "T1"
    done = deletion_conditions(fewer, {}, {}, "T3")
    remaining = next(c for c in done if c["type"] == "NamespaceContentRemaining")
    assert (remaining["status"], remaining["reason"], remaining["lastTransitionTime"]) == ("False", "ContentRemoved", "T3")
