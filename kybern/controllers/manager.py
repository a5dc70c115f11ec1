"""The controller manager: builds every enabled controller on one shared
informer factory and runs them until `stop` is set (kube-controller-manager in
one coroutine). `NAMES` lists what can be enabled; `kybern` picks from it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from kybern.client.http import Client
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import NAMESPACES
from kybern.controllers.bootstrapsigner import BootstrapSigner
from kybern.controllers.cronjob import CronJobController
from kybern.controllers.csrapproving import CSRApprovingController
from kybern.controllers.csrsigning import CSRSigningController
from kybern.controllers.daemonset import DaemonSetController
from kybern.controllers.deployment import DeploymentController
from kybern.controllers.disruption import DisruptionController
from kybern.controllers.endpoints import EndpointsController
from kybern.controllers.endpointslice import EndpointSliceController
from kybern.controllers.garbagecollector import GarbageCollector
from kybern.controllers.job import JobController
from kybern.controllers.localpath import LocalPathProvisioner
from kybern.controllers.namespace import NamespaceController
from kybern.controllers.nodelifecycle import NodeLifecycleController
from kybern.controllers.persistentvolume import PersistentVolumeBinder
from kybern.controllers.podautoscaler import HorizontalPodAutoscalerController
from kybern.controllers.podgc import PodGC
from kybern.controllers.replicaset import ReplicaSetController
from kybern.controllers.replication import ReplicationManager
from kybern.controllers.resourcequota import ResourceQuotaController
from kybern.controllers.rootca import RootCAPublisher
from kybern.controllers.serviceaccounts import ServiceAccountsController
from kybern.controllers.statefulset import StatefulSetController
from kybern.controllers.storageprotection import StorageProtectionController
from kybern.controllers.tokencleaner import TokenCleaner

log = logging.getLogger(__name__)

def _namespace(client: Client, informers: InformerFactory) -> NamespaceController:
    return NamespaceController(client, informers.informer(NAMESPACES))


_BUILDERS: dict[str, Any] = {
    "deployment": DeploymentController,
    "replicaset": ReplicaSetController,
    "replicationcontroller": ReplicationManager,
    "garbagecollector": GarbageCollector,
    "podgc": PodGC,
    "namespace": _namespace,
    "nodelifecycle": NodeLifecycleController,
    "job": JobController,
    "cronjob": CronJobController,
    "daemonset": DaemonSetController,
    "statefulset": StatefulSetController,
    "persistentvolume-binder": PersistentVolumeBinder,
    "local-path-provisioner": LocalPathProvisioner,
    "horizontalpodautoscaling": HorizontalPodAutoscalerController,
    "endpoint": EndpointsController,
    "endpointslice": EndpointSliceController,
    "serviceaccount": ServiceAccountsController,
    "root-ca-cert-publisher": RootCAPublisher,
    "resourcequota": ResourceQuotaController,
    "disruption": DisruptionController,
    "storage-protection": StorageProtectionController,
    "csrsigning": CSRSigningController,
    "csrapproving": CSRApprovingController,
    "tokencleaner": TokenCleaner,
    "bootstrapsigner": BootstrapSigner,
}
NAMES: list[str] = list(_BUILDERS)


async def run_controllers(client: Client, *, stop: asyncio.Event | None = None,
                          enabled: Iterable[str] | None = None, informers: InformerFactory | None = None) -> None:
    """Run the controllers named in `enabled` (default: all of NAMES) until `stop`
    is set or the task is cancelled. `informers`: a factory shared with other
    components of the process (its owner stops it); by default one of their own."""
    names = list(enabled) if enabled is not None else NAMES
    unknown = [n for n in names if n not in _BUILDERS]
    if unknown:
        raise ValueError(f"unknown controllers {unknown}; known: {', '.join(NAMES)}")
    shared = informers is not None
    if informers is None:
        informers = InformerFactory(client)
    with informers.recording() as mine:
        controllers = [_BUILDERS[n](client, informers) for n in names]
    tasks: list[asyncio.Task[None]] = []
    try:
        informers.start()
        await informers.wait_synced()
        tasks = [asyncio.create_task(c.run(), name=f"controller-{n}") for n, c in zip(names, controllers)]
        if stop is None:
            await asyncio.gather(*tasks)
        else:
            await stop.wait()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await informers.release(mine, shared=shared)
