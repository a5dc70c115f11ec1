"""The Node status the agent reports: extended resources an operator put into
status.capacity (upstream's MachineInfo setter)."""

from __future__ import annotations

from pathlib import Path

from kybern.node import node_status as ns_


def test_extended_resources_in_capacity_become_allocatable(tmp_path: Path) -> None:
    old = {"capacity": {"cpu": "2", "example.com/dongle": "4", "kubernetes.io/foo": "1"},
           "allocatable": {"cpu": "2", "example.com/gone": "1"}}
    alloc = {"cpu": "2"}
    ns_.extended_allocatable(alloc, old)
    # copied as is; one no longer in capacity is deleted (null in the merge patch); a
    # kubernetes.io name is not an extended resource
    assert alloc == {"cpu": "2", "example.com/dongle": "4", "example.com/gone": None}
    status = ns_.node_status(name="n", address="127.0.0.1", port=1, data_dir=str(tmp_path), runtime_version="x://y",
                             images=[], old=old)
    # capacity carries only what the agent owns: the merge patch leaves the operator's entry alone
    assert "example.com/dongle" not in status["capacity"] and status["allocatable"]["example.com/dongle"] == "4"
    assert not ns_.is_extended_resource("requests.example.com/dongle")
    assert not ns_.is_extended_resource("hugepages-2Mi")
