"""The parts of upstream's ValidatePodSpec (pkg/apis/core/validation, release-1.32)
that concern volumes, what containers mount and read from their environment, probes
and lifecycle hooks, security contexts and the DNS config, so that a manifest the
kubelet could never run is refused at the API with upstream's field paths, error
types and messages instead of being stored and failing later on the node.

Feature gates are as 1.32 ships them: relaxed environment variable names (beta, on),
strict DNS search domains (RelaxedDNSSearchValidation alpha, off), no zero-second
sleep hook (alpha, off); `procMount` is not checked because ProcMountType is off
in 1.32, where the apiserver drops the field instead."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from kybern.api.strategy import (DNS1123_SUBDOMAIN, _go_strings, qualified_name_errors, validate_dns_label,
                                 validate_dns_subdomain)
from kybern.machinery import errors, quantity

Cause = dict[str, str]

FILE_MODE_MSG = "must be a number between 0 and 0777 (octal), both inclusive"
NEGATIVE_MSG = "must be greater than or equal to 0"
MAX_ID = 2**31 - 1  # 1.32's IsValidUserID/IsValidGroupID (libcontainer's int32 limit)

# validateVolumeSource's order: the first source present counts, each later one is
# "more than 1 volume type". Two Forbidden paths carry upstream's own spelling
# ("cephFS", "downwarAPI"), kept so the message matches kube-apiserver's.
VOLUME_SOURCES = (("emptyDir", "emptyDir"), ("hostPath", "hostPath"), ("gitRepo", "gitRepo"),
                  ("gcePersistentDisk", "gcePersistentDisk"), ("awsElasticBlockStore", "awsElasticBlockStore"),
                  ("secret", "secret"), ("nfs", "nfs"), ("iscsi", "iscsi"), ("glusterfs", "glusterfs"),
                  ("flocker", "flocker"), ("persistentVolumeClaim", "persistentVolumeClaim"), ("rbd", "rbd"),
                  ("cinder", "cinder"), ("cephfs", "cephFS"), ("quobyte", "quobyte"),
                  ("downwardAPI", "downwarAPI"), ("fc", "fc"), ("flexVolume", "flexVolume"),
                  ("configMap", "configMap"), ("azureFile", "azureFile"), ("vsphereVolume", "vsphereVolume"),
                  ("photonPersistentDisk", "photonPersistentDisk"), ("portworxVolume", "portworxVolume"),
                  ("azureDisk", "azureDisk"), ("storageos", "storageos"), ("projected", "projected"),
                  ("scaleIO", "scaleIO"), ("csi", "csi"), ("ephemeral", "ephemeral"), ("image", "image"))
HOST_PATH_TYPES = ("", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate",
                   "Socket")
MOUNT_PROPAGATIONS = ("Bidirectional", "HostToContainer", "None")
RECURSIVE_READ_ONLY = ("Disabled", "Enabled", "IfPossible")
ENV_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                   "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs")
VOLUME_FIELD_PATHS = ("metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace",
                      "metadata.uid")
# podshelper.ConvertDownwardAPIFieldLabel: what a v1 fieldRef may name at all
_CONVERTIBLE = {"metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid",
                "spec.nodeName", "spec.restartPolicy", "spec.serviceAccountName", "spec.schedulerName",
                "status.phase", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs", "spec.host"}
RESOURCE_FIELDS = ("limits.cpu", "limits.ephemeral-storage", "limits.memory", "requests.cpu",
                   "requests.ephemeral-storage", "requests.memory")
_MEMORY_DIVISORS = ("1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei")
_DIVISOR_MSG = "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the "
TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
HTTP_SCHEMES = ("HTTP", "HTTPS")
SECCOMP_TYPES = ("Localhost", "RuntimeDefault", "Unconfined")
FS_GROUP_CHANGE_POLICIES = ("Always", "OnRootMismatch")
_SYSCTL_RE = r"^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$"
_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc", "sleep")
_IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"


# -- field.Error, as kube-apiserver prints it --------------------------------------

def _shown(value: Any) -> str:
    """field.Error's rendering of a bad value (1.32: Go's %q, %v or %#v): strings quoted,
    numbers and booleans bare, a string list as `[]string{"a", "b"}`. Structs, which
    upstream prints as Go values with pointer addresses, are shown as JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return _go_strings(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def invalid(field: str, value: Any, detail: str) -> Cause:
    return errors.cause(field, f"Invalid value: {_shown(value)}: {detail}")


def required(field: str, detail: str = "") -> Cause:
    return errors.cause(field, "Required value" + (f": {detail}" if detail else ""), "FieldValueRequired")


def forbidden(field: str, detail: str) -> Cause:
    return errors.cause(field, f"Forbidden: {detail}", "FieldValueForbidden")


def not_supported(field: str, value: Any, supported: tuple[str, ...]) -> Cause:
    return errors.cause(field, f"Unsupported value: {_shown(value)}: supported values: "
                        + ", ".join(f'"{v}"' for v in supported), "FieldValueNotSupported")


def duplicate(field: str, value: Any) -> Cause:
    return errors.cause(field, f"Duplicate value: {_shown(value)}", "FieldValueDuplicate")


def not_found(field: str, value: Any) -> Cause:
    return errors.cause(field, f"Not found: {_shown(value)}", "FieldValueNotFound")


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- paths ---------------------------------------------------------------------------

def _path_no_backsteps(target: str, field: str) -> list[Cause]:
    if ".." in target.replace("\\", "/").split("/"):
        return [invalid(field, target, "must not contain '..'")]
    return []


def local_descending_path(target: str, field: str) -> list[Cause]:
    """validateLocalDescendingPath: relative, no `..` element."""
    out = [invalid(field, target, "must be a relative path")] if target.startswith("/") else []
    return out + _path_no_backsteps(target, field)


def local_non_reserved_path(target: str, field: str) -> list[Cause]:
    """ValidateLocalNonReservedPath: as above, and not starting with `..`."""
    out = local_descending_path(target, field)
    if target.startswith("..") and not target.startswith("../"):
        out.append(invalid(field, target, "must not start with '..'"))
    return out


def _file_mode(value: Any, field: str) -> list[Cause]:
    mode = _int(value)
    return [invalid(field, mode, FILE_MODE_MSG)] if mode is not None and not 0 <= mode <= 0o777 else []


def _key_to_path(kp: Any, field: str) -> list[Cause]:
    kp = _d(kp)
    out = [] if kp.get("key") else [required(f"{field}.key")]
    path = kp.get("path") if isinstance(kp.get("path"), str) else ""
    if not path:
        out.append(required(f"{field}.path"))
    out += local_non_reserved_path(path, f"{field}.path")
    return out + _file_mode(kp.get("mode"), f"{field}.mode")


def _subdomain_msgs(name: str, *, prefix: bool = False) -> list[str]:
    """NameIsDNSSubdomain's complaints (a generateName prefix may end in '-')."""
    if prefix and name.endswith("-"):
        name = name[:-1] + "a"
    return [c["message"].split(": ", 2)[-1] for c in validate_dns_subdomain(name, "")]


# -- volumes -------------------------------------------------------------------------

def validate_volumes(volumes: Any, path: str) -> tuple[dict[str, dict[str, Any]], list[Cause]]:
    """ValidateVolumes: the valid volumes by name (what mounts may name) and the causes.
    A volume with any error is left out of the map, so its mounts are "Not found"."""
    out: list[Cause] = []
    valid: dict[str, dict[str, Any]] = {}
    for i, vol in enumerate(_l(volumes)):
        vol = _d(vol)
        p = f"{path}[{i}]"
        name = vol.get("name") if isinstance(vol.get("name"), str) else ""
        el = _volume_source(vol, p, name)
        el += validate_dns_label(name, f"{p}.name") if name else [required(f"{p}.name")]
        if name in valid:
            el.append(duplicate(f"{p}.name", name))
        if el:
            out += el
        else:
            valid[name] = vol
    return valid, out


def _volume_source(vol: dict[str, Any], path: str, name: str) -> list[Cause]:
    out: list[Cause] = []
    count = 0
    for key, shown in VOLUME_SOURCES:
        src = vol.get(key)
        if src is None:
            continue
        if count:
            out.append(forbidden(f"{path}.{shown}", "may not specify more than 1 volume type"))
            continue
        count += 1
        out += _SOURCE_CHECKS.get(key, lambda s, p: [])(_d(src), f"{path}.{key}")
    if not count:
        out.append(required(path, "must specify a volume type"))
    return out


def _empty_dir(src: dict[str, Any], path: str) -> list[Cause]:
    limit = src.get("sizeLimit")
    try:
        negative = limit is not None and quantity.value(limit) < 0
    except (ValueError, ArithmeticError):
        negative = False  # a malformed quantity is the decoder's error
    return [forbidden(f"{path}.sizeLimit", "SizeLimit field must be a valid resource quantity")] if negative else []


def _host_path(src: dict[str, Any], path: str) -> list[Cause]:
    hp = src.get("path") if isinstance(src.get("path"), str) else ""
    if not hp:
        return [required(f"{path}.path")]
    out = _path_no_backsteps(hp, f"{path}.path")
    kind = src.get("type")
    if kind is not None and kind not in HOST_PATH_TYPES:
        out.append(not_supported(f"{path}.type", kind, HOST_PATH_TYPES))
    return out


def _named_with_items(name_key: str) -> Any:
    def check(src: dict[str, Any], path: str) -> list[Cause]:
        out = [] if src.get(name_key) else [required(f"{path}.{name_key}")]
        out += _file_mode(src.get("defaultMode"), f"{path}.defaultMode")
        for i, kp in enumerate(_l(src.get("items"))):
            out += _key_to_path(kp, f"{path}.items[{i}]")
        return out
    return check


def _claim(src: dict[str, Any], path: str) -> list[Cause]:
    return [] if src.get("claimName") else [required(f"{path}.claimName")]


def _nfs(src: dict[str, Any], path: str) -> list[Cause]:
    out = [] if src.get("server") else [required(f"{path}.server")]
    p = src.get("path") if isinstance(src.get("path"), str) else ""
    if not p:
        out.append(required(f"{path}.path"))
    if not p.startswith("/"):
        out.append(invalid(f"{path}.path", p, "must be an absolute path"))
    return out


def _csi(src: dict[str, Any], path: str) -> list[Cause]:
    driver = src.get("driver") if isinstance(src.get("driver"), str) else ""
    out = [] if driver else [required(f"{path}.driver")]
    if len(driver) > 63:
        out.append(errors.cause(f"{path}.driver", "Too long: may not be more than 63 bytes", "FieldValueTooLong"))
    out += [invalid(f"{path}.driver", driver, m) for m in _subdomain_msgs(driver.lower())]
    return out


def _ephemeral(src: dict[str, Any], path: str) -> list[Cause]:
    return [] if src.get("volumeClaimTemplate") is not None else [required(f"{path}.volumeClaimTemplate")]


def _downward_file(item: Any, path: str) -> list[Cause]:
    """validateDownwardAPIVolumeFile; `path` is the volume's (upstream reports items there)."""
    item = _d(item)
    p = item.get("path") if isinstance(item.get("path"), str) else ""
    out = [] if p else [required(f"{path}.path")]
    out += local_non_reserved_path(p, f"{path}.path")
    if item.get("fieldRef") is not None:
        out += _field_selector(_d(item["fieldRef"]), VOLUME_FIELD_PATHS, f"{path}.fieldRef")
        if item.get("resourceFieldRef") is not None:
            out.append(invalid(path, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously"))
    elif item.get("resourceFieldRef") is not None:
        out += _resource_selector(_d(item["resourceFieldRef"]), f"{path}.resourceFieldRef", volume=True)
    else:
        out.append(required(path, "one of fieldRef and resourceFieldRef is required"))
    return out + _file_mode(item.get("mode"), f"{path}.mode")


def _downward_api(src: dict[str, Any], path: str) -> list[Cause]:
    out = _file_mode(src.get("defaultMode"), f"{path}.defaultMode")
    for item in _l(src.get("items")):
        out += _downward_file(item, path)
    return out


def _projected(src: dict[str, Any], path: str) -> list[Cause]:
    """validateProjectedVolumeSource and validateProjectionSources."""
    out = _file_mode(src.get("defaultMode"), f"{path}.defaultMode")
    seen: set[str] = set()

    def claim_path(p: str, shown: Any) -> None:
        if p in seen:
            out.append(invalid(path, shown, "conflicting duplicate paths"))
        seen.add(p)
    for i, source in enumerate(_l(src.get("sources"))):
        source = _d(source)
        sp = f"{path}.sources[{i}]"
        n = 0
        for kind in ("secret", "configMap"):
            if source.get(kind) is None:
                continue
            n += 1
            s = _d(source[kind])
            if not s.get("name"):
                out.append(required(f"{sp}.{kind}.name"))
            for j, kp in enumerate(_l(s.get("items"))):
                out.extend(_key_to_path(kp, f"{sp}.{kind}.items[{j}]"))
                if isinstance(_d(kp).get("path"), str) and kp["path"]:
                    claim_path(kp["path"], s.get("name", ""))
        if source.get("downwardAPI") is not None:
            n += 1
            for item in _l(_d(source["downwardAPI"]).get("items")):
                out.extend(_downward_file(item, f"{sp}.downwardAPI"))
                if isinstance(_d(item).get("path"), str) and item["path"]:
                    claim_path(item["path"], item["path"])
        if source.get("serviceAccountToken") is not None:
            n += 1
            tok = _d(source["serviceAccountToken"])
            exp = _int(tok.get("expirationSeconds"))
            tp = f"{sp}.serviceAccountToken.expirationSeconds"
            if exp is not None and exp < 600:
                out.append(invalid(tp, exp, "may not specify a duration less than 10 minutes"))
            if exp is not None and exp > 2**32:
                out.append(invalid(tp, exp, "may not specify a duration larger than 2^32 seconds"))
            tpath = tok.get("path") if isinstance(tok.get("path"), str) else ""
            # upstream reports the token's path at the volume's `projected.path`
            out += local_non_reserved_path(tpath, f"{path}.path") if tpath else [required(f"{path}.path")]
        if source.get("clusterTrustBundle") is not None:
            n += 1
            ctb = _d(source["clusterTrustBundle"])
            cp = ctb.get("path") if isinstance(ctb.get("path"), str) else ""
            if not cp:
                out.append(required(f"{sp}.clusterTrustBundle.path"))
            out += local_non_reserved_path(cp, f"{sp}.clusterTrustBundle.path")
        if n > 1:
            out.append(forbidden(sp, "may not specify more than 1 volume type per source"))
    return out


_SOURCE_CHECKS: dict[str, Any] = {
    "emptyDir": _empty_dir, "hostPath": _host_path, "secret": _named_with_items("secretName"),
    "configMap": _named_with_items("name"), "persistentVolumeClaim": _claim, "nfs": _nfs, "csi": _csi,
    "ephemeral": _ephemeral, "downwardAPI": _downward_api, "projected": _projected,
}


# -- downward API selectors -----------------------------------------------------------

def _field_selector(fs: dict[str, Any], supported: tuple[str, ...], path: str) -> list[Cause]:
    """validateObjectFieldSelector."""
    if not fs.get("apiVersion"):
        return [required(f"{path}.apiVersion")]
    fp = fs.get("fieldPath") if isinstance(fs.get("fieldPath"), str) else ""
    if not fp:
        return [required(f"{path}.fieldPath")]
    sub = re.fullmatch(r"(.+?)\['(.*)'\]", fp)
    if fs["apiVersion"] != "v1":
        return [invalid(f"{path}.fieldPath", fp, f"error converting fieldPath: unsupported pod version: "
                                                  f"{fs['apiVersion']}")]
    if sub:
        base, key = sub.group(1), sub.group(2)
        if base not in ("metadata.annotations", "metadata.labels"):
            return [invalid(f"{path}.fieldPath", fp, f"error converting fieldPath: field label does not support "
                                                      f"subscript: {fp}")]
        key = key.lower() if base == "metadata.annotations" else key
        return [invalid(path, key, m) for m in qualified_name_errors(key)]
    if fp not in _CONVERTIBLE:
        return [invalid(f"{path}.fieldPath", fp, f"error converting fieldPath: field label not supported: {fp}")]
    fp = "spec.nodeName" if fp == "spec.host" else fp
    return [] if fp in supported else [not_supported(f"{path}.fieldPath", fp, supported)]


def _resource_selector(fs: dict[str, Any], path: str, *, volume: bool) -> list[Cause]:
    """validateContainerResourceFieldSelector (hugepages by prefix) and its divisor."""
    res = fs.get("resource") if isinstance(fs.get("resource"), str) else ""
    out: list[Cause] = []
    if volume and not fs.get("containerName"):
        out.append(required(f"{path}.containerName"))
    elif not res:
        out.append(required(f"{path}.resource"))
    elif res not in RESOURCE_FIELDS and not res.startswith(("limits.hugepages-", "requests.hugepages-")):
        out.append(not_supported(f"{path}.resource", res, RESOURCE_FIELDS))
    divisor = fs.get("divisor")
    try:
        if divisor is None or quantity.value(divisor) == 0:
            return out
        shown = quantity.canonical(divisor)
    except (ValueError, ArithmeticError):
        return out
    if res in ("limits.cpu", "requests.cpu") and shown not in ("1m", "1"):
        out.append(invalid(f"{path}.divisor", res, "only divisor's values 1m and 1 are supported with the cpu "
                                                   "resource"))
    for names, what in ((("limits.memory", "requests.memory"), "memory resource"),
                        (("limits.ephemeral-storage", "requests.ephemeral-storage"), "local ephemeral storage "
                                                                                     "resource")):
        if res in names and shown not in _MEMORY_DIVISORS:
            out.append(invalid(f"{path}.divisor", res, _DIVISOR_MSG + what))
    if res.startswith(("limits.hugepages-", "requests.hugepages-")) and shown not in _MEMORY_DIVISORS:
        out.append(invalid(f"{path}.divisor", res, _DIVISOR_MSG + "hugepages resource"))
    return out


# -- env -------------------------------------------------------------------------------

def _env_name_msgs(name: str) -> list[str]:
    """IsRelaxedEnvVarName (RelaxedEnvironmentVariableValidation, on in 1.32)."""
    if re.fullmatch(r"[\x20-\x3c\x3e-\x7e]*", name):
        return []
    return ["a valid environment variable name must consist only of printable ASCII characters other than '='"]


def _config_key(key: str) -> list[str]:
    """IsConfigMapKey."""
    out = ["must be no more than 253 characters"] if len(key) > 253 else []
    if not re.fullmatch(r"[-._a-zA-Z0-9]+", key):
        out.append("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name', "
                   " or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")
    if key == ".":
        out.append("must not be '.'")
    elif key == "..":
        out.append("must not be '..'")
    elif key.startswith(".."):
        out.append("must not start with '..'")
    return out


def validate_env(env: Any, path: str) -> list[Cause]:
    """ValidateEnv and validateEnvVarValueFrom."""
    out: list[Cause] = []
    for i, ev in enumerate(_l(env)):
        ev = _d(ev)
        p = f"{path}[{i}]"
        name = ev.get("name") if isinstance(ev.get("name"), str) else ""
        if not name:
            out.append(required(f"{p}.name"))
        out += [invalid(f"{p}.name", name, m) for m in _env_name_msgs(name)]
        vf = ev.get("valueFrom")
        if vf is None:
            continue
        vf, vp = _d(vf), f"{p}.valueFrom"
        n = 0
        if vf.get("fieldRef") is not None:
            n += 1
            out += _field_selector(_d(vf["fieldRef"]), ENV_FIELD_PATHS, f"{vp}.fieldRef")
        if vf.get("resourceFieldRef") is not None:
            n += 1
            out += _resource_selector(_d(vf["resourceFieldRef"]), f"{vp}.resourceFieldRef", volume=False)
        for kind in ("configMapKeyRef", "secretKeyRef"):
            if vf.get(kind) is None:
                continue
            n += 1
            ref = _d(vf[kind])
            rname = ref.get("name") if isinstance(ref.get("name"), str) else ""
            out += [invalid(f"{vp}.{kind}.name", rname, m) for m in _subdomain_msgs(rname)]
            key = ref.get("key") if isinstance(ref.get("key"), str) else ""
            out += [invalid(f"{vp}.{kind}.key", key, m) for m in _config_key(key)] if key \
                else [required(f"{vp}.{kind}.key")]
        if n == 0:
            out.append(invalid(vp, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or "
                                       "`secretKeyRef`"))
        elif ev.get("value"):
            out.append(invalid(vp, "", "may not be specified when `value` is not empty"))
        elif n > 1:
            out.append(invalid(vp, "", "may not have more than one field specified at a time"))
    return out


def validate_env_from(env_from: Any, path: str) -> list[Cause]:
    """ValidateEnvFrom (the "one of" complaints sit on the list, as upstream)."""
    out: list[Cause] = []
    for i, ef in enumerate(_l(env_from)):
        ef = _d(ef)
        p = f"{path}[{i}]"
        prefix = ef.get("prefix") if isinstance(ef.get("prefix"), str) else ""
        if prefix:
            out += [invalid(f"{p}.prefix", prefix, m) for m in _env_name_msgs(prefix)]
        n = 0
        for kind in ("configMapRef", "secretRef"):
            if ef.get(kind) is None:
                continue
            n += 1
            name = _d(ef[kind]).get("name") if isinstance(_d(ef[kind]).get("name"), str) else ""
            out += [invalid(f"{p}.{kind}.name", name, m) for m in _subdomain_msgs(name, prefix=True)] if name \
                else [required(f"{p}.{kind}.name")]
        if n == 0:
            out.append(invalid(path, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif n > 1:
            out.append(invalid(path, "", "may not have more than one field specified at a time"))
    return out


# -- mounts ------------------------------------------------------------------------------

def validate_volume_mounts(c: dict[str, Any], volumes: dict[str, dict[str, Any]], path: str) -> list[Cause]:
    """ValidateVolumeMounts. subPath, subPathExpr and mountPropagation complaints are
    reported on the list's path, not the mount's, as upstream does."""
    out: list[Cause] = []
    devices = {_d(d).get("name"): _d(d).get("devicePath") for d in _l(c.get("volumeDevices"))}
    privileged = _d(c.get("securityContext")).get("privileged") is True
    paths: set[Any] = set()
    for i, m in enumerate(_l(c.get("volumeMounts"))):
        m = _d(m)
        p = f"{path}[{i}]"
        name = m.get("name") if isinstance(m.get("name"), str) else ""
        mp = m.get("mountPath") if isinstance(m.get("mountPath"), str) else ""
        if not name:
            out.append(required(f"{p}.name"))
        if name not in volumes:
            out.append(not_found(f"{p}.name", name))
        if not mp:
            out.append(required(f"{p}.mountPath"))
        if mp in paths:
            out.append(invalid(f"{p}.mountPath", mp, "must be unique"))
        paths.add(mp)
        if name in devices:
            out.append(invalid(f"{p}.name", name, "must not already exist in volumeDevices"))
        if mp in devices.values():
            out.append(invalid(f"{p}.mountPath", mp, "must not already exist as a path in volumeDevices"))
        sub = m.get("subPath") if isinstance(m.get("subPath"), str) else ""
        expr = m.get("subPathExpr") if isinstance(m.get("subPathExpr"), str) else ""
        if volumes.get(name, {}).get("image") is not None:
            if sub:
                out.append(invalid(f"{p}.subPath", sub, "not allowed in image volume sources"))
            if expr:
                out.append(invalid(f"{p}.subPathExpr", expr, "not allowed in image volume sources"))
        if sub:
            out += local_descending_path(sub, f"{path}.subPath")
        if expr:
            if sub:
                out.append(invalid(f"{p}.subPathExpr", expr, "subPathExpr and subPath are mutually exclusive"))
            out += local_descending_path(expr, f"{path}.subPathExpr")
        prop = m.get("mountPropagation")
        if prop is not None:
            if prop not in MOUNT_PROPAGATIONS:
                out.append(not_supported(f"{path}.mountPropagation", prop, MOUNT_PROPAGATIONS))
            if prop == "Bidirectional" and not privileged:
                out.append(forbidden(f"{path}.mountPropagation", "Bidirectional mount propagation is available "
                                                                  "only to privileged containers"))
        rro = m.get("recursiveReadOnly")
        if rro in ("Enabled", "IfPossible"):
            if not m.get("readOnly"):
                out.append(forbidden(f"{path}.recursiveReadOnly", "may only be specified when readOnly is true"))
            if prop not in (None, "None"):
                out.append(forbidden(f"{path}.recursiveReadOnly", "may only be specified when mountPropagation is "
                                                                   "None or not specified"))
        elif rro is not None and rro != "Disabled":
            out.append(not_supported(f"{path}.recursiveReadOnly", rro, RECURSIVE_READ_ONLY))
    return out


def validate_volume_devices(c: dict[str, Any], volumes: dict[str, dict[str, Any]], path: str) -> list[Cause]:
    """ValidateVolumeDevices: block devices come only from claims."""
    out: list[Cause] = []
    mounts = {_d(m).get("name"): _d(m).get("mountPath") for m in _l(c.get("volumeMounts"))}
    names: set[str] = set()
    dpaths: set[str] = set()
    for i, d in enumerate(_l(c.get("volumeDevices"))):
        d = _d(d)
        p = f"{path}[{i}]"
        name = d.get("name") if isinstance(d.get("name"), str) else ""
        dp = d.get("devicePath") if isinstance(d.get("devicePath"), str) else ""
        vol = volumes.get(name)
        if not name:
            out.append(required(f"{p}.name"))
        if name in names:
            out.append(invalid(f"{p}.name", name, "must be unique"))
        if vol is not None and vol.get("persistentVolumeClaim") is None and vol.get("ephemeral") is None:
            out.append(invalid(f"{p}.name", name, "can only use volume source type of PersistentVolumeClaim or "
                                                  "Ephemeral for block mode"))
        if vol is None:
            out.append(not_found(f"{p}.name", name))
        if not dp:
            out.append(required(f"{p}.devicePath"))
        if dp in dpaths:
            out.append(invalid(f"{p}.devicePath", dp, "must be unique"))
        if dp and _path_no_backsteps(dp, ""):
            out.append(invalid(f"{p}.devicePath", dp, "can not contain backsteps ('..')"))
        else:
            dpaths.add(dp)
        if name in mounts:
            out.append(invalid(f"{p}.name", name, "must not already exist in volumeMounts"))
        if dp in mounts.values():
            out.append(invalid(f"{p}.devicePath", dp, "must not already exist as a path in volumeMounts"))
        if name:
            names.add(name)
    return out


# -- probes and hooks --------------------------------------------------------------------

def port_number_causes(value: Any, field: str) -> list[Cause]:
    """validation.IsValidPortNum."""
    if _int(value) is not None and 1 <= value <= 65535:
        return []
    return [invalid(field, value, "must be between 1 and 65535, inclusive")]


def port_name_causes(name: str, field: str) -> list[Cause]:
    """validation.IsValidPortName (an IANA_SVC_NAME), one cause per rule broken."""
    msgs = []
    if len(name) > 15:
        msgs.append("must be no more than 15 characters")
    if not re.fullmatch(r"[-a-z0-9]+", name):
        msgs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search(r"[a-z]", name):
        msgs.append("must contain at least one letter (a-z)")
    if "--" in name:
        msgs.append("must not contain consecutive hyphens")
    if name and (name[0] == "-" or name[-1] == "-"):
        msgs.append("must not begin or end with a hyphen")
    return [invalid(field, name, m) for m in msgs]


def _port_causes(port: Any, path: str) -> list[Cause]:
    """ValidatePortNumOrName: a number is a port, a string an IANA service name."""
    if isinstance(port, str):
        return port_name_causes(port, path)
    return port_number_causes(port if port is not None else 0, path)


def _handler(h: dict[str, Any], grace: int | None, path: str, *, probe: bool) -> list[Cause]:
    """validateHandler: exactly one of exec, httpGet, tcpSocket, grpc (probes), sleep (hooks)."""
    out: list[Cause] = []
    n = 0
    for kind in _HANDLERS:
        if h.get(kind) is None or (kind == "grpc" and not probe) or (kind == "sleep" and probe):
            continue
        if n:
            out.append(forbidden(f"{path}.{kind}", "may not specify more than 1 handler type"))
            continue
        n += 1
        a, ap = _d(h[kind]), f"{path}.{kind}"
        if kind == "exec" and not _l(a.get("command")):
            out.append(required(f"{ap}.command"))
        elif kind == "httpGet":
            if not a.get("path"):
                out.append(required(f"{ap}.path"))
            out += _port_causes(a.get("port"), f"{ap}.port")
            if a.get("scheme") not in HTTP_SCHEMES:
                out.append(not_supported(f"{ap}.scheme", a.get("scheme") or "", HTTP_SCHEMES))
            for hdr in _l(a.get("httpHeaders")):
                hn = _d(hdr).get("name") if isinstance(_d(hdr).get("name"), str) else ""
                if not re.fullmatch(r"[-A-Za-z0-9]+", hn):
                    out.append(invalid(f"{ap}.httpHeaders", hn, "a valid HTTP header must consist of alphanumeric "
                                       "characters or '-' (e.g. 'X-Header-Name', regex used for validation is "
                                       "'[-A-Za-z0-9]+')"))
        elif kind in ("tcpSocket", "grpc"):
            out += _port_causes(a.get("port"), f"{ap}.port")
        elif kind == "sleep":
            secs = _int(a.get("seconds"))
            if grace is not None and secs is not None and not 0 < secs <= grace:
                out.append(invalid(ap, secs, f"must be greater than 0 and less than terminationGracePeriodSeconds "
                                              f"({grace}). Enable AllowPodLifecycleSleepActionZeroValue feature "
                                              f"gate for zero sleep."))
    if not n:
        out.append(required(path, "must specify a handler type"))
    return out


def _probe(pr: Any, kind: str, grace: int | None, path: str) -> list[Cause]:
    if pr is None:
        return []
    pr = _d(pr)
    out = _handler(pr, grace, path, probe=True)
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        v = _int(pr.get(key))
        if v is not None and v < 0:
            out.append(invalid(f"{path}.{key}", v, NEGATIVE_MSG))
    tgps = _int(pr.get("terminationGracePeriodSeconds"))
    if tgps is not None and tgps <= 0:
        out.append(invalid(f"{path}.terminationGracePeriodSeconds", tgps, "must be greater than 0"))
    st = _int(pr.get("successThreshold"))
    if kind in ("livenessProbe", "startupProbe") and st is not None and st != 1:
        out.append(invalid(f"{path}.successThreshold", st, "must be 1"))
    if kind == "readinessProbe" and pr.get("terminationGracePeriodSeconds") is not None:
        out.append(invalid(f"{path}.terminationGracePeriodSeconds", pr["terminationGracePeriodSeconds"],
                           "must not be set for readinessProbes"))
    return out


def _probes_and_hooks(c: dict[str, Any], grace: int | None, path: str) -> list[Cause]:
    out: list[Cause] = []
    lc = c.get("lifecycle")
    if lc is not None:
        for hook in ("postStart", "preStop"):
            if _d(lc).get(hook) is not None:
                out += _handler(_d(lc[hook]), grace, f"{path}.lifecycle.{hook}", probe=False)
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        out += _probe(c.get(kind), kind, grace, f"{path}.{kind}")
    return out


# -- security contexts ---------------------------------------------------------------------

def _id_range(value: Any, path: str) -> list[Cause]:
    v = _int(value)
    if v is None or 0 <= v <= MAX_ID:
        return []
    return [invalid(path, v, f"must be between 0 and {MAX_ID}, inclusive")]


def _seccomp(sp: Any, path: str) -> list[Cause]:
    if sp is None:
        return []
    sp = _d(sp)
    kind = sp.get("type") or ""
    out: list[Cause] = []
    if not kind:
        out.append(required(f"{path}.type", "type is required when seccompProfile is set"))
    elif kind not in SECCOMP_TYPES:
        out.append(not_supported(f"{path}.type", kind, SECCOMP_TYPES))
    lp = sp.get("localhostProfile")
    if kind == "Localhost":
        out += (local_descending_path(lp, f"{path}.localhostProfile") if isinstance(lp, str)
                else [required(f"{path}.localhostProfile", "must be set when seccomp type is Localhost")])
    elif lp is not None:
        # upstream shows the whole profile (Go field names, as it JSON-encodes the internal type)
        out.append(invalid(f"{path}.localhostProfile", {"Type": kind, "LocalhostProfile": lp},
                           "can only be set when seccomp type is Localhost"))
    return out


def _apparmor(ap: Any, path: str) -> list[Cause]:
    """ValidateAppArmorProfileField."""
    if ap is None:
        return []
    ap = _d(ap)
    kind = ap.get("type") or ""
    lp = ap.get("localhostProfile")
    if kind == "Localhost":
        if not isinstance(lp, str):
            return [required(f"{path}.localhostProfile", "must be set when AppArmor type is Localhost")]
        out = []
        if lp.strip() != lp:
            out.append(invalid(f"{path}.localhostProfile", lp, "must not be padded with whitespace"))
        elif not lp:
            out.append(required(f"{path}.localhostProfile", "must be set when AppArmor type is Localhost"))
        if len(lp) > 4095:
            out.append(errors.cause(f"{path}.localhostProfile", "Too long: may not be more than 4095 bytes",
                                    "FieldValueTooLong"))
        return out
    if kind in ("RuntimeDefault", "Unconfined"):
        return [invalid(f"{path}.localhostProfile", lp, "can only be set when AppArmor type is Localhost")] \
            if lp is not None else []
    if not kind:
        return [required(f"{path}.type", "type is required when appArmorProfile is set")]
    return [not_supported(f"{path}.type", kind, SECCOMP_TYPES)]


def _container_security(sc: Any, path: str) -> list[Cause]:
    """ValidateSecurityContext (privileged is allowed: kybern runs as --allow-privileged)."""
    if sc is None:
        return []
    sc = _d(sc)
    out = _id_range(sc.get("runAsUser"), f"{path}.runAsUser") + _id_range(sc.get("runAsGroup"), f"{path}.runAsGroup")
    out += _seccomp(sc.get("seccompProfile"), f"{path}.seccompProfile")
    if sc.get("allowPrivilegeEscalation") is False:
        if sc.get("privileged") is True:
            out.append(invalid(path, _go_security_context(sc), "cannot set `allowPrivilegeEscalation` to false and "
                                                                "`privileged` to true"))
        for cap in _l(_d(sc.get("capabilities")).get("add")):
            if cap == "CAP_SYS_ADMIN":
                out.append(invalid(path, _go_security_context(sc), "cannot set `allowPrivilegeEscalation` to false "
                                                                    "and `capabilities.Add` CAP_SYS_ADMIN"))
    return out + _apparmor(sc.get("appArmorProfile"), f"{path}.appArmorProfile")


def _go_security_context(sc: dict[str, Any]) -> dict[str, Any]:
    """The internal SecurityContext as upstream JSON-encodes it into the message
    (Go field names, every field; nested objects as written)."""
    caps = sc.get("capabilities")
    return {"Capabilities": None if caps is None else {"Add": _d(caps).get("add"), "Drop": _d(caps).get("drop")},
            "Privileged": sc.get("privileged"), "SELinuxOptions": sc.get("seLinuxOptions"),
            "WindowsOptions": sc.get("windowsOptions"), "RunAsUser": sc.get("runAsUser"),
            "RunAsGroup": sc.get("runAsGroup"), "RunAsNonRoot": sc.get("runAsNonRoot"),
            "ReadOnlyRootFilesystem": sc.get("readOnlyRootFilesystem"),
            "AllowPrivilegeEscalation": sc.get("allowPrivilegeEscalation"), "ProcMount": sc.get("procMount"),
            "SeccompProfile": sc.get("seccompProfile"), "AppArmorProfile": sc.get("appArmorProfile")}


def _sysctl_namespace(name: str) -> str:
    """utilsysctl.GetNamespace: which namespace a sysctl belongs to."""
    name = name.replace("/", ".")
    if name.startswith("net."):
        return "net"
    if name == "kernel.sem" or name.startswith(("kernel.shm", "kernel.msg", "fs.mqueue.")):
        return "ipc"
    return ""


def _pod_security(spec: dict[str, Any], path: str) -> list[Cause]:
    """validatePodSpecSecurityContext (the v1 hostNetwork/hostIPC/hostPID live on the spec)."""
    sc = spec.get("securityContext")
    if not isinstance(sc, dict):
        return []
    out = _id_range(sc.get("fsGroup"), f"{path}.fsGroup") + _id_range(sc.get("runAsUser"), f"{path}.runAsUser")
    out += _id_range(sc.get("runAsGroup"), f"{path}.runAsGroup")
    for i, gid in enumerate(_l(sc.get("supplementalGroups"))):
        out += _id_range(gid, f"{path}.supplementalGroups[{i}]")
    if spec.get("shareProcessNamespace") is True and spec.get("hostPID") is True:
        out.append(invalid(f"{path}.shareProcessNamespace", True, "ShareProcessNamespace and HostPID cannot both "
                                                                  "be enabled"))
    names: set[str] = set()
    for i, s in enumerate(_l(sc.get("sysctls"))):
        name = _d(s).get("name") if isinstance(_d(s).get("name"), str) else ""
        np = f"{path}.sysctls[{i}].name"
        if not name:
            out.append(required(np))
        elif len(name) > 253 or not re.fullmatch(_SYSCTL_RE, name):
            out.append(invalid(np, name, f"must have at most 253 characters and match regex {_SYSCTL_RE}"))
        elif name in names:
            out.append(duplicate(np, name))
        ns = _sysctl_namespace(name)
        if spec.get("hostNetwork") is True and ns == "net":
            out.append(invalid(np, name, "may not be specified when 'hostNetwork' is true"))
        elif spec.get("hostIPC") is True and ns == "ipc":
            out.append(invalid(np, name, "may not be specified when 'hostIPC' is true"))
        names.add(name)
    policy = sc.get("fsGroupChangePolicy")
    if policy is not None and policy not in FS_GROUP_CHANGE_POLICIES:
        out.append(not_supported(f"{path}.fsGroupChangePolicy", policy, FS_GROUP_CHANGE_POLICIES))
    out += _seccomp(sc.get("seccompProfile"), f"{path}.seccompProfile")
    return out + _apparmor(sc.get("appArmorProfile"), f"{path}.appArmorProfile")


# -- DNS ---------------------------------------------------------------------------------------

def _valid_ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(value if isinstance(value, str) else "")
        return True
    except ValueError:
        # netutils.ParseIPSloppy also takes IPv4 with leading zeros ("010.1.1.1")
        return isinstance(value, str) and bool(re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", value)) \
            and all(int(x) <= 255 for x in value.split("."))


def _dns_config(spec: dict[str, Any], path: str) -> list[Cause]:
    """validatePodDNSConfig."""
    cfg = spec.get("dnsConfig")
    if spec.get("dnsPolicy") == "None":
        if cfg is None:
            return [required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not _l(_d(cfg).get("nameservers")):
            return [required(f"{path}.nameservers", "must provide at least one DNS nameserver when `dnsPolicy` "
                                                    "is None")]
    if cfg is None:
        return []
    cfg = _d(cfg)
    out: list[Cause] = []
    servers = _l(cfg.get("nameservers"))
    if len(servers) > 3:
        out.append(invalid(f"{path}.nameservers", servers, "must not have more than 3 nameservers"))
    out += [invalid(f"{path}.nameservers[{i}]", ns, _IP_MSG) for i, ns in enumerate(servers) if not _valid_ip(ns)]
    searches = [s for s in _l(cfg.get("searches")) if isinstance(s, str)]
    if len(searches) > 32:
        out.append(invalid(f"{path}.searches", searches, "must not have more than 32 search paths"))
    if len(" ".join(searches)) > 2048:
        out.append(invalid(f"{path}.searches", searches, "must not have more than 2048 characters (including "
                                                         "spaces) in the search list"))
    for i, s in enumerate(searches):
        s = s[:-1] if s.endswith(".") else s
        out += validate_dns_subdomain(s, f"{path}.searches[{i}]")
    for i, opt in enumerate(_l(cfg.get("options"))):
        if not _d(opt).get("name"):
            out.append(required(f"{path}.options[{i}]", "must not be empty"))
    return out


# -- the pod spec --------------------------------------------------------------------------------

def _container_common(c: dict[str, Any], volumes: dict[str, dict[str, Any]], path: str) -> list[Cause]:
    """What validateContainerCommon adds to kybern's name/image/ports/resources checks."""
    out: list[Cause] = []
    tmp = c.get("terminationMessagePolicy")
    if tmp == "":
        out.append(required(f"{path}.terminationMessagePolicy"))
    elif tmp is not None and tmp not in TERMINATION_MESSAGE_POLICIES:
        out.append(not_supported(f"{path}.terminationMessagePolicy", tmp, TERMINATION_MESSAGE_POLICIES))
    out += validate_env(c.get("env"), f"{path}.env")
    out += validate_env_from(c.get("envFrom"), f"{path}.envFrom")
    out += validate_volume_mounts(c, volumes, f"{path}.volumeMounts")
    out += validate_volume_devices(c, volumes, f"{path}.volumeDevices")
    return out + _container_security(c.get("securityContext"), f"{path}.securityContext")


def _host_port_conflicts(containers: list[Any], path: str) -> list[Cause]:
    """AccumulateUniqueHostPorts: one protocol/hostIP/hostPort per pod (per init container)."""
    out: list[Cause] = []
    seen: set[str] = set()
    for i, c in enumerate(containers):
        for j, port in enumerate(_l(_d(c).get("ports"))):
            port = _d(port)
            hp = _int(port.get("hostPort"))
            if not hp:
                continue
            key = f"{port.get('protocol') or ''}/{port.get('hostIP') or ''}/{hp}"
            if key in seen:
                out.append(duplicate(f"{path}[{i}].ports[{j}].hostPort", key))
            seen.add(key)
    return out


def validate_pod_spec_details(spec: dict[str, Any], path: str) -> list[Cause]:
    """ValidatePodSpec's checks beyond those in kybern.api.core.validate_pod_spec."""
    volumes, out = validate_volumes(spec.get("volumes"), f"{path}.volumes")
    grace = _int(spec.get("terminationGracePeriodSeconds"))
    containers = _l(spec.get("containers"))
    for i, c in enumerate(containers):
        c, p = _d(c), f"{path}.containers[{i}]"
        out += _container_common(c, volumes, p) + _probes_and_hooks(c, grace, p)
        if c.get("restartPolicy") is not None:
            out.append(forbidden(f"{p}.restartPolicy", "may not be set for non-init containers"))
    out += _host_port_conflicts(containers, f"{path}.containers")
    for i, c in enumerate(_l(spec.get("initContainers"))):
        c, p = _d(c), f"{path}.initContainers[{i}]"
        out += _container_common(c, volumes, p)
        rp = c.get("restartPolicy")
        if rp is not None and rp != "Always":
            out.append(not_supported(f"{p}.restartPolicy", rp, ("Always",)))
        out += _host_port_conflicts([c], f"{path}.initContainers")
        if rp == "Always":  # a sidecar may have probes and hooks; a plain init container may not
            out += _probes_and_hooks(c, grace, p)
        else:
            out += [forbidden(f"{p}.{k}", "may not be set for init containers without restartPolicy=Always")
                    for k in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe") if c.get(k) is not None]
    out += validate_ephemeral_containers(spec, volumes, path)
    if spec.get("hostNetwork") is True:
        # a template may leave hostPort 0 (the pod's defaulting fills it); else it must be containerPort
        for i, c in enumerate(containers):
            for j, port in enumerate(_l(_d(c).get("ports"))):
                hp, cp = _int(_d(port).get("hostPort")), _d(port).get("containerPort")
                if hp and hp != cp:
                    out.append(invalid(f"{path}.containers[{i}].ports[{j}].hostPort", hp,
                                       "must match `containerPort` when `hostNetwork` is true"))
    out += _pod_security(spec, f"{path}.securityContext")
    out += _dns_config(spec, f"{path}.dnsConfig")
    for i, gate in enumerate(_l(spec.get("readinessGates"))):
        ct = _d(gate).get("conditionType") if isinstance(_d(gate).get("conditionType"), str) else ""
        out += [invalid(f"{path}.readinessGates[{i}].conditionType", ct, m) for m in qualified_name_errors(ct)]
    for i, alias in enumerate(_l(spec.get("hostAliases"))):
        alias = _d(alias)
        if not _valid_ip(alias.get("ip")):
            out.append(invalid(f"{path}.hostAliases[{i}].ip", alias.get("ip") or "", _IP_MSG))
        for j, h in enumerate(_l(alias.get("hostnames"))):
            out += validate_dns_subdomain(h if isinstance(h, str) else "", f"{path}.hostAliases[{i}].hostnames[{j}]")
    seen: set[str] = set()
    for i, gate in enumerate(_l(spec.get("schedulingGates"))):
        g = _d(gate).get("name") if isinstance(_d(gate).get("name"), str) else ""
        out += [invalid(f"{path}.schedulingGates[{i}]", g, m) for m in qualified_name_errors(g)]
        if g in seen:
            out.append(duplicate(f"{path}.schedulingGates[{i}]", g))
        seen.add(g)
    for key in ("priorityClassName", "runtimeClassName"):
        name = spec.get(key)
        if isinstance(name, str) and (key == "runtimeClassName" or name) \
                and not (len(name) <= 253 and DNS1123_SUBDOMAIN.match(name)):
            out += validate_dns_subdomain(name, f"{path}.{key}")
    pp = spec.get("preemptionPolicy")
    if pp == "":
        out.append(required(f"{path}.preemptionPolicy"))
    elif pp is not None and pp not in ("PreemptLowerPriority", "Never"):
        out.append(not_supported(f"{path}.preemptionPolicy", pp, ("PreemptLowerPriority", "Never")))
    return out + _os(spec, path)


def _os(spec: dict[str, Any], path: str) -> list[Cause]:
    """validateOS, and validateLinux: no Windows options in a linux pod."""
    os_ = spec.get("os")
    if os_ is None:
        return []
    name = _d(os_).get("name") or ""
    if not name:
        return [required(f"{path}.os.name")]
    if name not in ("linux", "windows"):
        return [not_supported(f"{path}.os", name, ("linux", "windows"))]
    if name != "linux":
        return []
    out = []
    if _d(spec.get("securityContext")).get("windowsOptions") is not None:
        out.append(forbidden(f"{path}.securityContext.windowsOptions", "windows options cannot be set for a linux pod"))
    for kind in ("containers", "initContainers", "ephemeralContainers"):
        for i, c in enumerate(_l(spec.get(kind))):
            if _d(_d(c).get("securityContext")).get("windowsOptions") is not None:
                out.append(forbidden(f"{path}.{kind}[{i}].securityContext.windowsOptions",
                                     "windows options cannot be set for a linux pod"))
    return out


def validate_ephemeral_containers(spec: dict[str, Any], volumes: dict[str, dict[str, Any]] | None,
                                  path: str) -> list[Cause]:
    """validateEphemeralContainers' use of validateContainerCommon: environment, mounts
    (no subPath: its bind mount would outlive the debug session) and security context."""
    if volumes is None:
        volumes = validate_volumes(spec.get("volumes"), f"{path}.volumes")[0]
    out: list[Cause] = []
    for i, c in enumerate(_l(spec.get("ephemeralContainers"))):
        c, p = _d(c), f"{path}.ephemeralContainers[{i}]"
        out += _container_common(c, volumes, p)
        for j, m in enumerate(_l(c.get("volumeMounts"))):
            for key in ("subPath", "subPathExpr"):
                if _d(m).get(key):
                    out.append(forbidden(f"{p}.volumeMounts[{j}].{key}", "cannot be set for an Ephemeral Container"))
    return out


def validate_pod_only(spec: Any, *, create: bool) -> list[Cause]:
    """validatePodMetadataAndSpec/ValidatePodCreate checks a Pod gets and a template
    does not."""
    spec = _d(spec)
    out: list[Cause] = []
    for kind in ("containers", "initContainers"):
        for i, c in enumerate(_l(spec.get(kind))):
            image = _d(c).get("image")
            if isinstance(image, str) and image != image.strip():
                out.append(invalid(f"spec.{kind}[{i}].image", image, "must not have leading or trailing whitespace"))
    if create and _l(spec.get("ephemeralContainers")):
        out.append(forbidden("spec.ephemeralContainers", "cannot be set on create"))
    return out
