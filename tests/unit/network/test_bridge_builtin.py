"""The built-in bridge + host-local plugin (kybern/network/bridge.py) against
Debian's real plugin executables: same result shape, same kernel state, and
the same IPAM files, so each releases what the other reserved."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import uuid

import pytest

from kybern.network import bridge, cni, netns

CONF = {"cniVersion": "1.0.0", "type": "bridge", "isGateway": True, "ipMasq": False, "hairpinMode": True}


def conf_for(tmp_path, name: str, subnet: str = "10.251.7.0/24") -> dict:
    gw = subnet.rsplit(".", 1)[0] + ".1"
    return {**CONF, "name": name, "bridge": name,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet, "gateway": gw}]],
                     "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(tmp_path / "ipam")}}


# -- IPAM and config checks (no root needed) --------------------------------------
def test_pool_reserves_in_order_skips_gateway_and_wraps(tmp_path):
    pool = bridge.Pool(conf_for(tmp_path, "kbt", "10.251.7.0/29"))  # .1 gateway, .2-.6 usable
    got = [str(pool.reserve(f"c{i}", "eth0")) for i in range(5)]
    assert got == ["10.251.7.2", "10.251.7.3", "10.251.7.4", "10.251.7.5", "10.251.7.6"]
    assert (pool.dir / "10.251.7.3").read_bytes() == b"c1\r\neth0"  # host-local's layout
    assert (pool.dir / "last_reserved_ip.0").read_text() == "10.251.7.6"
    with pytest.raises(bridge.PluginError, match="no IP addresses available"):
        pool.reserve("c5", "eth0")
    pool.release("c1", "eth0", "10.251.7.3")
    pool.release("c3", "eth0")  # by container id alone: a scan, as host-local's DEL
    pool.release("someone-else", "eth0", "10.251.7.2")  # not its address: kept
    assert sorted(p.name for p in pool.dir.iterdir() if p.name[0].isdigit()) == [
        "10.251.7.2", "10.251.7.4", "10.251.7.6"]
    assert str(pool.reserve("c6", "eth0")) == "10.251.7.3"  # wrapped round past the last reserved


def test_supports_only_what_it_implements(tmp_path):
    conf = conf_for(tmp_path, "kbt")
    assert bridge.supports(conf)
    assert bridge.supports(cni.bridge_conflist("n", "kybern0", "10.244.0.0/24", "10.244.0.1", "/x")["plugins"][0])
    for change in ({"ipMasq": True}, {"vlan": 5}, {"promiscMode": True}, {"type": "macvlan"},
                   {"ipam": {**conf["ipam"], "type": "dhcp"}},
                   {"ipam": {**conf["ipam"], "ranges": [[{"subnet": "fd00::/64"}]]}},
                   {"ipam": {**conf["ipam"], "ranges": [[{"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.10"}]]}}):
        assert not bridge.supports({**conf, **change}), change


# -- against the real plugins (root) --------------------------------------------------
needs_root = pytest.mark.skipif(os.geteuid() != 0 or cni.plugins_available(("bridge", "host-local")) != [],
                                reason="needs root and Debian's bridge and host-local plugins")


def sh(cmd: str) -> str:
    return subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True).stdout


def kernel_state(result: dict, ns: str) -> dict:
    """What a user would look at: the pod's interface, address and routes, and
    the host end's bridge port."""
    host = result["interfaces"][1]["name"]
    eth0 = json.loads(sh(f"ip -n {ns} -j -d addr show dev eth0"))[0]
    port = json.loads(sh(f"ip -j -d link show dev {host}"))[0]
    routes = json.loads(sh(f"ip -n {ns} -j route show"))
    return {
        "flags": sorted(set(eth0["flags"]) & {"UP", "LOWER_UP", "BROADCAST", "MULTICAST"}),
        "addr": [(a["local"], a["prefixlen"], a.get("broadcast")) for a in eth0["addr_info"] if a["family"] == "inet"],
        "routes": sorted((r["dst"], r.get("gateway"), r.get("dev")) for r in routes),
        "master": port.get("master"), "hairpin": port["linkinfo"]["info_slave_data"]["hairpin"],
        "port_up": "UP" in port["flags"], "lo_up": "UP" in json.loads(sh(f"ip -n {ns} -j link show lo"))[0]["flags"],
    }


