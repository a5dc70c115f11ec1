"""Environment building and $(VAR) expansion, with upstream's edge cases."""

from __future__ import annotations

from typing import Any

import pytest

from kybern.node.env import EnvResolver, expand, expand_command, field_value


@pytest.mark.parametrize("text, out", [
    ("$(A)", "a"),
    ("x$(A)y$(B)z", "xaybz"),
    ("$$(A)", "$(A)"),          # escaped
    ("$(MISSING)", "$(MISSING)"),  # unknown stays as written
    ("$(A", "$(A"),              # unterminated
    ("$A", "$A"),
    ("$", "$"),
    ("$$", "$"),
    ("$()", "$()"),
])
def test_expand(text: str, out: str) -> None:
    assert expand(text, {"A": "a", "B": "b"}.get) == out


POD: dict[str, Any] = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "web"}},
    "spec": {"nodeName": "n1", "serviceAccountName": "default", "containers": [{
        "name": "c", "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}}]},
    "status": {"hostIP": "10.0.0.1", "podIP": "10.0.0.1"},
}


def test_field_refs() -> None:
    assert field_value(POD, "metadata.name") == "p"
    assert field_value(POD, "metadata.namespace") == "ns"
    assert field_value(POD, "metadata.labels['app']") == "web"
    assert field_value(POD, "spec.nodeName") == "n1"
    assert field_value(POD, "status.podIP") == "10.0.0.1"


async def test_env_values_reference_earlier_ones_and_command_is_expanded() -> None:
    container = {"name": "c", "command": ["echo", "$(GREETING)"], "args": ["$(POD)", "$$(POD)"],
                 "resources": POD["spec"]["containers"][0]["resources"],
                 "env": [{"name": "NAME", "value": "world"},
                         {"name": "GREETING", "value": "hello $(NAME)"},
                         {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                         {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu",
                                                                            "divisor": "1m"}}},
                         {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                                            "divisor": "1Mi"}}}]}
    env = await EnvResolver(None).resolve(POD, container)  # type: ignore[arg-type]
    d = dict(env)
    assert d["GREETING"] == "hello world" and d["POD"] == "p"
    assert d["CPU"] == "500" and d["MEM"] == "64"
    assert expand_command(container, env) == (["echo", "hello world"], ["p", "$(POD)"])


def test_resource_field_ref_divisor_zero_or_unset_is_one() -> None:
    """The API shows an unset divisor as "0"; the kubelet reads it as 1. cpu is
    rounded up to whole cores from its milli value (convertResourceCPUToString)."""
    r = EnvResolver(None)  # type: ignore[arg-type]
    c = POD["spec"]["containers"][0]
    for ref, want in (({"resource": "limits.cpu"}, "1"), ({"resource": "limits.cpu", "divisor": "0"}, "1"),
                      ({"resource": "limits.cpu", "divisor": "1m"}, "500"),
                      ({"resource": "limits.memory", "divisor": "0"}, str(64 * 2 ** 20)),
                      ({"resource": "limits.memory", "divisor": "1Mi"}, "64")):
        assert r.resource_value(POD, c, ref) == want, ref
