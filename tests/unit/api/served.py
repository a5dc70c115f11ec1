"""The kinds kybern serves, as ResourceInfo rows, for OpenAPI tests (the real
registry modules are written elsewhere; these mirror them)."""

from kybern.api.registry import ResourceInfo

SERVED = [
    ResourceInfo("", "v1", "Namespace", "namespaces", False, "io.k8s.api.core.v1.Namespace",
                 short_names=("ns",), subresources=("status",)),
    ResourceInfo("", "v1", "Node", "nodes", False, "io.k8s.api.core.v1.Node",
                 short_names=("no",), subresources=("status",)),
    ResourceInfo("", "v1", "Pod", "pods", True, "io.k8s.api.core.v1.Pod", short_names=("po",),
                 subresources=("status", "binding", "log", "exec", "eviction")),
    ResourceInfo("", "v1", "Event", "events", True, "io.k8s.api.core.v1.Event", short_names=("ev",)),
    ResourceInfo("", "v1", "ConfigMap", "configmaps", True, "io.k8s.api.core.v1.ConfigMap",
                 short_names=("cm",)),
    ResourceInfo("", "v1", "Secret", "secrets", True, "io.k8s.api.core.v1.Secret"),
    ResourceInfo("", "v1", "Service", "services", True, "io.k8s.api.core.v1.Service",
                 short_names=("svc",), subresources=("status",)),
    ResourceInfo("", "v1", "ServiceAccount", "serviceaccounts", True,
                 "io.k8s.api.core.v1.ServiceAccount", short_names=("sa",)),
    ResourceInfo("apps", "v1", "Deployment", "deployments", True, "io.k8s.api.apps.v1.Deployment",
                 short_names=("deploy",), subresources=("status", "scale")),
    ResourceInfo("apps", "v1", "ReplicaSet", "replicasets", True, "io.k8s.api.apps.v1.ReplicaSet",
                 short_names=("rs",), subresources=("status", "scale")),
    ResourceInfo("coordination.k8s.io", "v1", "Lease", "leases", True,
                 "io.k8s.api.coordination.v1.Lease"),
]
