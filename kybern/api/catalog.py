"""All built-in kinds, assembled into one Registry."""

from __future__ import annotations

from kybern.api import (
    admissionregistration,
    apiregistration,
    apps,
    autoscaling,
    batch,
    certificates,
    core,
    core_extra,
    crd,
    discovery_k8s,
    events,
    flowcontrol,
    networking,
    nodeapi,
    policy,
    rbac,
    scheduling,
    storage_k8s,
)
from kybern.api.registry import Registry


def builtin_registry() -> Registry:
    reg = Registry()
    for info in core.RESOURCES + core_extra.RESOURCES + apps.RESOURCES + batch.RESOURCES + \
            autoscaling.RESOURCES + networking.RESOURCES + discovery_k8s.RESOURCES + events.RESOURCES + \
            policy.RESOURCES + rbac.RESOURCES + scheduling.RESOURCES + apiregistration.RESOURCES + \
            storage_k8s.RESOURCES + crd.RESOURCES + admissionregistration.RESOURCES + nodeapi.RESOURCES + \
            certificates.RESOURCES + flowcontrol.RESOURCES:
        reg.add(info)
    return reg
