"""The controller manager: builds every enabled controller on one shared
informer factory and runs them until `stop` is set (kube-controller-manager in
one coroutine). `NAMES` lists what can be enabled; `kybern` picks from it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from kybern.client.http import Client
from kybern.client.resources import NAMESPACES
from kybern.controllers.cronjob import CronJobController
from kybern.controllers.daemonset import DaemonSetController
from kybern.controllers.deployment import DeploymentController
from kybern.controllers.endpoints import EndpointsController
from kybern.controllers.endpointslice import EndpointSliceController
from kybern.controllers.garbagecollector import GarbageCollector
from kybern.controllers.informers import InformerFactory
from kybern.controllers.job import JobController
from kybern.controllers.localpath import LocalPathProvisioner
from kybern.controllers.namespace import NamespaceController
from kybern.controllers.nodelifecycle import NodeLifecycleController
from kybern.controllers.persistentvolume import PersistentVolumeBinder
from kybern.controllers.podautoscaler import HorizontalPodAutoscalerController
from kybern.controllers.podgc import PodGC
from kybern.controllers.replicaset import ReplicaSetController
from kybern.controllers.statefulset import StatefulSetController

log = logging.getLogger(__name__)

def _namespace(client: Client, informers: InformerFactory) -> NamespaceController:
    return NamespaceController(client, informers.informer(NAMESPACES))


_BUILDERS: dict[str, Any] = {
    "deployment": DeploymentController,
    "replicaset": ReplicaSetController,
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
}
NAMES: list[str] = list(_BUILDERS)


async def run_controllers(client: Client, *, stop: asyncio.Event | None = None,
                          enabled: Iterable[str] | None = None) -> None:
    """Run the controllers named in `enabled` (default: all of NAMES) until `stop`
    is set or the task is cancelled."""
    names = list(enabled) if enabled is not None else NAMES
    unknown = [n for n in names if n not in _BUILDERS]
    if unknown:
        raise ValueError(f"unknown controllers {unknown}; known: {', '.join(NAMES)}")
    informers = InformerFactory(client)
    controllers = [_BUILDERS[n](client, informers) for n in names]
    informers.start()
    await informers.wait_synced()
    tasks = [asyncio.create_task(c.run(), name=f"controller-{n}") for n, c in zip(names, controllers)]
    try:
        if stop is None:
            await asyncio.gather(*tasks)
        else:
            await stop.wait()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await informers.stop()
