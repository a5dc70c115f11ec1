"""What the kubelet asks of cgroups (pod and container resources from a spec, as
upstream computes them) and the files the runtime writes and reads for them,
on a tmp dir standing in for cgroup v1 and v2 hierarchies. The real kernel is
exercised by tests/e2e/test_cgroup_limits.py."""

from __future__ import annotations

import shutil
from pathlib import Path

from kybern.node.runtimes import cgroups as cg


def ctr(requests=None, limits=None) -> dict:
    return {"name": "c", "resources": {"requests": requests or {}, "limits": limits or {}}}


def test_cgroup_parent_follows_the_qos_class() -> None:
    assert cg.cgroup_parent("Guaranteed", "u") == "kubepods/podu"
    assert cg.cgroup_parent("Burstable", "u") == "kubepods/burstable/podu"
    assert cg.cgroup_parent("BestEffort", "u") == "kubepods/besteffort/podu"


def test_container_resources_as_the_kubelet_converts_them() -> None:
    assert cg.container_resources(ctr()) == {"cpu_shares": 2}
    assert cg.container_resources(ctr({"cpu": "250m"}, {"cpu": "500m", "memory": "64Mi"})) == {
        "cpu_shares": 256, "cpu_period": 100_000, "cpu_quota": 50_000, "memory_limit_in_bytes": 64 << 20}
    # requests default to limits; a tiny limit still gets the minimum quota
    assert cg.container_resources(ctr(limits={"cpu": "1m"})) == {
        "cpu_shares": 2, "cpu_period": 100_000, "cpu_quota": 1_000}
    assert cg.container_resources(ctr(limits={"cpu": "2"}))["cpu_shares"] == 2048


def test_pod_resources_limit_only_when_every_container_has_one() -> None:
    both = {"spec": {"containers": [ctr({"cpu": "100m"}, {"cpu": "200m", "memory": "100Mi"}),
                                    ctr({"cpu": "300m"}, {"cpu": "300m", "memory": "50Mi"})]}}
    assert cg.pod_resources(both) == {"cpu_shares": 409, "cpu_period": 100_000, "cpu_quota": 50_000,
                                      "memory_limit_in_bytes": 150 << 20}
    partial = {"spec": {"containers": [ctr(limits={"memory": "100Mi"}), ctr({"cpu": "100m"})]}}
    assert cg.pod_resources(partial) == {"cpu_shares": 102}
    # an init container larger than the app containers sets the pod's limits
    init = {"spec": {"initContainers": [ctr(limits={"cpu": "1", "memory": "1Gi"})],
                     "containers": [ctr(limits={"cpu": "100m", "memory": "10Mi"})]}}
    assert cg.pod_resources(init) == {"cpu_shares": 1024, "cpu_period": 100_000, "cpu_quota": 100_000,
                                      "memory_limit_in_bytes": 1 << 30}


def test_shares_to_weight_matches_runc() -> None:
    assert cg.shares_to_weight(2) == 1
    assert cg.shares_to_weight(1024) == 39
    assert cg.shares_to_weight(262_144) == 10_000


def read(p: Path) -> str:
    return p.read_text().strip()


def test_v1_writes_limits_in_each_hierarchy(tmp_path: Path) -> None:
    base = {c: tmp_path / c for c in ("memory", "cpu", "cpuacct", "pids")}
    g = cg.Cgroups("kybern-n", base=base, version=1, pod_pids_limit=100)
    pod = {"spec": {"containers": [ctr(limits={"cpu": "100m", "memory": "50Mi"})]}}
    parent = cg.cgroup_parent("Guaranteed", "u1")
    g.ensure_pod(parent, cg.pod_resources(pod))
    rel = g.create_container(parent, "cid", cg.container_resources(pod["spec"]["containers"][0]))
    assert rel == "kubepods/podu1/cid"
    mem, cpu = tmp_path / "memory/kybern-n" / rel, tmp_path / "cpu/kybern-n" / rel
    assert read(mem / "memory.limit_in_bytes") == str(50 << 20)
    assert read(cpu / "cpu.cfs_quota_us") == "10000"  # per the kernel's default 100000 us period
    assert read(cpu / "cpu.shares") == "102"
    assert read(tmp_path / "pids/kybern-n/kubepods/podu1/pids.max") == "100"  # pod level only
    assert not (tmp_path / "pids/kybern-n" / rel / "pids.max").exists()
    assert (tmp_path / "cpuacct/kybern-n" / rel).is_dir()
    assert g.find_pod("u1") == parent and g.pod_uids() == {"u1"}
    # a container without limits: the least CPU weight; a new cgroup is unlimited already,
    # so nothing else is written (here no kernel fills in the defaults: the files stay absent)
    rel2 = g.create_container(parent, "cid2", cg.container_resources(ctr()))
    assert read(tmp_path / "cpu/kybern-n" / rel2 / "cpu.shares") == "2"
    assert not (tmp_path / "memory/kybern-n" / rel2 / "memory.limit_in_bytes").exists()
    assert not (tmp_path / "cpu/kybern-n" / rel2 / "cpu.cfs_quota_us").exists()
    # an existing cgroup (an agent restarted on its tree) gets every value, defaults included
    g2 = cg.Cgroups("kybern-n", base=base, version=1)
    g2.ensure_pod(parent, cg.pod_resources({"spec": {"containers": [ctr()]}}))
    assert read(mem.parent / "memory.limit_in_bytes") == "-1"
    assert read(cpu.parent / "cpu.cfs_quota_us") == "-1" and read(cpu.parent / "cpu.shares") == "2"
    # asked again by this process with the same resources: nothing is written
    (cpu.parent / "cpu.shares").write_text("7")
    g2.ensure_pod(parent, cg.pod_resources({"spec": {"containers": [ctr()]}}))
    assert read(cpu.parent / "cpu.shares") == "7"
    # removed behind its back: set up again
    g2.remove(parent)
    g2.ensure_pod(parent, cg.pod_resources({"spec": {"containers": [ctr()]}}))
    assert read(cpu.parent / "cpu.shares") == "2"
    # removed by someone else (this process still thinks it is there): the next
    # container's cgroup brings the pod's back, with the pod's values
    for h in base:
        shutil.rmtree(tmp_path / h / "kybern-n" / parent)
    rel3 = g2.create_container(parent, "cid3", cg.container_resources(ctr()))
    assert read(cpu.parent / "cpu.shares") == "2"
    assert (tmp_path / "memory/kybern-n" / rel3).is_dir()


