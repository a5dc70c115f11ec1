"""The audit log of a cluster started with --audit-policy-file and --audit-log-path,
read as an operator would (JSON lines of audit.k8s.io/v1 Events), after real kubectl
requests: levels by rule, request and response bodies, a refusal's status, the
authorizer's decision, a watch's ResponseStarted, and the Audit-Id header."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import start_cluster, stop_cluster

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  resources: [{group: coordination.k8s.io, resources: [leases]}]
- level: RequestResponse
  resources: [{group: "", resources: [configmaps]}]
- level: Request
  resources: [{group: "", resources: [secrets]}]
  verbs: [create]
- level: Metadata
"""


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    base = tmp_path_factory.mktemp("audited")
    (base / "policy.yaml").write_text(POLICY)
    c = start_cluster(base, "--no-node", "--no-dns", "--audit-policy-file", str(base / "policy.yaml"),
                      "--audit-log-path", str(base / "audit" / "audit.log"), wait_node=False)
    yield c, base / "audit" / "audit.log"
    stop_cluster(c)


def events(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_requests_are_logged_by_the_policy(audited):
    c, log = audited
    c.kubectl("create", "configmap", "audited", "--from-literal=k=v")
    c.kubectl("create", "secret", "generic", "token", "--from-literal=k=v")
    assert c.kubectl("get", "secret", "nope", check=False).returncode != 0
    assert c.kubectl("get", "pods", "--as=mallory", check=False).returncode != 0
    c.kubectl("get", "--raw", "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=1")  # ends at 1 s
    verbose = c.kubectl("get", "namespaces", "-v=8", check=False).stderr
    assert "Audit-Id: " in verbose
    audit_id = verbose.split("Audit-Id: ", 1)[1].split()[0]

    evs = c.wait_for(lambda: (e := events(log)) and any(x["verb"] == "watch" and x["stage"] == "ResponseComplete"
                                                      for x in e) and e, what="the watch's last stage")
    assert all(e["kind"] == "Event" and e["apiVersion"] == "audit.k8s.io/v1" for e in evs)
    assert not any(e["stage"] == "RequestReceived" for e in evs)  # omitted by the policy
    assert not any((e.get("objectRef") or {}).get("resource") == "leases" for e in evs)  # level None
    cm = next(e for e in evs if e["verb"] == "create" and e.get("objectRef", {}).get("resource") == "configmaps"
              and e["objectRef"].get("name") == "audited")  # the name learnt from the object made
    assert cm["level"] == "RequestResponse"
    assert cm["requestObject"]["data"] == {"k": "v"} and cm["responseObject"]["metadata"]["uid"]
    assert cm["responseStatus"]["code"] == 201 and cm["user"]["username"] == "kybern-admin"
    assert cm["annotations"]["authorization.k8s.io/decision"] == "allow"
    sec = next(e for e in evs if e["verb"] == "create" and e.get("objectRef", {}).get("resource") == "secrets"
               and e["objectRef"].get("name") == "token")
    assert sec["level"] == "Request" and "requestObject" in sec and "responseObject" not in sec
    miss = next(e for e in evs if e.get("objectRef", {}).get("name") == "nope")
    assert miss["level"] == "Metadata" and miss["responseStatus"]["code"] == 404
    assert miss["responseStatus"]["reason"] == "NotFound"
    denied = next(e for e in evs if e.get("impersonatedUser", {}).get("username") == "mallory")
    assert denied["responseStatus"]["code"] == 403
    assert denied["annotations"]["authorization.k8s.io/decision"] == "forbid"
    stages = [e["stage"] for e in evs if e["verb"] == "watch" and e["userAgent"].startswith("kubectl")
              and "timeoutSeconds=1" in e["requestURI"]]
    assert stages == ["ResponseStarted", "ResponseComplete"]
    assert any(e["auditID"] == audit_id for e in evs)  # the header names the logged request


def test_a_bad_policy_stops_the_start(tmp_path):
    (tmp_path / "bad.yaml").write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Loud}]\n")
    p = subprocess.run(["python3", "-m", "kybern.cli.main", "server", "--data-dir", str(tmp_path / "d"),
                        "--audit-policy-file", str(tmp_path / "bad.yaml"), "--audit-log-path", "-"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "rules[0].level: Unsupported value: 'Loud'" in p.stderr
