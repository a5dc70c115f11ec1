"""`kubectl apply -f` of a `kind: List` (what `kubectl get -o yaml` prints): kubectl
validates Lists client-side against the protobuf /openapi/v2 document."""

from __future__ import annotations

import hashlib

import pytest
import yaml
from rawapi import RawAPI

pytestmark = pytest.mark.e2e

PROTO = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


def _cm(name: str, namespace: str, **extra) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": {"k": name}, **extra}


def _list(*items: dict) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": list(items)})


def test_apply_and_create_a_list(cluster, namespace):
    k = cluster.kubectl
    p = k("-v=6", "apply", "-f", "-", input=_list(_cm("a", namespace), _cm("b", namespace)))
    assert "configmap/a created" in p.stdout and "configmap/b created" in p.stdout
    assert "/openapi/v2" in p.stderr  # the List went through client-side validation
    k("create", "-f", "-", input=_list(_cm("c", namespace)))
    # The round trip users do: get -o yaml | apply -f
    listed = k("get", "configmaps", "a", "b", "-n", namespace, "-o", "yaml").stdout
    assert yaml.safe_load(listed)["kind"] == "List"
    p = k("apply", "-f", "-", input=listed)
    assert "configmap/a" in p.stdout and "configmap/b" in p.stdout

    # A single object still takes the v3 path (server-side fieldValidation).
    p = k("-v=6", "apply", "-f", "-", input=yaml.safe_dump(_cm("d", namespace)))
    assert "configmap/d created" in p.stdout and "/openapi/v2" not in p.stderr


def test_list_with_unknown_field_is_rejected_client_side(cluster, namespace):
    p = cluster.kubectl("apply", "-f", "-", check=False,
                        input=_list(_cm("ok", namespace), _cm("bad", namespace, bogus=1)))
    assert p.returncode != 0
    assert ('unknown field "bogus" in io.k8s.api.core.v1.ConfigMap' in p.stderr), p.stderr
    assert "turn validation off with --validate=false" in p.stderr
    # nothing was sent: validation happens before any create
    assert cluster.kubectl("get", "configmap", "ok", "-n", namespace, check=False).returncode != 0


def test_openapi_v2_content_negotiation(cluster):
    raw = RawAPI(cluster)

    def get(accept: str, **headers: str):
        return raw.pool.request("GET", raw.server + "/openapi/v2", headers={
            "Authorization": f"Bearer {raw.token}", "Accept": accept, **headers})

    js = get("application/json")
    body = js.data
    etag = f'"{hashlib.sha512(body).hexdigest().upper()}"'
    assert js.headers["Content-Type"] == "application/json" and js.headers["ETag"] == etag
    pb = get(PROTO)
    assert pb.headers["Content-Type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    assert pb.headers["ETag"] == etag  # one ETag for both forms, as kube-openapi
    assert pb.data[:5] == b"\n\x032.0"  # Document.swagger = "2.0"
    assert get(PROTO, **{"If-None-Match": etag}).status == 304
