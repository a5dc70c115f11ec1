"""--anonymous-auth, as kube-apiserver's: a request with no credentials is
system:anonymous in system:unauthenticated, which RBAC authorizes (403 beyond the
public paths); with it off, or with credentials that fail, the answer is 401."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from kybern.apiserver.server import APIServer
from kybern.storage.sqlite import SQLiteStore


@pytest.mark.parametrize("anonymous", [True, False])
async def test_requests_without_credentials(tmp_path, anonymous):
    api = APIServer(SQLiteStore(str(tmp_path / "state.db")), tokens={"admin-token"}, anonymous_auth=anonymous)
    await api.bootstrap()
    async with TestClient(TestServer(api.app())) as c:
        r = await c.get("/api/v1/namespaces/default/pods")
        body = await r.json()
        if anonymous:
            assert r.status == 403
            assert body["message"] == ('pods is forbidden: User "system:anonymous" cannot list resource "pods" '
                                       'in API group "" in the namespace "default"')
        else:
            assert (r.status, body["reason"]) == (401, "Unauthorized")
        assert (await c.get("/version")).status == 200  # system:public-info-viewer
        r = await c.get("/api/v1/pods", headers={"Authorization": "Bearer not-a-token"})
        assert r.status == 401  # credentials that fail are never anonymous
        assert (await c.get("/api/v1/pods", headers={"Authorization": "Bearer admin-token"})).status == 200
