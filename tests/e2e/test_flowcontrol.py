"""API Priority and Fairness's configuration objects (flowcontrol.apiserver.k8s.io/v1)
as a kubectl user sees them: the default FlowSchemas and PriorityLevelConfigurations,
the MISSINGPL column following a referenced level, validation, and the mandatory
objects kept."""

from __future__ import annotations

import json

FS = {"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
      "metadata": {"name": "e2e-devs"},
      "spec": {"priorityLevelConfiguration": {"name": "e2e-level"}, "matchingPrecedence": 1000,
               "distinguisherMethod": {"type": "ByUser"},
               "rules": [{"subjects": [{"kind": "Group", "group": {"name": "devs"}}],
                          "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                             "namespaces": ["*"]}]}]}}
PL = {"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "PriorityLevelConfiguration",
      "metadata": {"name": "e2e-level"}, "spec": {"type": "Limited", "limited": {"limitResponse": {"type": "Queue"}}}}


def test_default_configuration_and_a_schema_of_ones_own(cluster):
    out = cluster.kubectl("get", "flowschemas").stdout.splitlines()
    assert out[0].split() == ["NAME", "PRIORITYLEVEL", "MATCHINGPRECEDENCE", "DISTINGUISHERMETHOD", "AGE", "MISSINGPL"]
    rows = {line.split()[0]: line.split() for line in out[1:]}
    assert {"exempt", "probes", "system-nodes", "service-accounts", "global-default", "catch-all"} <= set(rows)
    assert rows["exempt"][1:4] == ["exempt", "1", "<none>"] and rows["catch-all"][1:4] == ["catch-all", "10000", "ByUser"]
    assert rows["global-default"][-1] == "False"
    out = cluster.kubectl("get", "prioritylevelconfigurations").stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in out[1:]}
    assert rows["exempt"][1:6] == ["Exempt", "<none>", "<none>", "<none>", "<none>"]
    assert rows["workload-low"][1:6] == ["Limited", "100", "128", "6", "50"]

    try:
        cluster.kubectl("apply", "-f", "-", input=json.dumps(FS))
        cluster.wait_for(lambda: cluster.kubectl("get", "flowschema", "e2e-devs", "--no-headers").stdout.split()[-1]
                         == "True", what="MISSINGPL True without the level")
        cluster.kubectl("apply", "-f", "-", input=json.dumps(PL))
        cond = cluster.wait_for(lambda: next((c for c in cluster.kjson("get", "flowschema", "e2e-devs")["status"]
                                              ["conditions"] if c["status"] == "False"), None),
                                what="Dangling False once the level exists")
        assert cond["reason"] == "Found" and cond["message"] == \
            'This FlowSchema references the PriorityLevelConfiguration object named "e2e-level" and it exists'
        level = cluster.kjson("get", "prioritylevelconfiguration", "e2e-level")["spec"]["limited"]
        assert level["nominalConcurrencyShares"] == 30 and level["limitResponse"]["queuing"] == \
            {"queues": 64, "handSize": 8, "queueLengthLimit": 50}  # upstream's v1 defaults
    finally:
        cluster.kubectl("delete", "flowschema", "e2e-devs", "--ignore-not-found")
        cluster.kubectl("delete", "prioritylevelconfiguration", "e2e-level", "--ignore-not-found")


def test_invalid_schemas_and_the_mandatory_ones(cluster):
    bad = {**FS, "metadata": {"name": "e2e-bad"},
           "spec": {**FS["spec"], "matchingPrecedence": 1, "distinguisherMethod": {"type": "ByColor"},
                    "rules": [{"subjects": [{"kind": "Robot"}]}]}}
    p = cluster.kubectl("create", "-f", "-", input=json.dumps(bad), check=False)
    assert p.returncode != 0
    for line in ("spec.matchingPrecedence: Invalid value: 1: only the schema named 'exempt' may have "
                 "matchingPrecedence 1",
                 'spec.distinguisherMethod.type: Unsupported value: &flowcontrol.FlowDistinguisherMethod{Type:"ByColor"}'
                 ': supported values: "ByNamespace", "ByUser"',
                 'spec.rules[0].subjects[0].kind: Unsupported value: "Robot": supported values: "Group", '
                 '"ServiceAccount", "User"',
                 "spec.rules[0]: Required value: at least one of resourceRules and nonResourceRules has to be non-empty"):
        assert line in p.stderr, p.stderr
    p = cluster.kubectl("patch", "flowschema", "catch-all", "--type", "merge", "-p",
                        '{"spec":{"matchingPrecedence":5000}}', check=False)
    assert "spec of 'catch-all' must equal the fixed value" in p.stderr
    cluster.kubectl("delete", "prioritylevelconfiguration", "catch-all")
    cluster.wait_for(lambda: cluster.kubectl("get", "prioritylevelconfiguration", "catch-all", check=False)
                     .returncode == 0, what="the mandatory level made again")
