"""v1 ComponentStatus (`kubectl get cs`): deprecated since 1.19 but still served by
1.32, list and get only, answered at request time and never stored, as upstream's
componentstatus REST.

What each component's condition says is what this apiserver process knows, no more:
- `etcd-0`: the storage (etcd or SQLite) answers a read of its current revision, the
  same check as `/readyz/etcd`.
- `scheduler`, `controller-manager`: when this process runs them (`kybern up`), whether
  the supervised task is running or in its restart backoff after a crash (Health).
  When they run elsewhere (`--no-scheduler` with `kybern scheduler`, `kybern server`,
  the extra `--api-workers` processes), their leader election Lease
  (`kube-system/kube-scheduler`, `kube-controller-manager`) is what is known: Healthy
  while it is held and renewed within its duration, not healthy once it is not. With
  no Lease (leader election off) there is nothing to ask — kybern's components serve
  no /healthz port as upstream's 10257/10259 do — so the condition is Unknown with an
  error saying so, which kubectl prints as Unhealthy.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from kybern.api import tables  # the kind's columns are in printers.py
from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Strategy
from kybern.apiserver import rest
from kybern.apiserver.store import Predicate
from kybern.machinery import errors

if TYPE_CHECKING:
    from kybern.apiserver.server import APIServer

RESOURCE = ResourceInfo("", "v1", "ComponentStatus", "componentstatuses", False,
                        "io.k8s.api.core.v1.ComponentStatus", short_names=("cs",), verbs=("get", "list"),
                        strategy=Strategy())
DEPRECATED = "v1 ComponentStatus is deprecated in v1.19+"  # the warning upstream sends on every request
COMPONENTS = ("scheduler", "controller-manager", "etcd-0")
LEASES = {"scheduler": "kube-scheduler", "controller-manager": "kube-controller-manager"}  # leader election
class Health:
    """A supervised in-process component's state, for its ComponentStatus."""

    def __init__(self) -> None:
        self.running = False
        self.error = ""

    def started(self) -> None:
        self.running, self.error = True, ""

    def stopped(self, why: str) -> None:
        self.running, self.error = False, why

    def condition(self) -> tuple[str, str, str]:
        if self.running:
            return "True", "ok", ""
        return "False", "", self.error or "not started"


async def _condition(server: APIServer, name: str) -> tuple[str, str, str]:
    """(status, message, error) of a component's Healthy condition."""
    if name == "etcd-0":
        try:
            await asyncio.wait_for(server.storage.current_revision(), 20)  # upstream's probe timeout
        except Exception as e:  # whatever the store raises is the component's error
            return "False", "", str(e) or type(e).__name__
        return "True", "ok", ""
    health = server.components.get(name)
    if health is not None:
        return health.condition()
    lease = await _leader_lease(server, name)
    if lease is None:
        return "Unknown", "", (f"the {name} does not run in this apiserver's process and serves no health "
                               "endpoint kybern could probe")
    spec = lease.get("spec") or {}
    holder, renewed = spec.get("holderIdentity"), spec.get("renewTime")
    try:
        age = time.time() - datetime.datetime.fromisoformat(renewed).timestamp() if renewed else None
    except ValueError:
        age = None
    if holder and age is not None and age <= float(spec.get("leaseDurationSeconds") or 15):
        return "True", "ok", ""
    return "False", "", (f"its leader election Lease kube-system/{lease['metadata']['name']} is not held "
                         "or not renewed in time" + (f" (last holder {holder})" if holder else ""))


async def _leader_lease(server: APIServer, name: str) -> dict[str, Any] | None:
    """The Lease a leader-elected scheduler or controller manager elsewhere renews (None without one)."""
    try:
        return await server.store("coordination.k8s.io", "v1", "leases").get("kube-system", LEASES[name])
    except (errors.StatusError, KeyError):
        return None


async def _status(server: APIServer, name: str) -> dict[str, Any]:
    status, message, error = await _condition(server, name)
    cond: dict[str, Any] = {"type": "Healthy", "status": status}
    if message:
        cond["message"] = message
    if error:
        cond["error"] = error
    return {"kind": "ComponentStatus", "apiVersion": "v1", "metadata": {"name": name, "creationTimestamp": None},
            "conditions": [cond]}


async def handle(server: APIServer, request: web.Request, name: str | None, sub: str | None) -> web.Response:
    if request.method != "GET" or sub or rest.query_bool(request, "watch"):
        raise errors.method_not_allowed("the server does not allow this method on the requested resource")
    if name is not None:
        if name not in COMPONENTS:  # a plain error upstream: a 500 with no reason
            raise errors.StatusError(500, "", f"Component not found: {name}")
        items = [await _status(server, name)]
    else:  # selectors as upstream's componentStatusPredicate: labels (none) and metadata.name
        pred = Predicate(request.query.get("labelSelector"), request.query.get("fieldSelector"))
        for path, _op, _value in pred.fields:
            why = RESOURCE.strategy.field_label_error(path)  # type: ignore[union-attr]
            if why:
                raise errors.bad_request(why)
        items = [o for o in await asyncio.gather(*(_status(server, n) for n in COMPONENTS)) if pred.matches(o)]
    warnings = [DEPRECATED]
    if rest.wants_table(request):
        printer = tables.printer_for("", "ComponentStatus")
        body = tables.table(printer, items, include_object=request.query.get("includeObject", "Metadata"),
                            list_meta={} if name is None else None)
        return rest.json_response(body, warnings=warnings)
    if name is not None:
        return rest.json_response(items[0], warnings=warnings)
    for item in items:  # a typed list's items carry no kind (Go leaves their TypeMeta empty)
        del item["kind"], item["apiVersion"]
    return rest.json_response({"kind": "ComponentStatusList", "apiVersion": "v1", "metadata": {}, "items": items},
                              warnings=warnings)
