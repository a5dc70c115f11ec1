"""Which health check ports a node's service proxy serves, and what it counts."""

from kybern.network.healthcheck import body, wanted


def _svc(name: str, policy: str = "Local", typ: str = "LoadBalancer", hc: int = 31000) -> dict:
    return {"metadata": {"namespace": "ns", "name": name},
            "spec": {"type": typ, "externalTrafficPolicy": policy, "healthCheckNodePort": hc}}


def _slice(svc: str, *eps: tuple[str, str, bool]) -> dict:
    return {"metadata": {"namespace": "ns", "labels": {"kubernetes.io/service-name": svc}},
            "ports": [{"port": 80}, {"port": 443}],
            "endpoints": [{"addresses": [ip], "nodeName": node, "conditions": {"ready": ready}}
                          for ip, node, ready in eps]}


def test_local_ready_endpoints_per_service_port():
    slices = [_slice("lb", ("10.0.0.1", "a", True), ("10.0.0.2", "b", True), ("10.0.0.3", "a", False))]
    # each ready address:port on this node counts, as kube-proxy's LocalReadyEndpoints
    assert wanted([_svc("lb")], slices, "a") == {31000: ("ns", "lb", 2)}
    assert wanted([_svc("lb")], slices, "c") == {31000: ("ns", "lb", 0)}
    assert wanted([_svc("lb", policy="Cluster"), _svc("np", typ="NodePort")], slices, "a") == {}


def test_body_is_kube_proxys():
    assert body("default", "lb", 1, True) == ('{\n\t"service": {\n\t\t"namespace": "default",\n\t\t"name": "lb"'
                                              '\n\t},\n\t"localEndpoints": 1,\n\t"serviceProxyHealthy": true\n}')
