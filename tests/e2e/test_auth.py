"""Authentication as users meet it: a token is required, `kubectl auth` works."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.e2e


def test_requests_without_a_token_are_401_but_health_is_public(cluster):
    ctx = ssl.create_default_context(cafile=str(cluster.dir / "data" / "pki" / "ca.crt"))
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(cluster.server + "/api/v1/namespaces", context=ctx, timeout=10)
    assert e.value.code == 401
    assert json.loads(e.value.read())["reason"] == "Unauthorized"
    with urllib.request.urlopen(cluster.server + "/readyz", context=ctx, timeout=10) as r:
        assert r.read() == b"ok"


def test_kubectl_auth_can_i_and_whoami(cluster):
    assert cluster.kubectl("auth", "can-i", "create", "deployments").stdout.strip() == "yes"
    assert "kybern-admin" in cluster.kubectl("auth", "whoami").stdout
