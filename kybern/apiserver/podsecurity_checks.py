"""The Pod Security Standards as checks of a pod's metadata and spec (plain JSON
dicts), as k8s.io/pod-security-admission's policy package defines them for
Kubernetes 1.32: the levels and versions of the namespace labels, each check
with the policy versions its revisions start at, and the messages kube-apiserver
writes ("allowPrivilegeEscalation != false (container "nginx" must set ...)").

A check returns None when it allows the pod, else (reason, detail). Baseline
checks run for baseline and restricted; restricted checks run for restricted
and replace the baseline checks they override (capabilities, seccomp, hostPath
volumes). Results come in upstream's order: the baseline check ids sorted, then
the restricted ones sorted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
Result = tuple[str, str] | None
CheckFn = Callable[[Obj, Obj], Result]

PRIVILEGED, BASELINE, RESTRICTED = "privileged", "baseline", "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)
LATEST = "latest"
# the newest policy version a check starts at in 1.32 (sysctls' tcp_rmem/tcp_wmem):
# `latest` and any newer v1.X evaluate as this one
MAX_MINOR = 32

LABEL_PREFIX = "pod-security.kubernetes.io/"
MODES = ("enforce", "audit", "warn")


# -- levels, versions, policies (api/helpers.go) --------------------------------
@dataclass(frozen=True)
class LevelVersion:
    level: str
    minor: int | None  # None: latest

    def __str__(self) -> str:
        return f"{self.level}:{LATEST if self.minor is None else f'v1.{self.minor}'}"


@dataclass(frozen=True)
class Policy:
    enforce: LevelVersion
    audit: LevelVersion
    warn: LevelVersion

    def fully_privileged(self) -> bool:
        return self.enforce.level == self.audit.level == self.warn.level == PRIVILEGED


DEFAULT = LevelVersion(PRIVILEGED, None)
DEFAULT_POLICY = Policy(DEFAULT, DEFAULT, DEFAULT)
_VERSION = re.compile(r"^v1\.([0-9]|[1-9][0-9]*)$")


def _go_quote(s: str) -> str:
    """Go's %q of a string (strconv.Quote) for the values messages quote."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def policy_for(labels: dict[str, str] | None, defaults: Policy = DEFAULT_POLICY
               ) -> tuple[Policy, list[dict[str, str]]]:
    """PolicyToEvaluate: the namespace's policy from its labels (the defaults,
    privileged:latest unless configured, where unset) and the field causes of
    invalid values. An invalid level enforces as restricted (audit and warn fail
    open to privileged); an invalid version is latest."""
    causes: list[dict[str, str]] = []
    if not labels:
        return defaults, causes
    modes: dict[str, LevelVersion] = {}
    for mode in MODES:
        default: LevelVersion = getattr(defaults, mode)
        level, minor = default.level, default.minor
        key = LABEL_PREFIX + mode
        if key in labels:
            value = labels[key]
            if value in LEVELS:
                level = value
            else:
                level = RESTRICTED if mode == "enforce" else PRIVILEGED
                causes.append(_invalid(key, value, f"must be one of {', '.join(LEVELS)}"))
        vkey = key + "-version"
        if vkey in labels:
            value = labels[vkey]
            m = _VERSION.match(value)
            if value == LATEST:
                minor = None
            elif m:
                minor = int(m.group(1))
            else:
                minor = None
                causes.append(_invalid(vkey, value, 'must be "latest" or "v1.x"'))
        modes[mode] = LevelVersion(level, minor)
    return Policy(modes["enforce"], modes["audit"], modes["warn"]), causes


def _invalid(label: str, value: str, why: str) -> dict[str, str]:
    return {"type": "FieldValueInvalid", "message": f"Invalid value: {_go_quote(value)}: {why}",
            "field": f"metadata.labels[{label}]"}


def compare_levels(a: str, b: str) -> int:
    """-1, 0, 1 as level a is less strict than, as strict as, stricter than b."""
    return (LEVELS.index(a) > LEVELS.index(b)) - (LEVELS.index(a) < LEVELS.index(b))


# -- helpers (policy/helpers.go, visitor.go) ----------------------------------------
def _plural(singular: str, plural: str, n: int) -> str:
    return singular if n == 1 else plural


def _quote_join(items: list[str]) -> str:
    return '"' + '", "'.join(items) + '"' if items else ""


