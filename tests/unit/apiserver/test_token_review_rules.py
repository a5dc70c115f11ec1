"""The pure parts of TokenReview and ComponentStatus: which tokens the service account
authenticator refuses before looking anything up (with upstream's messages), and how a
ComponentStatus prints."""

from __future__ import annotations

import asyncio
import types

from kybern.api import tables
from kybern.apiserver import componentstatus, satokens
from kybern.machinery import errors

ISSUER = satokens.ISSUER


def _server() -> types.SimpleNamespace:
    return types.SimpleNamespace(sa_tokens=satokens.TokenIssuer(b"k" * 32))


def _review(server, token: str, audiences: list[str] | None = None):
    return asyncio.run(satokens.review(server, token, audiences))


def test_tokens_this_issuer_did_not_sign_are_not_its_to_explain():
    server = _server()
    other, _ = satokens.TokenIssuer(b"o" * 32).issue("ns", "sa", "u", [ISSUER], 3600)
    for token in ("garbage", "a.b.c", other):
        assert _review(server, token) == (None, [], "")


def test_audiences_are_checked_first_in_upstreams_words():
    server = _server()
    token, _ = server.sa_tokens.issue("ns", "sa", "u", ["vault", "metrics"], 3600)
    assert _review(server, token) == (None, [], 'token audiences ["vault" "metrics"] is invalid for the target '
                                                f'audiences ["{ISSUER}"]')
    expired, _ = server.sa_tokens.issue("ns", "sa", "u", ["vault"], -60)
    assert _review(server, expired, ["vault"]) == (None, [], "service account token has expired")
    assert _review(server, expired)[2].startswith('token audiences ["vault"] is invalid')


def test_componentstatus_rows_as_kubectl_prints_them():
    printer = tables.printer_for("", "ComponentStatus")
    assert [c[0] for c in printer[0]] == ["Name", "Status", "Message", "Error"]

    def row(*conditions):
        return printer[1]({"metadata": {"name": "x"}, "conditions": list(conditions)})

    assert row({"type": "Healthy", "status": "True", "message": "ok"}) == ["x", "Healthy", "ok", ""]
    assert row({"type": "Healthy", "status": "Unknown", "error": "no probe"}) == ["x", "Unhealthy", "", "no probe"]
    assert row() == ["x", "Unknown", "", ""]


def test_in_process_component_health_follows_its_task():
    h = componentstatus.Health()
    assert h.condition() == ("False", "", "not started")
    h.started()
    assert h.condition() == ("True", "ok", "")
    h.stopped("scheduler crashed: RuntimeError('x'); restarting")
    assert h.condition() == ("False", "", "scheduler crashed: RuntimeError('x'); restarting")


def test_components_this_process_does_not_run_are_unknown_and_storage_errors_shown():
    class Storage:
        def __init__(self, error: Exception | None) -> None:
            self.error = error

        async def current_revision(self) -> int:
            if self.error:
                raise self.error
            return 7

    class NoLeases:  # the leases store: no leader election Lease (kube-system/kube-scheduler)
        async def get(self, namespace: str, name: str) -> dict:
            raise errors.StatusError(404, "NotFound", f'leases.coordination.k8s.io "{name}" not found')

    server = types.SimpleNamespace(components={}, storage=Storage(None), store=lambda *gvr: NoLeases())
    status = asyncio.run(componentstatus._status(server, "scheduler"))
    [cond] = status["conditions"]
    assert (cond["status"], "message" in cond) == ("Unknown", False)
    assert cond["error"].startswith("the scheduler does not run in this apiserver's process")
    assert asyncio.run(componentstatus._status(server, "etcd-0"))["conditions"] == [
        {"type": "Healthy", "status": "True", "message": "ok"}]
    server.storage = Storage(OSError("database is locked"))
    assert asyncio.run(componentstatus._status(server, "etcd-0"))["conditions"] == [
        {"type": "Healthy", "status": "False", "error": "database is locked"}]
