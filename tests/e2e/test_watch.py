"""Watch as real clients use it: `kubectl get -w`, the official client's
watch.Watch from a resourceVersion, bookmarks, and objects entering and
leaving a label selector. (410 on a compacted revision is a unit test:
tests/unit/apiserver/test_store_semantics.py.)"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest
from conftest import KUBECTL
from kubernetes import client, watch
from rawapi import RawAPI

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def api(cluster):
    return cluster.api_client()


def _json_stream(text: str) -> list[dict]:
    """kubectl -o json -w prints one pretty JSON document after another."""
    dec, out, i = json.JSONDecoder(), [], 0
    while i < len(text):
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            break
        obj, i = dec.raw_decode(text, i)
        out.append(obj)
    return out


def test_kubectl_get_watch_sees_added_modified_deleted(cluster, api, namespace):
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "before"}})
    proc = subprocess.Popen([KUBECTL, "get", "configmaps", "-n", namespace, "-w", "--output-watch-events",
                             "-o", "json"], env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()

    def seen() -> list[tuple[str, str]]:
        try:
            return [(e["type"], e["object"]["metadata"]["name"]) for e in _json_stream("".join(chunks))]
        except ValueError:  # a document half written
            return []
    try:
        cluster.wait_for(lambda: ("ADDED", "before") in seen(), timeout=10, what="initial list")
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "w"}})
        core.patch_namespaced_config_map("w", namespace, {"data": {"k": "v"}})
        core.delete_namespaced_config_map("w", namespace)
        cluster.wait_for(lambda: ("DELETED", "w") in seen(), timeout=10, what="DELETED event")
    finally:
        proc.terminate()
        proc.wait(5)
    events = [e for e in seen() if e[1] == "w"]
    assert events == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


def test_kubectl_get_watch_table(cluster, namespace):
    """Without -o, kubectl asks for Table rows over the watch and prints them."""
    proc = subprocess.Popen([KUBECTL, "get", "configmaps", "-n", namespace, "-w", "--watch-only"],
                            env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    try:
        time.sleep(0.5)
        cluster.kubectl("create", "configmap", "tab", "-n", namespace, "--from-literal=a=b")
        cluster.wait_for(lambda: any(line.split()[:2] == ["tab", "1"] for line in lines if line.strip()),
                         timeout=10, what="watch table row")
    finally:
        proc.terminate()
        proc.wait(5)
    assert lines[0].split() == ["NAME", "DATA", "AGE"]


def test_python_client_watch_from_resource_version(api, namespace):
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "a"}})
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.patch_namespaced_config_map("a", namespace, {"data": {"x": "1"}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "b"}})
    core.delete_namespaced_config_map("a", namespace)
    w = watch.Watch()
    got = []
    for ev in w.stream(core.list_namespaced_config_map, namespace, resource_version=rv, timeout_seconds=2):
        got.append((ev["type"], ev["object"].metadata.name, ev["object"].metadata.resource_version))
        if len(got) == 3:
            w.stop()
    assert [g[:2] for g in got] == [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    rvs = [int(g[2]) for g in got]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)
    # resourceVersion "0"/unset: the current state first, as ADDED
    w = watch.Watch()
    first = []
    for ev in w.stream(core.list_namespaced_config_map, namespace, timeout_seconds=1):
        first.append((ev["type"], ev["object"].metadata.name))
        w.stop()
    assert first == [("ADDED", "b")]


def test_label_selector_watch_enter_and_leave(api, namespace):
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "x", "labels": {"app": "in"}}})
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.patch_namespaced_config_map("x", namespace, {"metadata": {"labels": {"app": "out"}}})  # leaves
    core.patch_namespaced_config_map("x", namespace, {"data": {"ignored": "1"}})  # unseen: not matching
    core.patch_namespaced_config_map("x", namespace, {"metadata": {"labels": {"app": "in"}}})  # enters
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "other", "labels": {"app": "out"}}})
    core.delete_namespaced_config_map("x", namespace)
    w = watch.Watch()
    got = []
    for ev in w.stream(core.list_namespaced_config_map, namespace, label_selector="app=in",
                       resource_version=rv, timeout_seconds=2):
        got.append((ev["type"], ev["object"].metadata.name, (ev["object"].metadata.labels or {}).get("app")))
        if len(got) == 3:
            w.stop()
    assert got == [("DELETED", "x", "out"), ("ADDED", "x", "in"), ("DELETED", "x", "in")]


def test_bookmarks(cluster, api, namespace):
    """With allowWatchBookmarks a quiet watch still learns the current resourceVersion."""
    raw = RawAPI(cluster)
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "bm"}})
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    r = raw.pool.request("GET", f"{raw.server}/api/v1/namespaces/{namespace}/configmaps?watch=true"
                         f"&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=12",
                         headers={"Authorization": f"Bearer {raw.token}"}, preload_content=False)
    assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
    deadline = time.monotonic() + 12
    buf, events = b"", []
    try:
        for chunk in r.stream(256, decode_content=True):
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                events.append(json.loads(line))
            if any(e["type"] == "BOOKMARK" for e in events) or time.monotonic() > deadline:
                break
    finally:
        r.release_conn()
    bms = [e for e in events if e["type"] == "BOOKMARK"]
    assert bms, events
    obj = bms[0]["object"]
    assert obj["kind"] == "ConfigMap" and obj["apiVersion"] == "v1"
    assert int(obj["metadata"]["resourceVersion"]) >= int(rv)
    # the official client understands bookmarks too: it moves its resourceVersion on
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_config_map, namespace, resource_version=rv,
                       allow_watch_bookmarks=True, timeout_seconds=1):
        assert ev["type"] in ("BOOKMARK", "ADDED", "MODIFIED", "DELETED")


def test_watch_errors(cluster, namespace):
    raw = RawAPI(cluster)
    code, _, st = raw.request("GET", f"/api/v1/namespaces/{namespace}/configmaps?watch=true&resourceVersion=abc")
    assert code == 400 and st["reason"] == "BadRequest"
    code, _, st = raw.request("GET", f"/api/v1/namespaces/{namespace}/configmaps?watch=true&labelSelector=a+in+b")
    assert code == 400 and st["reason"] == "BadRequest"
    # a watch with timeoutSeconds ends by itself with a clean end of stream
    t0 = time.monotonic()
    code, _, _ = raw.request("GET", f"/api/v1/namespaces/{namespace}/configmaps?watch=true&timeoutSeconds=1")
    assert code == 200 and time.monotonic() - t0 < 5