def _containers(spec: Obj) -> Iterator[Obj]:
    """Init containers, containers, then ephemeral containers (visitContainers)."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or ():
            if isinstance(c, dict):
                yield c


def _sc(o: Obj) -> Obj | None:
    sc = o.get("securityContext")
    return sc if isinstance(sc, dict) else None


def _name(c: Obj) -> str:
    return str(c.get("name") or "")


def _windows(spec: Obj) -> bool:
    return ((spec.get("os") or {}).get("name")) == "windows"


def _setters(pod_bad: bool, containers: list[str]) -> list[str]:
    out = ["pod"] if pod_bad else []
    if containers:
        out.append(f"{_plural('container', 'containers', len(containers))} {_quote_join(containers)}")
    return out


# -- baseline checks ------------------------------------------------------------------
def app_armor_profile(meta: Obj, spec: Obj) -> Result:
    allowed = ("RuntimeDefault", "Localhost")
    bad_values: set[str] = set()
    pod_bad = False
    psc = _sc(spec)
    if psc and isinstance(psc.get("appArmorProfile"), dict):
        t = str(psc["appArmorProfile"].get("type") or "")
        if t not in allowed:
            pod_bad = True
            bad_values.add(t)
    bad: list[str] = []
    for c in _containers(spec):
        sc = _sc(c)
        if sc and isinstance(sc.get("appArmorProfile"), dict):
            t = str(sc["appArmorProfile"].get("type") or "")
            if t not in allowed:
                bad.append(_name(c))
                bad_values.add(t)
    setters = _setters(pod_bad, bad)
    annotations = [f"{k}={_go_quote(str(v))}" for k, v in (meta.get("annotations") or {}).items()
                   if k.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
                       not v or v == "runtime/default" or str(v).startswith("localhost/"))]
    values = sorted(bad_values)
    if annotations:
        annotations.sort()
        values += annotations
        setters.append(_plural("annotation", "annotations", len(annotations)))
    if setters:
        return (_plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(values)),
                f"{' and '.join(setters)} must not set AppArmor profile type to {_quote_join(values)}")
    return None


BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})


def capabilities_baseline(meta: Obj, spec: Obj) -> Result:
    bad: list[str] = []
    caps: set[str] = set()
    for c in _containers(spec):
        sc = _sc(c)
        if sc and isinstance(sc.get("capabilities"), dict):
            extra = [str(a) for a in sc["capabilities"].get("add") or () if a not in BASELINE_CAPABILITIES]
            if extra:
                bad.append(_name(c))
                caps.update(extra)
    if bad:
        return ("non-default capabilities",
                (f"{_plural('container', 'containers', len(bad))} {_quote_join(bad)} must not include "
                f"{_quote_join(sorted(caps))} in securityContext.capabilities.add"))
    return None


def host_namespaces(meta: Obj, spec: Obj) -> Result:
    used = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k) is True]
    return ("host namespaces", ", ".join(used)) if used else None


def host_path_volumes(meta: Obj, spec: Obj) -> Result:
    names = [str(v.get("name") or "") for v in spec.get("volumes") or () if isinstance(v, dict)
             and v.get("hostPath") is not None]
    if names:
        return "hostPath volumes", f"{_plural('volume', 'volumes', len(names))} {_quote_join(names)}"
    return None


def host_ports(meta: Obj, spec: Obj) -> Result:
    bad: list[str] = []
    ports: set[str] = set()
    for c in _containers(spec):
        used = [p.get("hostPort") for p in c.get("ports") or () if isinstance(p, dict) and p.get("hostPort")]
        if used:
            bad.append(_name(c))
            ports.update(str(p) for p in used)
    if bad:
        return ("hostPort", (f"{_plural('container', 'containers', len(bad))} {_quote_join(bad)} "
                            f"{_plural('uses', 'use', len(bad))} {_plural('hostPort', 'hostPorts', len(ports))} "
                            f"{', '.join(sorted(ports))}"))
    return None


def privileged(meta: Obj, spec: Obj) -> Result:
    bad = [_name(c) for c in _containers(spec) if (_sc(c) or {}).get("privileged") is True]
    if bad:
        return ("privileged", (f"{_plural('container', 'containers', len(bad))} {_quote_join(bad)} must not set "
                              f"securityContext.privileged=true"))
    return None


def proc_mount(meta: Obj, spec: Obj) -> Result:
    bad: list[str] = []
    types: set[str] = set()
    for c in _containers(spec):
        pm = (_sc(c) or {}).get("procMount")
        if pm is not None and pm != "Default":
            bad.append(_name(c))
            types.add(str(pm))
    if bad:
        return ("procMount", (f"{_plural('container', 'containers', len(bad))} {_quote_join(bad)} must not set "
                             f"securityContext.procMount to {_quote_join(sorted(types))}"))
    return None


def _se_linux(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> Result:
        bad_types: set[str] = set()
        flags = {"user": False, "role": False}

        def valid(opts: Obj) -> bool:
            ok = True
            t = str(opts.get("type") or "")
            if t not in allowed:
                ok = False
                bad_types.add(t)
            for k in ("user", "role"):
                if opts.get(k):
                    ok = False
                    flags[k] = True
            return ok

        psc = _sc(spec)
        pod_bad = bool(psc and isinstance(psc.get("seLinuxOptions"), dict) and not valid(psc["seLinuxOptions"]))
        bad = [_name(c) for c in _containers(spec)
               if isinstance((_sc(c) or {}).get("seLinuxOptions"), dict) and not valid(_sc(c)["seLinuxOptions"])]  # type: ignore[index]
        setters = _setters(pod_bad, bad)
        if not setters:
            return None
        data = []
        if bad_types:
            data.append(f"{_plural('type', 'types', len(bad_types))} {_quote_join(sorted(bad_types))}")
        data += [f"{k} may not be set" for k in ("user", "role") if flags[k]]
        return ("seLinuxOptions", (f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: "
                                  f"{'; '.join(data)}"))
    return check


SELINUX_TYPES_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
SELINUX_TYPES_1_31 = SELINUX_TYPES_1_0 | {"container_engine_t"}


def _seccomp_ok(t: Any) -> bool:
    return t in ("Localhost", "RuntimeDefault")


def seccomp_baseline_1_0(meta: Obj, spec: Obj) -> Result:
    """Before policy v1.19: the seccomp annotations."""
    def ok(v: str) -> bool:
        return v in ("runtime/default", "docker/default") or v.startswith("localhost/")

    ann = meta.get("annotations") or {}
    bad: set[str] = set()
    key = "seccomp.security.alpha.kubernetes.io/pod"
    if key in ann and not ok(str(ann[key])):
        bad.add(f"{key}={_go_quote(str(ann[key]))}")
    for c in _containers(spec):
        key = "container.seccomp.security.alpha.kubernetes.io/" + _name(c)
        if key in ann and not ok(str(ann[key])):
            bad.add(f"{key}={_go_quote(str(ann[key]))}")
    if bad:
        return "seccompProfile", f"forbidden {_plural('annotation', 'annotations', len(bad))} {', '.join(sorted(bad))}"
    return None


def _seccomp(required: bool) -> CheckFn:
    """seccompProfile_baseline (v1.19: set only to RuntimeDefault or Localhost) and,
    required, seccompProfile_restricted (v1.19: set, by the pod or every container)."""
    def check(meta: Obj, spec: Obj) -> Result:
        values: set[str] = set()
        pod_bad = pod_set = False
        psc = _sc(spec)
        if psc and isinstance(psc.get("seccompProfile"), dict):
            t = psc["seccompProfile"].get("type")
            if _seccomp_ok(t):
                pod_set = True
            else:
                pod_bad = True
                values.add(str(t or ""))
        bad: list[str] = []
        unset: list[str] = []
        for c in _containers(spec):
            sc = _sc(c)
            if sc and isinstance(sc.get("seccompProfile"), dict):
                t = sc["seccompProfile"].get("type")
                if not _seccomp_ok(t):
                    bad.append(_name(c))
                    values.add(str(t or ""))
            elif not pod_set:
                unset.append(_name(c))
        setters = _setters(pod_bad, bad)
        if setters:
            return ("seccompProfile", (f"{' and '.join(setters)} must not set securityContext.seccompProfile.type "
                                      f"to {_quote_join(sorted(values))}"))
        if required and unset:
            return ("seccompProfile", (f"pod or {_plural('container', 'containers', len(unset))} {_quote_join(unset)} "
                                      f'must set securityContext.seccompProfile.type to "RuntimeDefault" or '
                                      f'"Localhost"'))
        return None
    return check


def _not_windows(check: CheckFn) -> CheckFn:
    """The v1.25 revision of a restricted check: pods with spec.os.name=windows pass."""
    def windows_exempt(meta: Obj, spec: Obj) -> Result:
        return None if _windows(spec) else check(meta, spec)
    return windows_exempt


SYSCTLS_1_0 = frozenset({"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                         "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"})
SYSCTLS_1_27 = SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
SYSCTLS_1_29 = SYSCTLS_1_27 | {"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                               "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}
SYSCTLS_1_32 = SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}


def _sysctls(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> Result:
        bad = [str(s.get("name")) for s in (_sc(spec) or {}).get("sysctls") or ()
               if isinstance(s, dict) and s.get("name") not in allowed]
        return ("forbidden sysctls", ", ".join(bad)) if bad else None
    return check


def windows_host_process(meta: Obj, spec: Obj) -> Result:
    def host_process(sc: Obj | None) -> bool:
        return bool(sc) and ((sc or {}).get("windowsOptions") or {}).get("hostProcess") is True

    bad = [_name(c) for c in _containers(spec) if host_process(_sc(c))]
    setters = _setters(host_process(_sc(spec)), bad)
    if setters:
        return "hostProcess", f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true"
    return None


# -- restricted checks ----------------------------------------------------------------
def allow_privilege_escalation(meta: Obj, spec: Obj) -> Result:
    bad = [_name(c) for c in _containers(spec) if (_sc(c) or {}).get("allowPrivilegeEscalation") is not False]
    if bad:
        return ("allowPrivilegeEscalation != false",
                (f"{_plural('container', 'containers', len(bad))} {_quote_join(bad)} must set "
                f"securityContext.allowPrivilegeEscalation=false"))
    return None


def capabilities_restricted(meta: Obj, spec: Obj) -> Result:
    missing_drop: list[str] = []
    adding: list[str] = []
    caps: set[str] = set()
    for c in _containers(spec):
        sc = _sc(c)
        capabilities = (sc or {}).get("capabilities")
        if not isinstance(capabilities, dict):
            missing_drop.append(_name(c))
            continue
        if "ALL" not in (capabilities.get("drop") or ()):
            missing_drop.append(_name(c))
        extra = [str(a) for a in capabilities.get("add") or () if a != "NET_BIND_SERVICE"]
        if extra:
            adding.append(_name(c))
            caps.update(extra)
    details = []
    if missing_drop:
        details.append(f"{_plural('container', 'containers', len(missing_drop))} {_quote_join(missing_drop)} "
                       f'must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{_plural('container', 'containers', len(adding))} {_quote_join(adding)} must not include "
                       f"{_quote_join(sorted(caps))} in securityContext.capabilities.add")
    return ("unrestricted capabilities", "; ".join(details)) if details else None


RESTRICTED_VOLUME_SOURCES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                             "projected", "secret")
# the order upstream's switch names a forbidden source in (image volumes are allowed from 1.33)
FORBIDDEN_VOLUME_SOURCES = ("hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi",
                            "glusterfs", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile",
                            "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "portworxVolume",
                            "scaleIO", "storageos")


def restricted_volumes(meta: Obj, spec: Obj) -> Result:
    bad: list[str] = []
    types: set[str] = set()
    for v in spec.get("volumes") or ():
        if not isinstance(v, dict) or any(v.get(k) is not None for k in RESTRICTED_VOLUME_SOURCES):
            continue
        bad.append(str(v.get("name") or ""))
        types.add(next((k for k in FORBIDDEN_VOLUME_SOURCES if v.get(k) is not None), "unknown"))
    if bad:
        return ("restricted volume types",
                (f"{_plural('volume', 'volumes', len(bad))} {_quote_join(bad)} {_plural('uses', 'use', len(bad))} "
                f"{_plural('restricted volume type', 'restricted volume types', len(types))} "
                f"{_quote_join(sorted(types))}"))
    return None


def run_as_non_root(meta: Obj, spec: Obj) -> Result:
    pod_value = (_sc(spec) or {}).get("runAsNonRoot")
    explicit: list[str] = []
    implicit: list[str] = []
    for c in _containers(spec):
        value = (_sc(c) or {}).get("runAsNonRoot")
        if value is not None:
            if value is False:
                explicit.append(_name(c))
        elif pod_value is not True:
            implicit.append(_name(c))
    setters = _setters(pod_value is False, explicit)
    if setters:
        return "runAsNonRoot != true", f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false"
    if implicit:
        return ("runAsNonRoot != true", (f"pod or {_plural('container', 'containers', len(implicit))} "
                                        f"{_quote_join(implicit)} must set securityContext.runAsNonRoot=true"))
    return None


def run_as_user(meta: Obj, spec: Obj) -> Result:
    def root(sc: Obj | None) -> bool:
        v = (sc or {}).get("runAsUser")
        return v == 0 and v is not False

    bad = [_name(c) for c in _containers(spec) if root(_sc(c))]
    setters = _setters(root(_sc(spec)), bad)
    return ("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0") if setters else None


# -- the registry (policy/registry.go) ----------------------------------------------
@dataclass(frozen=True)
class Check:
    id: str
    level: str
    versions: tuple[tuple[int, CheckFn], ...]  # (minimum minor, revision), increasing
    overrides: tuple[str, ...] = ()  # restricted only: baseline checks it replaces where it applies


CHECKS = (
    Check("appArmorProfile", BASELINE, ((0, app_armor_profile),)),
    Check("capabilities_baseline", BASELINE, ((0, capabilities_baseline),)),
    Check("hostNamespaces", BASELINE, ((0, host_namespaces),)),
    Check("hostPathVolumes", BASELINE, ((0, host_path_volumes),)),
    Check("hostPorts", BASELINE, ((0, host_ports),)),
    Check("privileged", BASELINE, ((0, privileged),)),
    Check("procMount", BASELINE, ((0, proc_mount),)),
    Check("seLinuxOptions", BASELINE, ((0, _se_linux(SELINUX_TYPES_1_0)), (31, _se_linux(SELINUX_TYPES_1_31)))),
    Check("seccompProfile_baseline", BASELINE, ((0, seccomp_baseline_1_0), (19, _seccomp(required=False)))),
    Check("sysctls", BASELINE, ((0, _sysctls(SYSCTLS_1_0)), (27, _sysctls(SYSCTLS_1_27)),
                                (29, _sysctls(SYSCTLS_1_29)), (32, _sysctls(SYSCTLS_1_32)))),
    Check("windowsHostProcess", BASELINE, ((0, windows_host_process),)),
    Check("allowPrivilegeEscalation", RESTRICTED, ((8, allow_privilege_escalation),
                                                   (25, _not_windows(allow_privilege_escalation)))),
    Check("capabilities_restricted", RESTRICTED, ((22, capabilities_restricted),
                                                  (25, _not_windows(capabilities_restricted))),
          overrides=("capabilities_baseline",)),
    Check("restrictedVolumes", RESTRICTED, ((0, restricted_volumes),), overrides=("hostPathVolumes",)),
    Check("runAsNonRoot", RESTRICTED, ((0, run_as_non_root),)),
    Check("runAsUser", RESTRICTED, ((23, run_as_user),)),
    Check("seccompProfile_restricted", RESTRICTED, ((19, _seccomp(required=True)),
                                                    (25, _not_windows(_seccomp(required=True)))),
          overrides=("seccompProfile_baseline",)),
)
# baseline checks first, then restricted, each sorted by id (Go's byte order)
_ORDERED = sorted(CHECKS, key=lambda c: (c.level != BASELINE, c.id.encode()))


def _revision(check: Check, minor: int) -> CheckFn | None:
    fn = None
    for start, revision in check.versions:
        if start <= minor:
            fn = revision
    return fn


def _build(level: str, minor: int) -> tuple[tuple[str, CheckFn], ...]:
    fns = {c.id: fn for c in CHECKS if (fn := _revision(c, minor)) is not None and
           (c.level == BASELINE or level == RESTRICTED)}
    if level == RESTRICTED:
        for c in CHECKS:
            if c.level == RESTRICTED and c.id in fns:
                for overridden in c.overrides:
                    fns.pop(overridden, None)
    return tuple((c.id, fns[c.id]) for c in _ORDERED if c.id in fns)


_EVALUATORS = {(level, minor): _build(level, minor) for level in (BASELINE, RESTRICTED)
               for minor in range(MAX_MINOR + 1)}


def evaluate(lv: LevelVersion, meta: Obj, spec: Obj) -> list[tuple[str, str]]:
    """The (reason, detail) of every check the pod fails at lv; [] when it passes."""
    if lv.level == PRIVILEGED:
        return []
    minor = MAX_MINOR if lv.minor is None else min(lv.minor, MAX_MINOR)
    out = []
    for _id, fn in _EVALUATORS[(lv.level, minor)]:
        r = fn(meta, spec)
        if r is not None:
            out.append(r)
    return out


def forbidden_detail(results: list[tuple[str, str]]) -> str:
    """`reason (detail), reason (detail)` (AggregateCheckResult.ForbiddenDetail)."""
    return ", ".join(f"{r} ({d})" if d else r for r, d in results)


def forbidden_reason(results: list[tuple[str, str]]) -> str:
    return ", ".join(r for r, _ in results)
