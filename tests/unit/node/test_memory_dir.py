"""The agent's /dev/shm directory (volumes.claim_memory_dir): marked with its data dir;
those of agents whose data dir is gone are removed, others' are left alone."""

from __future__ import annotations

from kybern.node import volumes


def test_claim_removes_only_abandoned_directories(tmp_path):
    shm = tmp_path / "shm"
    alive_data, gone_data = tmp_path / "alive", tmp_path / "gone"
    alive_data.mkdir()
    for name, data in (("alive", alive_data), ("gone", gone_data)):
        (shm / name / "pod-uid").mkdir(parents=True)
        (shm / name / ".data-dir").write_text(str(data))
    (shm / "unmarked" / "pod-uid").mkdir(parents=True)  # an older agent's: not ours to judge

    mine = shm / "mine"
    volumes.claim_memory_dir(mine, str(tmp_path / "mydata"))

    assert (mine / ".data-dir").read_text() == str(tmp_path / "mydata")
    assert sorted(p.name for p in shm.iterdir()) == ["alive", "mine", "unmarked"]
