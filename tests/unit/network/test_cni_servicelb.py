"""CNI plumbing (config shapes and result parsing) and the LoadBalancer pool."""

from __future__ import annotations

from kybern.network import cni, servicelb


def test_plugin_config_gets_prev_result_and_only_its_capabilities():
    conflist = cni.bridge_conflist("kybern-n1", "kybern3", "10.244.3.0/24", "10.244.3.1", "/tmp/ipam")
    bridge, portmap = conflist["plugins"]
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.3.0/24", "gateway": "10.244.3.1"}]]
    rc = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}], "bandwidth": {}}
    first = cni.plugin_config(conflist, bridge, None, rc)
    assert first["name"] == "kybern-n1" and first["cniVersion"] == "1.0.0"
    assert "prevResult" not in first and "runtimeConfig" not in first
    second = cni.plugin_config(conflist, portmap, {"ips": []}, rc)
    assert second["prevResult"] == {"ips": []}
    assert second["runtimeConfig"] == {"portMappings": rc["portMappings"]}  # not bandwidth
    assert "capabilities" not in second


def test_pod_ip_from_result():
    result = {"interfaces": [{"name": "kybern3"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/x"}],
              "ips": [{"address": "10.244.3.5/24", "interface": 2, "gateway": "10.244.3.1"}]}
    assert cni.pod_ip(result) == ["10.244.3.5"]


def lb(name, ts, ip=None, cls=None, typ="LoadBalancer", want=None):
    s = {"metadata": {"namespace": "d", "name": name, "creationTimestamp": ts},
         "spec": {"type": typ, "loadBalancerClass": cls, "loadBalancerIP": want}, "status": {}}
    if ip:
        s["status"]["loadBalancer"] = {"ingress": [{"ip": ip}]}
    return s


def test_pool_assignment_is_stable_and_unique():
    services = [lb("a", "1", ip="127.240.0.7"), lb("b", "2"), lb("c", "3", cls="example.com/lb"),
                lb("d", "4", ip="127.240.0.9", typ="ClusterIP"), lb("e", "5", want="127.240.0.50")]
    got = servicelb.assign(services)
    assert got == {"d/a": "127.240.0.7", "d/b": "127.240.0.1", "d/d": None, "d/e": "127.240.0.50"}
    # a duplicate keeps the older owner's address
    again = servicelb.assign([lb("x", "1", ip="127.240.0.1"), lb("y", "2", ip="127.240.0.1")])
    assert again == {"d/x": "127.240.0.1", "d/y": "127.240.0.2"}