@needs_root
def test_builtin_matches_the_plugin_executables(tmp_path, monkeypatch):
    name = "kbt" + uuid.uuid4().hex[:6]
    conf = conf_for(tmp_path, name)
    ns_names = [f"{name}-{i}" for i in range(3)]

    async def run() -> None:
        paths = [await netns.netns_add(n) for n in ns_names]
        try:
            monkeypatch.setattr(bridge, "ENABLED", False)
            real = await cni.invoke("ADD", conf, container_id="real", netns=paths[0])
            monkeypatch.setattr(bridge, "ENABLED", True)
            ours = await cni.invoke("ADD", conf, container_id="ours", netns=paths[1])
            ours2 = await cni.invoke("ADD", conf, container_id="ours2", netns=paths[2])

            # the same result, but for the random names and MACs
            def shape(r: dict) -> dict:
                return {**r, "interfaces": [sorted(i) for i in r["interfaces"]], "ips": [
                    {**ip, "address": "X"} for ip in r["ips"]]}
            assert shape(ours) == shape(real)
            assert ours["interfaces"][0] == real["interfaces"][0]  # the bridge, with its MAC unchanged
            assert [r["ips"][0]["address"] for r in (real, ours, ours2)] == [
                "10.251.7.2/24", "10.251.7.3/24", "10.251.7.4/24"]  # one allocator's order across both
            # the same kernel state, but for the address
            a, b = kernel_state(real, ns_names[0]), kernel_state(ours, ns_names[1])
            assert a["addr"] == [("10.251.7.2", 24, "10.251.7.255")]
            assert b["addr"] == [("10.251.7.3", 24, "10.251.7.255")]
            assert {**a, "addr": None} == {**b, "addr": None}
            assert b["master"] == name and b["hairpin"] and b["port_up"] and b["lo_up"]
            assert ("default", "10.251.7.1", "eth0") in b["routes"]
            assert open(f"/sys/class/net/{name}/address").read().strip() == real["interfaces"][0]["mac"]
            # IPv4 links: no IPv6 on eth0 nor on the veth's host end; lo keeps ::1
            addrs = {i["ifname"]: {(a["family"], a["local"]) for a in i["addr_info"]}
                     for i in json.loads(sh(f"ip -n {ns_names[1]} -j addr show"))}
            assert addrs["eth0"] == {("inet", "10.251.7.3")}
            assert ("inet6", "::1") in addrs["lo"]
            host_end = ours["interfaces"][1]["name"]
            assert open(f"/proc/sys/net/ipv6/conf/{host_end}/disable_ipv6").read().strip() == "1"
            assert not [a for i in json.loads(sh(f"ip -j addr show dev {host_end}")) for a in i["addr_info"]]

            # traffic: the host and another pod reach a pod the built-in plugin wired
            srv = netns.in_netns(paths[1], socket.socket)
            srv.bind(("0.0.0.0", 8080))
            srv.listen()
            socket.create_connection(("10.251.7.3", 8080), timeout=3).close()
            cli = netns.in_netns(paths[0], socket.socket)
            cli.settimeout(3)
            cli.connect(("10.251.7.3", 8080))
            cli.close()
            srv.close()

            # each DEL releases what the other reserved (same files), and takes the veth away
            monkeypatch.setattr(bridge, "ENABLED", False)
            await cni.invoke("DEL", {**conf, "prevResult": ours}, container_id="ours", netns=paths[1])
            monkeypatch.setattr(bridge, "ENABLED", True)
            await cni.invoke("DEL", {**conf, "prevResult": real}, container_id="real", netns=paths[0])
            await cni.invoke("DEL", conf, container_id="ours2", netns=paths[2])  # no cached result
            left = sorted(p.name for p in (tmp_path / "ipam" / name).iterdir() if p.name[0].isdigit())
            assert left == []
            assert sh(f"ip -j link show master {name}").strip() in ("", "[]")
            for n in ns_names:
                assert json.loads(sh(f"ip -n {n} -j link show"))[-1]["ifname"] == "lo"
        finally:
            for n in ns_names:
                netns.netns_delete(n)
            subprocess.run(["ip", "link", "del", name], capture_output=True)

    asyncio.run(run())


@needs_root
def test_a_failed_add_says_why_and_keeps_no_address(tmp_path):
    name = "kbt" + uuid.uuid4().hex[:6]
    conf = conf_for(tmp_path, name)
    try:
        with pytest.raises(cni.CNIError, match=r'plugin type="bridge" failed \(add\): failed to set up eth0'):
            asyncio.run(cni.invoke("ADD", conf, container_id="x", netns=f"/var/run/netns/{name}-missing"))
        assert [p.name for p in (tmp_path / "ipam" / name).iterdir() if p.name[0].isdigit()] == []
        assert sh(f"ip -j link show master {name}").strip() in ("", "[]")  # no veth left either
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)
