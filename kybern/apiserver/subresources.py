"""Subresources: status, scale, binding, log and eviction. Each is a thin handler over the
kind's RESTStore, as upstream's StatusREST, ScaleREST, BindingREST and LogREST."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from kybern.api import tables
from kybern.apiserver import rest
from kybern.apiserver.store import Predicate, RESTStore
from kybern.machinery import errors, meta, selectors

if TYPE_CHECKING:
    from kybern.apiserver.server import APIServer

Obj = dict[str, Any]


async def status(server: "APIServer", request: web.Request, store: RESTStore, ns: str | None,
                 name: str) -> web.StreamResponse:
    return await _get_put_patch(server, request, store, ns, name, "status")


async def ephemeralcontainers(server: "APIServer", request: web.Request, store: RESTStore, ns: str | None,
                              name: str) -> web.StreamResponse:
    """pods/<name>/ephemeralcontainers (`kubectl debug`): the pod, of which only
    spec.ephemeralContainers may change (added to, never edited or removed)."""
    return await _get_put_patch(server, request, store, ns, name, "ephemeralcontainers")


async def _get_put_patch(server: "APIServer", request: web.Request, store: RESTStore, ns: str | None,
                         name: str, subresource: str) -> web.StreamResponse:
    """A subresource that reads as the whole object and writes only its own part."""
    if request.method == "GET":
        obj = await store.get(ns, name)
        if subresource == "status" and rest.wants_table(request):
            # upstream's StatusREST.ConvertToTable is the main store's: `kubectl get deploy x
            # --subresource=status` prints the kind's columns, not NAME and AGE
            return rest.json_response(tables.table(
                tables.printer_for(store.info.group, store.info.kind), [obj],
                include_object=request.query.get("includeObject", "Metadata"),
                list_meta={"resourceVersion": obj["metadata"]["resourceVersion"]}))
        return rest.json_response(obj)
    if request.method == "PUT":
        return await rest.update(server, request, store, ns, name, subresource)
    if request.method == "PATCH":
        return await server.patch(request, store, ns, name, subresource)
    raise errors.method_not_allowed("the server does not allow this method on the requested resource")


async def finalize(server: "APIServer", request: web.Request, store: RESTStore, ns: str | None,
                   name: str) -> web.StreamResponse:
    if request.method != "PUT":
        raise errors.method_not_allowed("the server does not allow this method on the requested resource")
    return await rest.update(server, request, store, ns, name, "finalize")


# -- scale ----------------------------------------------------------------------
def to_scale(obj: Obj) -> Obj:
    m = obj["metadata"]
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    sel = spec.get("selector")
    if isinstance(sel, dict) and obj.get("kind") == "ReplicationController":  # a plain label map
        selector = ",".join(f"{k}={v}" for k, v in sorted(sel.items()))  # labels.SelectorFromSet
    else:
        selector = selectors.to_string(sel) if isinstance(sel, dict) else ""
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: m[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in m},
            "spec": {"replicas": spec.get("replicas", 0)},
            "status": {"replicas": st.get("replicas", 0),
                       "selector": selector}}


async def scale(server: "APIServer", request: web.Request, store: RESTStore, ns: str | None,
                name: str) -> web.StreamResponse:
    if request.method == "GET":
        sc = to_scale(await store.get(ns, name))
        if rest.wants_table(request):
            return rest.json_response(tables.table(
                tables.printer_for("autoscaling", "Scale"), [sc], include_object=request.query.get(
                    "includeObject", "Metadata"), list_meta={"resourceVersion": sc["metadata"]["resourceVersion"]}))
        return rest.json_response(sc)
    if request.method not in ("PUT", "PATCH"):
        raise errors.method_not_allowed("the server does not allow this method on the requested resource")
    if request.method == "PUT":
        body = await rest.read_body(request)

        def new_scale(cur: Obj) -> Obj:
            return body
    else:
        raw = await request.read()
        ctype = (request.headers.get("Content-Type") or "").split(";")[0]

        def new_scale(cur: Obj) -> Obj:
            return server.apply_patch(ctype, raw, to_scale(cur), "io.k8s.api.autoscaling.v1.Scale")

    def make(cur: Obj | None) -> Obj:
        if cur is None:
            raise errors.not_found(store.info.group, store.info.plural, name)
        sc = new_scale(copy.deepcopy(cur))
        if not isinstance(sc, dict):
            raise errors.bad_request("invalid Scale object")
        replicas = (sc.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or replicas < 0:
            raise errors.invalid("autoscaling", "Scale", name, [errors.cause(
                "spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")])
        want_rv = (sc.get("metadata") or {}).get("resourceVersion")
        if request.method == "PUT" and want_rv and want_rv != cur["metadata"]["resourceVersion"]:
            raise errors.conflict(store.info.group, store.info.plural, name, errors.OPTIMISTIC_LOCK)
        cur["spec"]["replicas"] = replicas
        cur["metadata"].pop("resourceVersion", None)
        return cur

    # `kubectl scale --dry-run=server` sends dryRun=All to /scale: nothing is written
    obj, _ = await store.update(ns, name, make, dry_run=rest.dry_run(request))
    return rest.json_response(to_scale(obj))


# -- binding ----------------------------------------------------------------------
async def binding(server: "APIServer", request: web.Request, store: RESTStore, ns: str | None,
                  name: str, body: Any = None) -> web.StreamResponse:
    if request.method != "POST":
        raise errors.method_not_allowed("the server does not allow this method on the requested resource")
    if body is None:
        body = await rest.read_body(request)
    if not isinstance(body, dict):
        raise errors.bad_request("the object provided is not a valid Binding")
    if ((body.get("metadata") or {}).get("name") or name) != name:
        raise errors.bad_request("name in URL does not match name in Binding object")
    target = body.get("target") or {}
    node = target.get("name")
    if not node:
        raise errors.invalid("", "Binding", name, [errors.required("target.name")])
    if target.get("kind") not in (None, "", "Node"):  # ValidatePodBinding
        raise errors.invalid("", "Binding", name, [errors.cause(
            "target.kind", f"Invalid value: \"{target['kind']}\": must be empty or 'Node'")])

    def make(cur: Obj | None) -> Obj:
        if cur is None:
            raise errors.not_found("", "pods", name)
        if meta.is_deleting(cur):
            raise errors.conflict("", "pods", name, "pod is being deleted, cannot be assigned to a host")
        have = cur["spec"].get("nodeName")
        if have:
            raise errors.conflict("", "pods/binding", name, f'pod {name} is already assigned to node "{have}"')
        cur["spec"]["nodeName"] = node
        conds = cur.setdefault("status", {}).setdefault("conditions", [])
        conds[:] = [c for c in conds if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                      "lastTransitionTime": meta.now()})
        cur["metadata"].pop("resourceVersion", None)
        return cur

    # binding writes spec.nodeName and status together, bypassing the pod's update rules
    await store.update(ns, name, make, subresource="binding")
    return rest.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                               "code": 201}, 201)


async def legacy_binding(server: "APIServer", request: web.Request, ns: str | None) -> web.StreamResponse:
    """POST /api/v1/namespaces/<ns>/bindings (LegacyBindingREST): the pod is the Binding's name."""
    body = await rest.read_body(request)
    name = (body.get("metadata") or {}).get("name") if isinstance(body, dict) else None
    if not name:
        raise errors.bad_request("Name parameter required.")  # the pod store's key function
    info = server.registry.get("", "v1", "pods")
    assert info is not None
    return await binding(server, request, server.store_for(info), ns, name, body)