def test_v1_counters(tmp_path: Path) -> None:
    base = {c: tmp_path / c for c in ("memory", "cpu", "cpuacct")}
    g = cg.Cgroups("k", base=base, version=1)
    for c in base.values():
        (c / "k/x").mkdir(parents=True)
    (tmp_path / "memory/k/x/memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    (tmp_path / "memory/k/x/memory.usage_in_bytes").write_text("10000000\n")
    (tmp_path / "memory/k/x/memory.stat").write_text("cache 5\ninactive_file 1\ntotal_inactive_file 4000000\n")
    (tmp_path / "cpuacct/k/x/cpuacct.usage").write_text("2500000000\n")
    assert g.oom_kills("x") == 1
    assert g.usage("x") == (2.5, 6_000_000)  # working set: usage minus inactive file pages
    assert g.usage("missing") is None and g.oom_kills("missing") == 0


def test_v2_enables_controllers_and_writes_limits(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    g = cg.Cgroups("k", base={"": tmp_path}, version=2)
    parent = cg.cgroup_parent("BestEffort", "u2")
    g.ensure_pod(parent, cg.pod_resources({"spec": {"containers": [ctr()]}}))
    rel = g.create_container(parent, "cid", {"cpu_shares": 1024, "cpu_period": 100_000, "cpu_quota": 20_000,
                                              "memory_limit_in_bytes": 1 << 20})
    assert read(tmp_path / "cgroup.subtree_control") == "+cpu +memory +pids"
    d = tmp_path / "k" / rel
    assert read(d / "memory.max") == str(1 << 20) and read(d / "memory.swap.max") == "0"
    assert read(d / "cpu.max") == "20000 100000" and read(d / "cpu.weight") == "39"
    assert read(tmp_path / "k/kubepods/besteffort/cpu.weight") == "1"  # BestEffort: the least weight
    assert not (tmp_path / "k/kubepods/besteffort/podu2/memory.max").exists()  # the new cgroup's default
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (d / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\n")
    (d / "memory.current").write_text("3000\n")
    (d / "memory.stat").write_text("anon 1000\ninactive_file 1000\n")
    assert g.oom_kills(rel) == 1 and g.usage(rel) == (1.5, 2000)


def test_detection_parses_mountinfo_and_own_cgroups() -> None:
    info = ("31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
            "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
            "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
            "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n")
    mounts = cg._mounts(info)
    assert [(m[0], m[2]) for m in mounts] == [("cgroup", "/sys/fs/cgroup/cpu,cpuacct"),
                                              ("cgroup", "/sys/fs/cgroup/memory"),
                                              ("cgroup2", "/sys/fs/cgroup/unified")]
    assert {"cpu", "cpuacct"} <= mounts[0][3]
    own = cg._own_cgroups("4:memory:/process_api/abc\n2:cpu,cpuacct:/\n0::/\n")
    assert own == {"memory": "/process_api/abc", "cpu": "/", "cpuacct": "/", "": "/"}
    assert cg._under("/sys/fs/cgroup/memory", "/", "/process_api/abc") == Path(
        "/sys/fs/cgroup/memory/process_api/abc")
    # a bind mount of a sub-tree (as in a container): the path is relative to the mount's root
    assert cg._under("/sys/fs/cgroup/memory", "/docker/x", "/docker/x/child") == Path(
        "/sys/fs/cgroup/memory/child")


def test_joiner_runs_then_and_disabled_cgroups_do_nothing() -> None:
    ran = []
    g = cg.Cgroups("k", base={})
    assert not g.enabled
    j = g.joiner("kubepods/podu/c", lambda: ran.append(1))
    j()
    j.close()
    assert ran == [1]
    assert g.create_container("kubepods/podu", "c", {}) == ""
    assert g.usage("") is None and g.oom_kills("") == 0


def test_not_root_means_not_enforced_and_said_once(monkeypatch, caplog) -> None:
    monkeypatch.setattr(cg.os, "geteuid", lambda: 1000)
    g = cg.Cgroups.for_node("node-1", "/tmp/some-data-dir")
    assert g.name.startswith("kybern-node-1-") and not g.enabled
    with caplog.at_level("WARNING", logger=cg.__name__):
        g.log_once()
        g.log_once()
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "resource limits are not enforced: the agent is not running as root" in said[0]
