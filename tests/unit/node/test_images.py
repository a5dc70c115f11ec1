"""The local image store: docker-style reference normalisation, import, lookup,
removal, and the sample images every node starts with."""

from pathlib import Path

import pytest

from kybern.node.images import ImageStore, InvalidReference, normalize, parse_ref


@pytest.mark.parametrize("ref, full", [
    ("demo", "docker.io/library/demo:latest"),
    ("demo:v1", "docker.io/library/demo:v1"),
    ("docker.io/library/x:1", "docker.io/library/x:1"),
    ("index.docker.io/library/x:1", "docker.io/library/x:1"),
    ("user/app", "docker.io/user/app:latest"),
    ("localhost/app:2", "localhost/app:2"),
    ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
    ("myreg:5000/team/app:1.0", "myreg:5000/team/app:1.0"),
])
def test_normalisation_matches_docker(ref: str, full: str) -> None:
    assert normalize(ref) == full


def test_familiar_names_drop_the_defaults() -> None:
    assert parse_ref("docker.io/library/x:1").familiar == "x:1"
    assert parse_ref("demo").familiar == "demo:latest"
    assert parse_ref("myreg:5000/app").familiar == "myreg:5000/app:latest"


@pytest.mark.parametrize("bad", ["", "UPPER:1", "a b", "demo:", "x@sha256:zz", "-lead"])
def test_invalid_references_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidReference):
        parse_ref(bad)


def test_sample_images_are_seeded_once(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    refs = {i["ref"] for i in store.list()}
    assert {"demo:v1", "update-demo:nautilus", "update-demo:kitten"} <= refs
    assert store.get("update-demo:kitty") is None  # upstream's update-demo has no kitty tag
    naut = store.get("docker.io/library/update-demo:nautilus")
    assert naut is not None
    assert (naut.rootfs / "data.json").read_text().strip() == '{"image": "nautilus.jpg"}'
    # a removed sample stays removed
    assert store.remove("demo:v1")
    assert ImageStore(tmp_path).get("demo:v1") is None


def test_the_sandbox_image_is_present_and_joins_an_older_store(tmp_path: Path) -> None:
    """registry.k8s.io/pause:3.10 (the kubelet's sandbox image, present on kubeadm and
    kind nodes) is seeded with an executable /pause; a store seeded before it existed
    (a marker without names) gets it once, and removing it keeps it removed."""
    pause = ImageStore(tmp_path / "new").get("registry.k8s.io/pause:3.10")
    assert pause is not None and pause.config["entrypoint"] == ["/pause"]
    assert (pause.rootfs / "pause").stat().st_mode & 0o111
    old = tmp_path / "old" / "images"
    old.mkdir(parents=True)
    (old / ".seeded").write_text("sample images imported; delete this file to import them again\n")
    store = ImageStore(tmp_path / "old")
    assert store.get("registry.k8s.io/pause:3.10") is not None
    assert store.get("demo:v1") is None  # the old marker says it was seeded (and since removed)
    assert store.remove("registry.k8s.io/pause:3.10")
    assert ImageStore(tmp_path / "old").get("registry.k8s.io/pause:3.10") is None


def test_import_get_list_remove(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello.txt").write_text("hi")
    store = ImageStore(tmp_path / "node", seed_samples=False)
    img = store.import_dir("app", src, config={"cmd": ["cat", "hello.txt"]})
    assert img["ref"] == "app:latest"
    assert img["name"] == "docker.io/library/app:latest"
    assert img["id"].startswith("sha256:")
    assert img["size"] == 2
    got = store.get("docker.io/library/app:latest")
    assert got is not None and got.config == {"cmd": ["cat", "hello.txt"]}
    # the store keeps its own copy
    (src / "hello.txt").write_text("changed")
    assert (got.rootfs / "hello.txt").read_text() == "hi"
    # by digest
    assert store.get(f"app@{got.id}") is not None
    assert [i["ref"] for i in store.list()] == ["app:latest"]
    assert store.remove("app")
    assert store.get("app") is None
    assert not store.remove("app")


def test_same_content_same_id(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    store = ImageStore(tmp_path / "node", seed_samples=False)
    a = store.import_dir("a:1", src)
    b = store.import_dir("b:1", src)
    assert a["id"] == b["id"]


def test_import_rejects_non_directories(tmp_path: Path) -> None:
    store = ImageStore(tmp_path, seed_samples=False)
    with pytest.raises(NotADirectoryError):
        store.import_dir("x:1", tmp_path / "missing")


def test_import_refuses_a_directory_holding_the_store(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "node", seed_samples=False)
    with pytest.raises(ValueError):
        store.import_dir("x:1", tmp_path)
