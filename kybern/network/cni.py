"""Calling CNI plugins as a kubelet's runtime does (libcni, reduced).

A network is a *conflist* (name, cniVersion, plugins). ADD runs each plugin in
order, giving every plugin after the first the previous plugin's result as
`prevResult`; DEL runs them in reverse with the result ADD returned (cached on
disk, as libcni caches under /var/lib/cni/results). Each plugin is an
executable found on CNI_PATH, run with:

    CNI_COMMAND=ADD|DEL|CHECK  CNI_CONTAINERID=<sandbox id>  CNI_NETNS=<netns path>
    CNI_IFNAME=eth0            CNI_PATH=/usr/lib/cni         CNI_ARGS=K8S_POD_NAME=...;...

and its network config on stdin; it answers with a JSON result on stdout or a
JSON error (`{"code": N, "msg": ..., "details": ...}`) and a non-zero exit.

Pure helpers (`bridge_conflist`, `plugin_config`, `pod_ip`) are unit tested
without root; `invoke` is the one place a plugin process is started. The
`bridge` plugin (with host-local IPAM) is built in (bridge.py): invoke() runs
it in-process when the config asks for nothing it lacks.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from kybern.network import bridge

CNI_PATH = os.environ.get("KYBERN_CNI_PATH", "/usr/lib/cni:/opt/cni/bin")
CNI_VERSION = "1.0.0"  # Debian's containernetworking-plugins (>= 1.0) speak it


class CNIError(Exception):
    """A plugin failed; `code` and `msg` come from its JSON error when it gave one."""

    def __init__(self, plugin: str, command: str, code: int, msg: str, details: str = "") -> None:
        self.plugin, self.command, self.code, self.msg, self.details = plugin, command, code, msg, details
        super().__init__(f"plugin type=\"{plugin}\" failed ({command.lower()}): {msg}"
                         + (f": {details}" if details else ""))


def find_plugin(kind: str, path: str = CNI_PATH) -> str | None:
    for d in path.split(":"):
        p = os.path.join(d, kind)
        if d and os.access(p, os.X_OK):
            return p
    return None


def plugins_available(kinds: tuple[str, ...] = ("bridge", "host-local", "loopback", "portmap"),
                      path: str = CNI_PATH) -> list[str]:
    """The plugins among `kinds` that are missing (empty: all there)."""
    return [k for k in kinds if find_plugin(k, path) is None]


def bridge_conflist(name: str, bridge: str, subnet: str, gateway: str, ipam_dir: str,
                    mtu: int | None = None) -> dict[str, Any]:
    """The node's pod network: a Linux bridge with the node's gateway address,
    host-local IPAM from the node's podCIDR, and portmap for hostPort. No
    ipMasq: pod-to-pod traffic between nodes must keep its source address; the
    proxy masquerades what leaves the cluster CIDR."""
    br: dict[str, Any] = {
        "type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": False, "hairpinMode": True,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet, "gateway": gateway}]],
                 "routes": [{"dst": "0.0.0.0/0"}], "dataDir": ipam_dir},
    }
    if mtu:
        br["mtu"] = mtu
    return {"cniVersion": CNI_VERSION, "name": name,
            "plugins": [br, {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}]}


LOOPBACK = {"cniVersion": CNI_VERSION, "name": "cni-loopback", "plugins": [{"type": "loopback"}]}


def plugin_config(conflist: dict[str, Any], plugin: dict[str, Any], prev: dict[str, Any] | None,
                  runtime_config: dict[str, Any] | None) -> dict[str, Any]:
    """One plugin's stdin: its own config plus the list's name and version,
    `prevResult`, and `runtimeConfig` restricted to the capabilities it declares
    (libcni's injectRuntimeConfig)."""
    conf = dict(plugin)
    conf["cniVersion"] = conflist["cniVersion"]
    conf["name"] = conflist["name"]
    conf.pop("capabilities", None)
    caps = plugin.get("capabilities") or {}
    rc = {k: v for k, v in (runtime_config or {}).items() if caps.get(k)}
    if rc:
        conf["runtimeConfig"] = rc
    if prev is not None:
        conf["prevResult"] = prev
    return conf


def cni_args(namespace: str, name: str, sandbox_id: str) -> str:
    """The K8S_* CNI_ARGS a kubelet passes (plugins ignore what they don't know)."""
    return (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name};"
            f"K8S_POD_INFRA_CONTAINER_ID={sandbox_id}")


