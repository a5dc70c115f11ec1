"""The audit policy as upstream's checker matches it, the policy file's checks, and the
log file's rotation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kybern.apiserver.audit import LogFile, PolicyError, load_policy
from kybern.apiserver.authz import Attributes, request_attributes

POLICY = """
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: [system:kube-proxy]
  verbs: [watch]
- level: RequestResponse
  resources: [{group: "", resources: [configmaps], resourceNames: [settings]}]
- level: Request
  namespaces: [kube-system]
  resources: [{group: apps, resources: ["deployments/*"]}]
- level: Metadata
  resources: [{group: "", resources: ["*/log"]}]
  omitStages: [ResponseStarted]
- level: None
  nonResourceURLs: ["/healthz*", /version]
- level: Metadata
  userGroups: [system:authenticated]
"""


def attrs(user: str, method: str, path: str, groups: tuple[str, ...] = ("system:authenticated",),
          **query: str) -> Attributes:
    return request_attributes({"username": user, "groups": list(groups)}, method, path, query)


def test_rules_match_in_order_as_upstream(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    p = load_policy(tmp_path / "p.yaml")
    assert p.decide(attrs("system:kube-proxy", "GET", "/api/v1/services", watch="true"))[0] == "None"
    assert p.decide(attrs("system:kube-proxy", "GET", "/api/v1/services"))[0] == "Metadata"  # a list, not a watch
    assert p.decide(attrs("u", "GET", "/api/v1/namespaces/a/configmaps/settings"))[0] == "RequestResponse"
    assert p.decide(attrs("u", "GET", "/api/v1/namespaces/a/configmaps/other"))[0] == "Metadata"  # resourceNames
    assert p.decide(attrs("u", "PUT", "/apis/apps/v1/namespaces/kube-system/deployments/d/scale"))[0] == "Request"
    assert p.decide(attrs("u", "PUT", "/apis/apps/v1/namespaces/default/deployments/d/scale"))[0] == "Metadata"
    # "res/*" matches the resource itself too (upstream's ruleMatchesResource has no subresource check there)
    assert p.decide(attrs("u", "PUT", "/apis/apps/v1/namespaces/kube-system/deployments/d"))[0] == "Request"
    level, omit, _ = p.decide(attrs("u", "GET", "/api/v1/namespaces/a/pods/p/log"))
    assert level == "Metadata" and omit == {"RequestReceived", "ResponseStarted"}  # policy's and rule's stages
    assert p.decide(attrs("u", "GET", "/healthz/etcd"))[0] == "None"
    assert p.decide(attrs("u", "GET", "/versions"))[0] == "Metadata"  # /version is no prefix
    assert p.decide(attrs("anon", "GET", "/api", groups=("system:unauthenticated",)))[0] == "None"  # no rule


@pytest.mark.parametrize("doc, error", [
    ("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n", "loaded illegal policy with 0 rules"),
    ("apiVersion: v1\nkind: ConfigMap\n", "not an audit.k8s.io/v1 Policy"),
    ("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Loud}]\n", "rules[0].level: Unsupported value"),
    ("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, resources: [{group: ''}], "
     "nonResourceURLs: [/x]}]\n", "rules cannot apply to both regular resources and non-resource URLs"),
])
def test_bad_policies_are_refused(tmp_path: Path, doc: str, error: str) -> None:
    (tmp_path / "p.yaml").write_text(doc)
    with pytest.raises(PolicyError, match=error.replace("[", r"\[").replace("]", r"\]")):
        load_policy(tmp_path / "p.yaml")


def test_log_rotates_by_size_and_keeps_max_backup(tmp_path: Path) -> None:
    log = LogFile(str(tmp_path / "audit.log"), max_size_mb=1, max_backup=2)
    big = {"kind": "Event", "pad": "x" * 300_000}
    for _ in range(12):
        log.write([big])
    log.close()
    rotated = sorted(tmp_path.glob("audit-*.log"))
    assert len(rotated) == 2  # older ones removed
    for f in [tmp_path / "audit.log", *rotated]:
        lines = f.read_bytes().splitlines()
        assert f.stat().st_size <= 1024 * 1024 and all(json.loads(x)["kind"] == "Event" for x in lines)
