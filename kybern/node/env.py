"""A container's environment, as the kubelet builds it: envFrom first, then env
(later names override earlier ones), values may reference earlier variables with
$(VAR), and command/args are expanded against the result.

Service links: as upstream, every Service of the pod's namespace with a cluster
IP (when `enableServiceLinks`, the default) and the `kubernetes` Service of the
default namespace (always) become `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT`,
`<NAME>_SERVICE_PORT_<PORTNAME>` and docker-link style `<NAME>_PORT`,
`<NAME>_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR]`. They may be referenced with
$(VAR) and are added after the container's own variables (which win). Services
are read from a cache the agent keeps by watching them (the kubelet's service
lister), so, as upstream, a Service created a moment before the pod may be missing.

ConfigMaps and Secrets are read from the API when the container is created. A
missing object or key that is not `optional` is a CreateContainerConfigError
with upstream's message (`configmap "x" not found`, `couldn't find key k in
ConfigMap ns/x`); the pod worker retries later.
"""

from __future__ import annotations

import asyncio
import base64
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from kybern.client.http import Client
from kybern.client.informer import Informer
from kybern.client.resources import CONFIGMAPS, SECRETS, SERVICES
from kybern.machinery import errors
from kybern.node.quantity import parse_quantity

# 1.32's kubelet (RelaxedEnvironmentVariableValidation, beta and on): any printable
# ASCII character but "=" (a ConfigMap key "1st" becomes the variable "1st")
_ENV_NAME = re.compile(r"^[\x20-\x3c\x3e-\x7e]+$")


