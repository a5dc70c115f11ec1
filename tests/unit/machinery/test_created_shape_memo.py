"""The create memo of managedFields (managedfields._created) keys objects by
their JSON with string values blanked: every create must still get exactly the
fields a walk gives (differential, against _owned() without the memo)."""

from __future__ import annotations

import copy
import random

import orjson

from kybern.api import schemas
from kybern.machinery import managedfields as mf

KINDS = {
    "io.k8s.api.core.v1.Pod": {
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80, "name": "http"}],
                                 "env": [{"name": "POD", "value": "p-1"}, {"name": "B", "valueFrom": {
                                     "fieldRef": {"fieldPath": "metadata.name"}}}],
                                 "volumeMounts": [{"name": "v", "mountPath": "/data"}],
                                 "resources": {"requests": {"cpu": "10m"}}}],
                 "volumes": [{"name": "v", "emptyDir": {}}], "nodeSelector": {"disk": "ssd"},
                 "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
                 "restartPolicy": "Always"},
        "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]}},
    "io.k8s.api.apps.v1.Deployment": {
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx",
                                                       "args": ["--a", "b"], "ports": [{"containerPort": 80}]}]}}}},
    "io.k8s.api.core.v1.Service": {
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http", "protocol": "TCP",
                                                        "name": "web"}], "type": "ClusterIP"}},
    "io.k8s.api.core.v1.ConfigMap": {"data": {"a": "1", "b": "x\":\"y"}},
}
META = {"name": "n", "generateName": "n-", "namespace": "default", "uid": "u-1", "labels": {"a": "b", "c": "d"},
        "annotations": {"x": "y"}, "finalizers": ["f1", "f2"],
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u-2",
                             "controller": True}]}
ALPHABET = ['a', 'b', '"', '\\', ':', ',', '{', '}', '"name', '":"', 'é', ' ', '\n']


def rand_str(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 6)))


def mutate(v: object, rng: random.Random) -> object:
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            r = rng.random()
            if r < 0.05:
                continue  # dropped field
            if r < 0.10:
                k = k + rand_str(rng)  # renamed (unknown or odd) field
            out[k] = mutate(x, rng)
        if rng.random() < 0.1:
            out[rand_str(rng) or "x"] = rand_str(rng)
        return out
    if isinstance(v, list):
        items = [mutate(x, rng) for x in v]
        if items and rng.random() < 0.2:
            items.append(copy.deepcopy(rng.choice(items)))  # a duplicate (same key)
        if items and rng.random() < 0.2:
            items.append(mutate(rng.choice(items), rng))
        return items
    if isinstance(v, str):
        r = rng.random()
        return v if r < 0.3 else "" if r < 0.4 else rand_str(rng) if r < 0.8 else v + rand_str(rng)
    if isinstance(v, int) and not isinstance(v, bool) and rng.random() < 0.3:
        return rng.choice([0, 1, 80, 443])
    return v


def count_walks(monkeypatch):  # type: ignore[no-untyped-def]
    """Count the calls of the managed-fields walk; returns the count and the real walk."""
    walks = [0]
    owned = mf._owned

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        walks[0] += 1
        return owned(*args, **kwargs)

    monkeypatch.setattr(mf, "_owned", counted)
    return walks, owned


def test_memoised_creates_get_the_walks_fields(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(7)
    checked = 0
    walks, owned = count_walks(monkeypatch)
    for name, rest in KINDS.items():
        schema = schemas.definition(name)
        skeleton = mf._skeleton(schema)
        for has_status in (True, False):
            ignored = mf.reset_fields(has_status, "")
            for _ in range(400):
                obj = {"apiVersion": "v1", "kind": "X", **mutate(copy.deepcopy({"metadata": META, **rest}), rng)}
                got = mf._created(skeleton, copy.deepcopy(obj), schema, ignored)
                want = owned(skeleton, obj, schema, ignored)
                assert orjson.dumps(got) == orjson.dumps(want), (name, obj)
                checked += 1
    hits = checked - walks[0]  # a create walks only when the memo misses
    assert checked == 3200 and hits > 10  # the memo was used, and gave the walk's answer


def test_pods_that_differ_only_in_strings_share_an_entry(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    schema = schemas.definition("io.k8s.api.core.v1.Pod")
    skeleton, ignored = mf._skeleton(schema), mf.reset_fields(True, "")
    walks, owned = count_walks(monkeypatch)
    sets = []
    for i in range(5):
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": f"p-{i}", "uid": f"u{i}", "labels": {"app": f"a{i}"}},
               "spec": {"containers": [{"name": "web", "image": f"nginx:{i}", "env": [{"name": "POD", "value": f"p-{i}"}]}]}}
        sets.append(orjson.dumps(mf._created(skeleton, pod, schema, ignored)))
    assert walks[0] == 1 and len(set(sets)) == 1
    # a list item's key is not blanked: another container name is another set
    pod["spec"]["containers"][0]["name"] = "other"  # type: ignore[index]
    other = mf._created(skeleton, pod, schema, ignored)
    assert walks[0] == 2 and 'k:{"name":"other"}' in other["f:spec"]["f:containers"]


def test_blanking_keeps_list_keys_and_escapes() -> None:
    rx = mf._shape_re(schemas.definition("io.k8s.api.core.v1.Pod"))
    body = orjson.dumps({"spec": {"containers": [{"name": "web", "image": 'a\\":"b', "env": [
        {"name": "POD", "value": "v"}], "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}})
    assert rx.sub(b'":""', body) == (b'{"spec":{"containers":[{"name":"web","image":"","env":[{"name":"POD",'
                                     b'"value":""}],"ports":[{"containerPort":80,"protocol":"TCP"}]}]}}')


def test_pods_with_the_generated_token_volume_share_an_entry(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Every pod gets kube-api-access-<5 random> from admission: creates that differ
    only in that name share an entry, and get exactly the walk's set with their own
    name, in the walk's order, whatever other volumes sort around it."""
    from kybern.apiserver.admission_serviceaccount import mount_token

    schema = schemas.definition("io.k8s.api.core.v1.Pod")
    skeleton, ignored = mf._skeleton(schema), mf.reset_fields(True, "")
    walks, owned = count_walks(monkeypatch)
    rng = random.Random(11)
    for others in ([], ["a"], ["kube"], ["kube-api-access-zzzzz"], ["kube-api-accesz", "zz"], ["kube-api-access"]):
        for _ in range(20):
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "uid": "u"},
                   "spec": {"containers": [{"name": "web", "image": "i", "volumeMounts": [
                       {"name": o, "mountPath": f"/{o}"} for o in others]}],
                            "volumes": [{"name": o, "emptyDir": {}} for o in others]}}
            mount_token(pod, None)
            if rng.random() < 0.5:  # the generated volume first or among the others
                rng.shuffle(pod["spec"]["volumes"])
            got = mf._created(skeleton, copy.deepcopy(pod), schema, ignored)
            assert orjson.dumps(got) == orjson.dumps(owned(skeleton, pod, schema, ignored)), pod
    # one walk per shape (and volume order), not one per pod, where the name is the only one of its prefix
    assert walks[0] < 60
