"""A shared-informer factory: one Informer per (resource, namespace) for all the
controllers of a process, as client-go's SharedInformerFactory, so that three
controllers interested in pods cost one list+watch, not three."""

from __future__ import annotations

import asyncio

from kybern.client.http import Client
from kybern.client.informer import Informer
from kybern.client.resources import Resource


class InformerFactory:
    def __init__(self, client: Client, *, namespace: str | None = None) -> None:
        self.client = client
        self.namespace = namespace
        self._informers: dict[Resource, Informer] = {}

    def informer(self, resource: Resource) -> Informer:
        """The shared informer for `resource` (created on first use; start() runs it)."""
        inf = self._informers.get(resource)
        if inf is None:
            ns = self.namespace if resource.namespaced else None
            inf = Informer(self.client, resource, namespace=ns)
            self._informers[resource] = inf
        return inf

    def start(self) -> None:
        for inf in self._informers.values():
            inf.start()

    async def wait_synced(self) -> None:
        await asyncio.gather(*(inf.wait_synced() for inf in self._informers.values()))

    async def stop(self) -> None:
        await asyncio.gather(*(inf.stop() for inf in self._informers.values()))
