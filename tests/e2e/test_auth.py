"""Authentication as users meet it: a token is required, `kubectl auth` works."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.e2e


def test_requests_without_credentials_are_anonymous_and_health_is_public(cluster):
    """kube-apiserver's default --anonymous-auth: no credentials is system:anonymous, which
    RBAC lets read only the public paths; a bad token is 401."""
    ctx = ssl.create_default_context(cafile=str(cluster.dir / "data" / "pki" / "ca.crt"))
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(cluster.server + "/api/v1/namespaces", context=ctx, timeout=10)
    assert e.value.code == 403
    assert json.loads(e.value.read())["message"] == \
        'namespaces is forbidden: User "system:anonymous" cannot list resource "namespaces" in API group "" ' \
        "at the cluster scope"
    req = urllib.request.Request(cluster.server + "/api/v1/namespaces", headers={"Authorization": "Bearer nope"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, context=ctx, timeout=10)
    assert e.value.code == 401
    assert json.loads(e.value.read())["reason"] == "Unauthorized"
    with urllib.request.urlopen(cluster.server + "/readyz", context=ctx, timeout=10) as r:
        assert r.read() == b"ok"


def test_kubectl_auth_can_i_and_whoami(cluster):
    assert cluster.kubectl("auth", "can-i", "create", "deployments").stdout.strip() == "yes"
    assert "kybern-admin" in cluster.kubectl("auth", "whoami").stdout


def test_bootstrap_tokens_authenticate_until_they_expire(cluster):
    """kubernetes.io "Authenticating with Bootstrap Tokens": a `bootstrap.kubernetes.io/token`
    Secret in kube-system makes `<id>.<secret>` a bearer token for system:bootstrap:<id>; a
    wrong secret, a token without the authentication usage, or an expired one is 401, and
    the token cleaner deletes the expired Secret."""
    import datetime as dt

    def secret(token_id: str, token_secret: str, expires_in: float, **extra: str) -> str:
        exp = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=expires_in)).strftime("%Y-%m-%dT%H:%M:%SZ")
        data = {"token-id": token_id, "token-secret": token_secret, "expiration": exp,
                "usage-bootstrap-authentication": "true", **extra}
        return json.dumps({"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
                           "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
                           "stringData": data})

    def whoami(token: str):
        return cluster.kubectl("--token", token, "auth", "whoami", "-o", "json", check=False)

    cluster.kubectl("apply", "-f", "-", input=secret("07401b", "f395accd246ae52d", 3600,
                                                     **{"auth-extra-groups": "system:bootstrappers:worker"}))
    cluster.kubectl("apply", "-f", "-", input=secret("a1b2c3", "0123456789abcdef", 3600,
                                                     **{"usage-bootstrap-authentication": "false"}))
    cluster.kubectl("apply", "-f", "-", input=secret("5ecre7", "0123456789abcdef", 3))
    try:
        info = json.loads(whoami("07401b.f395accd246ae52d").stdout)["status"]["userInfo"]
        assert info == {"username": "system:bootstrap:07401b",
                        "groups": ["system:bootstrappers", "system:bootstrappers:worker", "system:authenticated"]}
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                  "spec": {"token": "07401b.f395accd246ae52d"}}
        st = json.loads(cluster.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(review)).stdout)["status"]
        assert st["authenticated"] and st["user"]["username"] == "system:bootstrap:07401b"
        p = cluster.kubectl("--token", "07401b.f395accd246ae52d", "get", "pods", check=False)
        assert 'User "system:bootstrap:07401b" cannot list resource "pods"' in p.stderr
        for bad in ("07401b.0000000000000000", "a1b2c3.0123456789abcdef"):
            p = whoami(bad)
            assert p.returncode != 0 and "Unauthorized" in p.stderr, (bad, p.stderr)
        assert json.loads(whoami("5ecre7.0123456789abcdef").stdout)["status"]["userInfo"]["username"] == \
            "system:bootstrap:5ecre7"
        cluster.wait_for(lambda: cluster.kubectl("get", "secret", "-n", "kube-system", "bootstrap-token-5ecre7",
                                                 check=False).returncode != 0, timeout=15,
                         what="the token cleaner deleting the expired token")
        assert "Unauthorized" in whoami("5ecre7.0123456789abcdef").stderr
    finally:
        cluster.kubectl("delete", "secret", "-n", "kube-system", "bootstrap-token-07401b", "bootstrap-token-a1b2c3",
                        "bootstrap-token-5ecre7", "--ignore-not-found")