def pod_ip(result: dict[str, Any], ifname: str = "eth0") -> list[str]:
    """The addresses a result gives the pod's interface (0.4.0/1.0.0 result
    format: `ips[].address` with an `interface` index into `interfaces`)."""
    ifaces = result.get("interfaces") or []
    out = []
    for ip in result.get("ips") or []:
        idx = ip.get("interface")
        if idx is not None and 0 <= idx < len(ifaces) and ifaces[idx].get("name") not in (ifname, None):
            continue
        out.append(str(ip["address"]).split("/")[0])
    return out


async def invoke(command: str, plugin: dict[str, Any], *, container_id: str, netns: str,
                 ifname: str = "eth0", args: str = "", path: str = CNI_PATH) -> dict[str, Any]:
    """Run one plugin once; returns its parsed result ({} when it printed none)."""
    kind = plugin["type"]
    if kind == "bridge" and bridge.ENABLED and bridge.supports(plugin):  # built in (bridge.py)
        try:
            return await bridge.run(command, plugin, container_id=container_id, netns=netns, ifname=ifname)
        except bridge.PluginError as e:
            raise CNIError(kind, command, e.code, e.msg) from e
    exe = find_plugin(kind, path)
    if exe is None:
        raise CNIError(kind, command, 1, f"failed to find plugin \"{kind}\" in path [{path}]")
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
           "CNI_IFNAME": ifname, "CNI_PATH": path, "CNI_ARGS": args,
           "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    proc = await asyncio.create_subprocess_exec(exe, env=env, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(json.dumps(plugin).encode())
    if proc.returncode != 0:
        try:
            e = json.loads(out or b"{}")
        except ValueError:
            e = {}
        raise CNIError(kind, command, int(e.get("code") or proc.returncode or 1),
                       e.get("msg") or err.decode(errors="replace").strip() or "failed",
                       e.get("details") or "")
    try:
        return json.loads(out) if out.strip() else {}
    except ValueError as e:
        raise CNIError(kind, command, 999, f"unparsable result: {out[:200]!r}") from e


async def add(conflist: dict[str, Any], *, container_id: str, netns: str, ifname: str = "eth0",
              args: str = "", runtime_config: dict[str, Any] | None = None,
              path: str = CNI_PATH) -> dict[str, Any]:
    """CNI ADD of a whole list; returns the final result (to keep for DEL)."""
    prev: dict[str, Any] | None = None
    for p in conflist["plugins"]:
        res = await invoke("ADD", plugin_config(conflist, p, prev, runtime_config), container_id=container_id,
                           netns=netns, ifname=ifname, args=args, path=path)
        prev = res or prev
    return prev or {}


async def delete(conflist: dict[str, Any], *, container_id: str, netns: str, ifname: str = "eth0",
                 args: str = "", prev: dict[str, Any] | None = None,
                 runtime_config: dict[str, Any] | None = None, path: str = CNI_PATH) -> list[CNIError]:
    """CNI DEL of a whole list, in reverse order. Every plugin is called even if
    one fails (DEL must release what it can); the failures are returned."""
    failed = []
    for p in reversed(conflist["plugins"]):
        try:
            await invoke("DEL", plugin_config(conflist, p, prev, runtime_config), container_id=container_id,
                         netns=netns, ifname=ifname, args=args, path=path)
        except CNIError as e:
            failed.append(e)
    return failed
