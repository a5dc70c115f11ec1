"""A shared-informer factory: one Informer per (resource, namespace) for all the
components of a process that use it, as client-go's SharedInformerFactory, so
that three controllers interested in pods cost one list+watch, not three.

`kybern up` and `kybern server` give the controllers and the scheduler one
factory (they run in one process there): each pod or node change is then sent,
decoded and cached once for both, not once each. A component that stops (and is
restarted by its supervisor) takes its handlers off the shared informers; the
informers themselves live as long as the factory's owner.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from kybern.client.http import Client
from kybern.client.informer import Handler, Informer
from kybern.client.resources import Resource

Registrations = set[tuple[Informer, Handler]]


class InformerFactory:
    def __init__(self, client: Client, *, namespace: str | None = None) -> None:
        self.client = client
        self.namespace = namespace
        self._informers: dict[Resource, Informer] = {}
        self._started = False

    def informer(self, resource: Resource) -> Informer:
        """The shared informer for `resource` (created on first use; started at
        once if the factory has been started already)."""
        inf = self._informers.get(resource)
        if inf is None:
            ns = self.namespace if resource.namespaced else None
            inf = Informer(self.client, resource, namespace=ns)
            self._informers[resource] = inf
            if self._started:
                inf.start()
        return inf

    def existing(self, resource: Resource) -> Informer | None:
        """The shared informer for `resource` if some component made one (none is made)."""
        return self._informers.get(resource)

    def start(self) -> None:
        self._started = True
        for inf in self._informers.values():
            inf.start()

    async def wait_synced(self) -> None:
        await asyncio.gather(*(inf.wait_synced() for inf in self._informers.values()))

    async def stop(self) -> None:
        await asyncio.gather(*(inf.stop() for inf in self._informers.values()))

    def registrations(self) -> Registrations:
        """Every (informer, handler) registered now."""
        return {(inf, h) for inf in self._informers.values() for h in inf.handlers}

    @contextlib.contextmanager
    def recording(self) -> Iterator[Registrations]:
        """What a component registers inside the block (its handlers): the set
        yielded is filled when the block ends, for release()."""
        regs: Registrations = set()
        before = self.registrations()
        yield regs
        regs |= self.registrations() - before

    async def release(self, regs: Registrations, *, shared: bool) -> None:
        """A component stops: from a factory shared with others it takes only its
        handlers away (the informers go on); a factory of its own is stopped."""
        if shared:
            for inf, h in regs:
                inf.remove_handler(h)
        else:
            await self.stop()