# -- log ----------------------------------------------------------------------------
async def log(server: "APIServer", request: web.Request, store: RESTStore, ns: str | None,
              name: str) -> web.StreamResponse:
    """Proxy to the node agent's /containerLogs, as the apiserver proxies to the kubelet."""
    pod = await store.get(ns, name)
    q = dict(request.query)
    containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    inits = [c["name"] for c in (pod.get("spec") or {}).get("initContainers") or []]
    container = q.pop("container", None)
    if not container:
        if len(containers) != 1:
            raise errors.bad_request(f"a container name must be specified for pod {name}, choose one of: "
                                     f"[{' '.join(containers)}]" +
                                     (f" or one of the init containers: [{' '.join(inits)}]" if inits else ""))
        container = containers[0]
    elif container not in containers + inits + [c["name"] for c in pod["spec"].get("ephemeralContainers") or []]:
        raise errors.bad_request(f"container {container} is not valid for pod {name}")
    node_name = pod["spec"].get("nodeName")
    if not node_name:
        raise errors.bad_request(f'pod {name} does not have a host assigned')
    url = await server.node_url(node_name)
    target = f"{url}/containerLogs/{ns}/{name}/{container}"
    session = server.node_session()
    try:
        async with session.get(target, params=q, timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
                               headers=server.node_headers()) as up:
            if up.status >= 400:
                text = (await up.read()).decode(errors="replace")
                # the agent answers with the kubelet's wording ("... is waiting to start: ...")
                code = up.status if up.status in (400, 404) else 500
                raise errors.StatusError(code, {400: "BadRequest", 404: "NotFound"}.get(code, "InternalError"),
                                         text.strip())
            resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp
    except aiohttp.ClientError as e:
        raise errors.StatusError(500, "InternalError",
                                 f"Get \"{target}\": {e}") from None


# -- eviction -----------------------------------------------------------------------
PDB_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."


def _too_many(message: str, cause: str) -> errors.StatusError:
    return errors.StatusError(429, "TooManyRequests", message,
                              details={"causes": [{"reason": "DisruptionBudget", "message": cause}]})


