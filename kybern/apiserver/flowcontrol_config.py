"""The API Priority and Fairness configuration an apiserver keeps (upstream's APF
config-producer and config-consumer): the mandatory and suggested FlowSchemas and
PriorityLevelConfigurations made at start (and put back to their fixed spec while
annotated `apf.kubernetes.io/autoupdate-spec: "true"`), and each FlowSchema's
`Dangling` condition, following changes from the watch cache. The objects are served,
not enforced: requests are not queued by them (docs/apiserver.md)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from kybern.api import flowcontrol
from kybern.apiserver.store import Predicate
from kybern.machinery import errors, meta

if TYPE_CHECKING:
    from kybern.apiserver.server import APIServer

log = logging.getLogger(__name__)
V = "v1"


def dangling(fs: dict[str, Any], levels: set[str]) -> dict[str, str]:
    """The Dangling condition (without its time) a FlowSchema should have."""
    pl = ((fs.get("spec") or {}).get("priorityLevelConfiguration") or {}).get("name") or ""
    if pl in levels:
        return {"type": "Dangling", "status": "False", "reason": "Found",
                "message": f'This FlowSchema references the PriorityLevelConfiguration object named "{pl}" and it '
                           "exists"}
    return {"type": "Dangling", "status": "True", "reason": "NotFound",
            "message": f'This FlowSchema references the PriorityLevelConfiguration object named "{pl}" but there is '
                       "no such object"}


class FlowControlConfig:
    def __init__(self, server: APIServer) -> None:
        self.server = server
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.ensure()
        await self.sync()
        self._task = asyncio.create_task(self._run(), name="apf-config")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def ensure(self) -> None:
        """Create what is missing; put back the spec of those still annotated autoupdate."""
        for plural, want in flowcontrol.bootstrap_objects():
            store = self.server.store(flowcontrol.GROUP, V, plural)
            name = want["metadata"]["name"]
            try:
                await store.create(None, want)
                continue
            except errors.StatusError as e:
                if e.reason != "AlreadyExists":
                    raise
            if plural == "prioritylevelconfigurations":
                flowcontrol.default_priority_level(want["spec"])

            def fix(cur: dict[str, Any] | None, want: dict[str, Any] = want) -> dict[str, Any]:
                if cur is None:
                    raise errors.not_found(flowcontrol.GROUP, plural, name)
                if (cur["metadata"].get("annotations") or {}).get(flowcontrol.AUTOUPDATE) == "true" and \
                        cur.get("spec") != want["spec"]:
                    cur["spec"] = want["spec"]
                return cur
            try:
                await store.update(None, name, fix)
            except errors.StatusError as e:
                if e.code not in (404, 409):
                    raise

    async def sync(self) -> str:
        """Write each FlowSchema's Dangling condition where it changed; the list's resourceVersion."""
        levels = await self.server.store(flowcontrol.GROUP, V, "prioritylevelconfigurations").list(None, pred=Predicate())
        names = {pl["metadata"]["name"] for pl in levels["items"]}
        fs_store = self.server.store(flowcontrol.GROUP, V, "flowschemas")
        schemas = await fs_store.list(None, pred=Predicate())
        if not flowcontrol.MANDATORY_NAMES["prioritylevelconfigurations"] <= names or \
                not flowcontrol.MANDATORY_NAMES["flowschemas"] <= {fs["metadata"]["name"] for fs in schemas["items"]}:
            await self.ensure()  # a mandatory object was deleted: made again, as upstream's ensurer does
            return await self.sync()
        for fs in schemas["items"]:
            want = dangling(fs, names)
            have = next((c for c in (fs.get("status") or {}).get("conditions") or [] if c.get("type") == "Dangling"),
                        None)
            if have is not None and all(have.get(k) == v for k, v in want.items()):
                continue

            def set_condition(cur: dict[str, Any] | None, want: dict[str, str] = want) -> dict[str, Any]:
                if cur is None:
                    raise errors.not_found(flowcontrol.GROUP, "flowschemas", fs["metadata"]["name"])
                conds = [c for c in (cur.get("status") or {}).get("conditions") or [] if c.get("type") != "Dangling"]
                cur["status"] = {**(cur.get("status") or {}),
                                 "conditions": [*conds, {**want, "lastTransitionTime": meta.now()}]}
                return cur
            try:
                await fs_store.update(None, fs["metadata"]["name"], set_condition, subresource="status")
            except errors.StatusError as e:
                if e.code not in (404, 409):
                    raise
        return str(max(int(levels["metadata"]["resourceVersion"]), int(schemas["metadata"]["resourceVersion"])))

    async def _run(self) -> None:
        changed = asyncio.Event()

        async def follow(plural: str) -> None:
            store = self.server.store(flowcontrol.GROUP, V, plural)
            while True:
                try:
                    w: Any = await store.watch(None, pred=Predicate(), resource_version="")
                    try:
                        while (batch := await w.next_batch(30.0)) is not None:
                            if not isinstance(batch, str):
                                changed.set()
                    finally:
                        w.close()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("APF configuration: watching %s failed", plural)
                    await asyncio.sleep(1)

        watchers = [asyncio.create_task(follow(p)) for p in ("flowschemas", "prioritylevelconfigurations")]
        try:
            while True:
                await changed.wait()
                changed.clear()
                try:
                    await self.sync()
                except asyncio.CancelledError:
                    raise
                except Exception:  # keep following; the next change syncs again
                    log.exception("APF configuration: status sync failed")
                    await asyncio.sleep(1)
                    changed.set()
        finally:
            for t in watchers:
                t.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