class ConfigError(Exception):
    """The container cannot be configured (CreateContainerConfigError)."""


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Expand $(VAR) references as k8s.io/kubernetes/third_party/forked/golang/expansion:
    `$$` is a literal `$`, unknown variables stay as written."""
    out: list[str] = []
    i, n = 0, len(text)
    checkpoint = 0
    while i < n:
        if text[i] == "$" and i + 1 < n:
            out.append(text[checkpoint:i])
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                advance = 1
            elif nxt == "(":
                close = text.find(")", i + 2)
                if close < 0:
                    out.append("$(")
                    advance = 1
                else:
                    name = text[i + 2:close]
                    val = lookup(name)
                    out.append(val if val is not None else f"$({name})")
                    advance = close - i
            else:
                out.append("$" + nxt)
                advance = 1
            i += advance
            checkpoint = i + 1
        i += 1
    out.append(text[checkpoint:])
    return "".join(out)


def expand_command(container: dict[str, Any], env: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    values = dict(env)
    look = values.get
    return ([expand(c, look) for c in container.get("command") or []],
            [expand(a, look) for a in container.get("args") or []])


class EnvResolver:
    """Builds env lists for the containers of pods on one node."""

    sync_timeout = 10.0  # how long a container start waits for the first list of Services

    def __init__(self, client: Client, node_allocatable: Mapping[str, str] | None = None) -> None:
        self.client = client
        self.node_allocatable = dict(node_allocatable or {})
        # Services come from a watch-backed cache, as the kubelet's service lister: two
        # requests per container start saved (and, as upstream, a Service created a moment
        # before the pod may be missing from its environment)
        self._services: Informer | None = None

    async def stop(self) -> None:
        if self._services is not None:
            await self._services.stop()
            self._services = None

    def start(self) -> None:
        """Start reading Services now (the kubelet's service lister starts with it),
        so the first container starts do not wait for the list."""
        if self._services is None and self.client is not None:
            self._services = Informer(self.client, SERVICES)
            self._services.start()

    async def _service_cache(self) -> Informer:
        self.start()
        assert self._services is not None
        if self._services.synced.is_set():
            return self._services
        try:
            await asyncio.wait_for(asyncio.shield(self._services.synced.wait()), self.sync_timeout)
        except TimeoutError:
            raise ConfigError("services have not yet been read at least once, cannot construct envvars") from None
        return self._services

    async def resolve(self, pod: dict[str, Any], container: dict[str, Any]) -> list[tuple[str, str]]:
        ns = pod["metadata"].get("namespace", "default")
        cache: dict[tuple[str, str], dict[str, str] | None] = {}
        result: dict[str, str] = {}

        for src in container.get("envFrom") or []:
            prefix = src.get("prefix", "")
            if "configMapRef" in src:
                ref, kind = src["configMapRef"], "configmap"
            elif "secretRef" in src:
                ref, kind = src["secretRef"], "secret"
            else:
                continue
            data = await self._data(cache, kind, ns, ref.get("name", ""))
            if data is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind} "{ref.get("name", "")}" not found')
            for k, v in data.items():
                name = prefix + k
                if _ENV_NAME.match(name):  # upstream skips invalid names (with an event)
                    result[name] = v

        services = await self.service_env(pod)

        def lookup(name: str) -> str | None:
            return result.get(name, services.get(name))

        for var in container.get("env") or []:
            name = var["name"]
            if "valueFrom" not in var:
                result[name] = expand(var.get("value", ""), lookup)
                continue
            value = await self._value_from(cache, pod, container, ns, var["valueFrom"])
            if value is None:
                continue  # optional and absent: the variable is not set
            result[name] = value
        for k, v in services.items():
            result.setdefault(k, v)
        return list(result.items())

    async def service_env(self, pod: dict[str, Any]) -> dict[str, str]:
        """The Service environment variables of pkg/kubelet/envvars (sorted)."""
        ns = pod["metadata"].get("namespace", "default")
        found: dict[str, dict[str, Any]] = {}
        if self.client is None:  # resolving offline: nothing to link
            return {}
        services = await self._service_cache()
        master = services.get("default/kubernetes")
        if master is not None:
            found["kubernetes"] = master
        if pod.get("spec", {}).get("enableServiceLinks", True) is not False:
            for svc in services.list(ns):
                found[svc["metadata"]["name"]] = svc  # the namespace's own win over `kubernetes`
        out: dict[str, str] = {}
        for name in sorted(found):
            out.update(service_vars(name, found[name].get("spec") or {}))
        return out

    async def _value_from(self, cache: dict[tuple[str, str], dict[str, str] | None], pod: dict[str, Any],
                          container: dict[str, Any], ns: str, vf: dict[str, Any]) -> str | None:
        for field, kind, label in (("configMapKeyRef", "configmap", "ConfigMap"),
                                   ("secretKeyRef", "secret", "Secret")):
            if field in vf:
                ref = vf[field]
                name, key = ref.get("name", ""), ref.get("key", "")
                data = await self._data(cache, kind, ns, name)
                if data is None:
                    if ref.get("optional"):
                        return None
                    raise ConfigError(f'{kind} "{name}" not found')
                if key not in data:
                    if ref.get("optional"):
                        return None
                    raise ConfigError(f"couldn't find key {key} in {label} {ns}/{name}")
                return data[key]
        if "fieldRef" in vf:
            return field_value(pod, vf["fieldRef"].get("fieldPath", ""))
        if "resourceFieldRef" in vf:
            return self.resource_value(pod, container, vf["resourceFieldRef"])
        return ""

    async def _data(self, cache: dict[tuple[str, str], dict[str, str] | None], kind: str, ns: str,
                    name: str) -> dict[str, str] | None:
        key = (kind, name)
        if key not in cache:
            try:
                obj = await self.client.get(CONFIGMAPS if kind == "configmap" else SECRETS, name, ns)
            except errors.StatusError as e:
                if e.code == 404:
                    cache[key] = None
                    return None
                raise
            if kind == "secret":
                cache[key] = {k: base64.b64decode(v).decode(errors="replace")
                              for k, v in (obj.get("data") or {}).items()}
                cache[key].update(obj.get("stringData") or {})
            else:
                data = dict(obj.get("data") or {})
                for k, v in (obj.get("binaryData") or {}).items():
                    data[k] = base64.b64decode(v).decode(errors="replace")
                cache[key] = data
        return cache[key]

    def resource_value(self, pod: dict[str, Any], container: dict[str, Any], ref: dict[str, Any]) -> str:
        cname = ref.get("containerName") or container.get("name")
        target = next((c for c in (pod["spec"].get("containers") or []) + (pod["spec"].get("initContainers") or [])
                       if c.get("name") == cname), container)
        resource = ref.get("resource", "")
        section, _, rname = resource.partition(".")
        res = target.get("resources") or {}
        value = (res.get(section) or {}).get(rname)
        if value is None and section == "requests":
            value = (res.get("limits") or {}).get(rname)
        if value is None:
            # upstream: an unset limit reads as the node's allocatable
            value = self.node_allocatable.get(rname, "0") if section == "limits" else "0"
        # the API shows an unset divisor as "0" (a zero Quantity); the kubelet reads zero as 1
        divisor = parse_quantity(ref.get("divisor") or "0") or Decimal(1)
        q = parse_quantity(value)
        # convertResourceCPUToString / ...MemoryToString: MilliValue()s for cpu, Value()s
        # otherwise (each rounded up), then the quotient rounded up
        scale = 1000 if rname == "cpu" else 1
        num, den = math.ceil(q * scale), math.ceil(divisor * scale)
        return str(-(-num // den))


def service_vars(name: str, spec: dict[str, Any]) -> dict[str, str]:
    """envvars.FromServices for one Service (none without a cluster IP)."""
    ip = spec.get("clusterIP") or ""
    ports = spec.get("ports") or []
    if ip in ("", "None") or not ports:
        return {}
    prefix = name.upper().replace("-", "_")
    out = {f"{prefix}_SERVICE_HOST": ip, f"{prefix}_SERVICE_PORT": str(ports[0].get("port"))}
    for p in ports:
        if p.get("name"):
            out[f"{prefix}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(p.get("port"))
    host = f"[{ip}]" if ":" in ip else ip
    for i, p in enumerate(ports):
        proto = (p.get("protocol") or "TCP")
        url = f"{proto.lower()}://{host}:{p.get('port')}"
        if i == 0:
            out[f"{prefix}_PORT"] = url  # docker special-cases the first port
        pp = f"{prefix}_PORT_{p.get('port')}_{proto.upper()}"
        out.update({pp: url, f"{pp}_PROTO": proto.lower(), f"{pp}_PORT": str(p.get("port")), f"{pp}_ADDR": ip})
    return out


def field_value(pod: dict[str, Any], path: str) -> str:
    """The downward API's fieldRef values."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    m = re.match(r"^metadata\.(labels|annotations)\['(.+)'\]$", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"), "status.podIP": status.get("podIP"),
        "status.hostIPs": ",".join(i["ip"] for i in status.get("hostIPs") or []),
        "status.podIPs": ",".join(i["ip"] for i in status.get("podIPs") or []),
    }
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    return str(simple.get(path) or "")