async def eviction(server: "APIServer", request: web.Request, store: RESTStore, ns: str | None,
                   name: str) -> web.StreamResponse:
    """POST pods/<name>/eviction (policy/v1 Eviction), as upstream's EvictionREST:
    the pod is deleted with the eviction's deleteOptions unless a
    PodDisruptionBudget forbids it (429 TooManyRequests). PDBs are checked only
    when the policy/v1 poddisruptionbudgets kind is served and a disruption
    controller keeps their status."""
    if request.method != "POST":
        raise errors.method_not_allowed("the server does not allow this method on the requested resource")
    body = await rest.read_body(request)
    if not isinstance(body, dict):
        raise errors.bad_request("invalid Eviction object")
    if (body.get("metadata") or {}).get("name") not in (None, "", name):
        raise errors.bad_request("name in URL does not match name in Eviction object")
    options = dict(body.get("deleteOptions") or {})
    # kubectl drain --dry-run=server puts dryRun in the Eviction's deleteOptions: the
    # budget is checked, nothing is written and the pod stays
    dry = rest.dry_run(request, options)
    pod = await store.get(ns, name)
    phase = (pod.get("status") or {}).get("phase")
    # terminal, pending and terminating pods are not protected by budgets (canIgnorePDB)
    if phase not in ("Succeeded", "Failed", "Pending") and not meta.is_deleting(pod):
        await _take_disruption(server, ns, pod, dry)
    if not dry:
        await store.update(ns, name, _disruption_target, subresource="status")
    await store.delete(ns, name, options, dry_run=dry)
    return rest.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                               "code": 201}, 201)


def _disruption_target(cur: Obj | None) -> Obj:
    """addConditionAndDeletePod: the evicted pod first gets the DisruptionTarget condition
    (a Job's podFailurePolicy can then ignore the failure: "Pod failure policy" task)."""
    if cur is None:
        raise errors.StatusError(404, "NotFound", "pod not found")
    conds = cur.setdefault("status", {}).setdefault("conditions", [])
    now = meta.now()
    new = {"type": "DisruptionTarget", "status": "True", "lastProbeTime": None, "lastTransitionTime": now,
           "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"}
    for i, c in enumerate(conds):
        if c.get("type") == "DisruptionTarget":
            if c.get("status") == "True":
                new["lastTransitionTime"] = c.get("lastTransitionTime") or now
            conds[i] = new
            break
    else:
        conds.append(new)
    cur["metadata"].pop("resourceVersion", None)
    return cur


async def _take_disruption(server: "APIServer", ns: str | None, pod: Obj, dry_run: bool = False) -> None:
    info = server.registry.get("policy", "v1", "poddisruptionbudgets")
    if info is None:
        return
    pdbs = server.store_for(info)
    labels = pod["metadata"].get("labels") or {}
    # a budget no disruption controller has looked at yet (no observedGeneration at
    # all) is not enforced: kybern may run without that controller
    matching = [p for p in (await pdbs.list(ns, pred=Predicate()))["items"]
                if selectors.selector_matches((p.get("spec") or {}).get("selector"), labels)
                and "observedGeneration" in (p.get("status") or {})]
    if not matching:
        return
    if len(matching) > 1:
        raise errors.StatusError(500, "InternalError", "This pod has more than one PodDisruptionBudget, which "
                                                       "the eviction subresource does not support.")
    pdb_name = matching[0]["metadata"]["name"]
    pod_name = pod["metadata"]["name"]
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in (pod.get("status") or {}).get("conditions") or [])
    if not ready:  # an unhealthy pod does not count towards the budget (unhealthyPodEvictionPolicy)
        spec, st = matching[0].get("spec") or {}, matching[0].get("status") or {}
        if spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow":
            return
        if st.get("currentHealthy", 0) >= st.get("desiredHealthy", 0) > 0:  # IfHealthyBudget: not disrupted
            return

    def take(cur: Obj | None) -> Obj:
        if cur is None:
            raise errors.not_found("policy", "poddisruptionbudgets", pdb_name)
        st = cur.setdefault("status", {})
        if st.get("observedGeneration", 0) < cur["metadata"].get("generation", 1):
            raise _too_many(PDB_MESSAGE, f"The disruption budget {pdb_name} is still being processed by the "
                                         f"server.")
        allowed = st.get("disruptionsAllowed", 0)
        if allowed < 0:
            raise errors.forbidden("pdb disruptions allowed is negative")
        if allowed == 0:
            raise _too_many(PDB_MESSAGE, f"The disruption budget {pdb_name} needs {st.get('desiredHealthy', 0)} "
                                         f"healthy pods and has {st.get('currentHealthy', 0)} currently")
        st["disruptionsAllowed"] = allowed - 1
        st.setdefault("disruptedPods", {})[pod_name] = meta.now()
        cur["metadata"].pop("resourceVersion", None)
        return cur

    await pdbs.update(ns, pdb_name, take, subresource="status", dry_run=dry_run)
