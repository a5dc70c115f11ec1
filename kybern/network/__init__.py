"""Pod networking and Services on a node: CNI pod networks (cni.py, podnet.py),
the service proxy (proxy.py with kernel rules or a userspace forwarder) and
LoadBalancer addresses (servicelb.py). See docs/networking.md."""
