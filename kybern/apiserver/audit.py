"""Auditing as kube-apiserver's (`--audit-policy-file`, `--audit-log-path`, the log
backend in JSON lines): each request gets an audit ID (the `Audit-Id` response header,
always), and, when a policy rule gives it a level above None, `audit.k8s.io/v1` Events
for its stages — RequestReceived, ResponseStarted (long-running requests: watch, exec,
attach, port-forward, proxy, followed logs) and ResponseComplete:

- Metadata: who (user, impersonated user, source IPs, user agent), what (verb,
  requestURI, objectRef), the response's status, the authorizer's decision and reason;
- Request: and the request body (`requestObject`);
- RequestResponse: and the response body (`responseObject`).

The policy's rules are matched in order as upstream's policy checker (users, userGroups,
verbs, resources with group, `*`, `*/sub`, `res/*` and resourceNames, namespaces,
nonResourceURLs with a trailing `*`); the first match decides, no match is None.
`omitStages` and `omitManagedFields`, policy-wide and per rule, as upstream.
The log file is rotated past `--audit-log-maxsize` MB into `NAME-<time>.EXT`, keeping
`--audit-log-maxbackup` files and none older than `--audit-log-maxage` days."""

from __future__ import annotations

import datetime as dt
import glob
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import yaml

if TYPE_CHECKING:
    from aiohttp import web

    from kybern.apiserver.authz import Attributes

LEVELS = ("None", "Metadata", "Request", "RequestResponse")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
LONG_RUNNING_SUBRESOURCES = ("exec", "attach", "portforward", "proxy")
# an Event's fields in the order upstream's JSON has them
_ORDER = ("kind", "apiVersion", "level", "auditID", "stage", "requestURI", "verb", "user", "impersonatedUser",
          "sourceIPs", "userAgent", "objectRef", "responseStatus", "requestObject", "responseObject",
          "requestReceivedTimestamp", "stageTimestamp", "annotations")


class PolicyError(ValueError):
    pass


@dataclass
class Rule:
    level: str
    users: list[str] = field(default_factory=list)
    user_groups: list[str] = field(default_factory=list)
    verbs: list[str] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    non_resource_urls: list[str] = field(default_factory=list)
    omit_stages: list[str] | None = None
    omit_managed_fields: bool | None = None

    def matches(self, a: Attributes) -> bool:
        if self.users and a.username not in self.users:
            return False
        if self.user_groups and not set(a.groups) & set(self.user_groups):
            return False
        if self.verbs and a.verb not in self.verbs:
            return False
        if self.resources or self.namespaces:
            return a.resource_request and self._namespace(a) and self._resource(a)
        if self.non_resource_urls:
            return not a.resource_request and any(
                a.path == u or (u.endswith("*") and a.path.startswith(u[:-1])) for u in self.non_resource_urls)
        return True

    def _namespace(self, a: Attributes) -> bool:
        return not self.namespaces or a.namespace in self.namespaces

    def _resource(self, a: Attributes) -> bool:
        if not self.resources:
            return True
        combined = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
        for gr in self.resources:
            if (gr.get("group") or "") != a.api_group:
                continue
            names = gr.get("resources") or []
            if not names:
                return True
            rn = gr.get("resourceNames") or []
            if rn and a.name not in rn:
                continue
            for res in names:
                if res in (combined, "*") or (a.subresource and res == f"*/{a.subresource}") or \
                        (res.endswith("/*") and res[:-2] == a.resource):
                    return True
        return False


@dataclass
class Policy:
    rules: list[Rule]
    omit_stages: list[str] = field(default_factory=list)
    omit_managed_fields: bool = False

    def decide(self, a: Attributes) -> tuple[str, set[str], bool]:
        """(level, stages to omit, omit managedFields) for a request."""
        for r in self.rules:
            if r.matches(a):
                omit = set(self.omit_stages) | set(r.omit_stages or [])
                mf = self.omit_managed_fields if r.omit_managed_fields is None else r.omit_managed_fields
                return r.level, omit, mf
        return "None", set(), False


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """An audit.k8s.io/v1 Policy file (YAML or JSON), checked as upstream's loader."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise PolicyError(f"failed to read audit policy file {path}: {e}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "Policy" or \
            doc.get("apiVersion") not in ("audit.k8s.io/v1", "audit.k8s.io/v1beta1"):
        raise PolicyError(f"{path}: not an audit.k8s.io/v1 Policy")
    rules: list[Rule] = []
    errs: list[str] = []
    for i, r in enumerate(doc.get("rules") or []):
        level = r.get("level")
        if level not in LEVELS:
            errs.append(f"rules[{i}].level: Unsupported value: {level!r}")
            continue
        if (r.get("resources") or r.get("namespaces")) and r.get("nonResourceURLs"):
            errs.append(f"rules[{i}].nonResourceURLs: Invalid value: rules cannot apply to both regular resources "
                        "and non-resource URLs")
        for st in r.get("omitStages") or []:
            if st not in STAGES:
                errs.append(f"rules[{i}].omitStages: Unsupported value: {st!r}")
        rules.append(Rule(level, list(r.get("users") or []), list(r.get("userGroups") or []),
                          list(r.get("verbs") or []), list(r.get("resources") or []),
                          list(r.get("namespaces") or []), list(r.get("nonResourceURLs") or []),
                          r.get("omitStages"), r.get("omitManagedFields")))
    for st in doc.get("omitStages") or []:
        if st not in STAGES:
            errs.append(f"omitStages: Unsupported value: {st!r}")
    if not rules and not errs:
        raise PolicyError(f"loaded illegal policy with 0 rules from file {path}")
    if errs:
        raise PolicyError(f"{path}: invalid audit policy: " + "; ".join(errs))
    return Policy(rules, list(doc.get("omitStages") or []), bool(doc.get("omitManagedFields")))


class LogFile:
    """JSON lines appended to a file ("-": stdout), rotated by size."""

    def __init__(self, path: str, *, max_size_mb: int = 0, max_backup: int = 0, max_age_days: int = 0) -> None:
        self.path = path
        self.max_size = max_size_mb * 1024 * 1024
        self.max_backup = max_backup
        self.max_age = max_age_days
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0

    def write(self, events: list[dict[str, Any]]) -> None:
        data = b"".join(orjson.dumps(e) + b"\n" for e in events)
        with self._lock:
            if self.path == "-":
                os.write(1, data)
                return
            if self._fd is None:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
                self._size = os.fstat(self._fd).st_size
            if self.max_size and self._size + len(data) > self.max_size and self._size:
                self._rotate()
            os.write(self._fd, data)  # one write per batch: lines from several processes do not interleave
            self._size += len(data)

    def _rotate(self) -> None:
        assert self._fd is not None
        os.close(self._fd)
        stem, ext = os.path.splitext(self.path)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H-%M-%S.%f")[:-3]
        os.replace(self.path, f"{stem}-{stamp}{ext}")
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._size = 0
        backups = sorted(glob.glob(f"{glob.escape(stem)}-*{glob.escape(ext)}"))
        if self.max_backup:
            for old in backups[:-self.max_backup]:
                os.unlink(old)
        if self.max_age:
            cutoff = time.time() - self.max_age * 86400
            for old in backups:
                if os.path.exists(old) and os.path.getmtime(old) < cutoff:
                    os.unlink(old)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _micro(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _object_ref(a: Attributes) -> dict[str, Any] | None:
    if not a.resource_request:
        return None
    ref: dict[str, Any] = {"resource": a.resource}
    if a.namespace:
        ref["namespace"] = a.namespace
    if a.name:
        ref["name"] = a.name
    if a.api_group:
        ref["apiGroup"] = a.api_group
    ref["apiVersion"] = a.api_version
    if a.subresource:
        ref["subresource"] = a.subresource
    return ref


def _long_running(a: Attributes, request: web.Request) -> bool:
    return a.verb == "watch" or a.subresource in LONG_RUNNING_SUBRESOURCES or \
        (a.subresource == "log" and request.query.get("follow") in ("true", "1"))


@dataclass
class Record:
    """One request's audit event as it goes through its stages."""
    event: dict[str, Any]
    level: str
    omit: set[str]
    omit_managed_fields: bool
    long_running: bool
    started: bool = False


class Auditor:
    def __init__(self, policy: Policy, log: LogFile) -> None:
        self.policy = policy
        self.log = log

    def begin(self, request: web.Request, a: Attributes, user: dict[str, Any] | None,
              impersonator: dict[str, Any] | None) -> Record | None:
        level, omit, mf = self.policy.decide(a)
        if level == "None":
            return None
        now = time.time()
        ev: dict[str, Any] = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": level,
                              "auditID": request["audit_id"], "stage": "RequestReceived",
                              "requestURI": request.path_qs, "verb": a.verb,
                              "user": _user(impersonator or user)}
        if impersonator is not None and user is not None:
            ev["impersonatedUser"] = _user(user)
        peer = request.remote
        ev["sourceIPs"] = [peer] if peer else []
        if request.headers.get("User-Agent"):
            ev["userAgent"] = request.headers["User-Agent"]
        ref = _object_ref(a)
        if ref:
            ev["objectRef"] = ref
        ev["requestReceivedTimestamp"] = ev["stageTimestamp"] = _micro(now)
        rec = Record(ev, level, omit, mf, _long_running(a, request))
        self._emit(rec, "RequestReceived")
        return rec

    def decided(self, rec: Record, allowed: bool, reason: str) -> None:
        rec.event.setdefault("annotations", {}).update({
            "authorization.k8s.io/decision": "allow" if allowed else "forbid",
            "authorization.k8s.io/reason": reason})

    def started(self, rec: Record, status: int) -> None:
        """The response's headers are going out: ResponseStarted for long-running requests."""
        if rec.long_running and not rec.started:
            rec.started = True
            rec.event["responseStatus"] = {"metadata": {}, "code": status}
            self._emit(rec, "ResponseStarted")

    def complete(self, rec: Record, request: web.Request, resp: web.StreamResponse) -> None:
        ev = rec.event
        status: dict[str, Any] = {"metadata": {}, "code": resp.status}
        from aiohttp import web

        body = resp.body if isinstance(resp, web.Response) else None
        decoded = None
        if isinstance(body, bytes | bytearray) and body[:1] == b"{":
            try:
                decoded = orjson.loads(body)
            except orjson.JSONDecodeError:
                decoded = None
        if isinstance(decoded, dict) and decoded.get("kind") == "Status":
            for k in ("status", "message", "reason", "details"):
                if decoded.get(k):
                    status[k] = decoded[k]
        ev["responseStatus"] = status
        if rec.level in ("Request", "RequestResponse"):
            raw = request.get("raw_body")
            if raw:
                from kybern.apiserver import rest

                try:  # JSON, YAML or protobuf, logged as JSON
                    ev["requestObject"] = self._trim(rest.decode_body(raw, rest.body_type(request)), rec)
                except Exception:  # noqa: BLE001 - an undecodable body is refused anyway; the event still goes out
                    pass
        if rec.level == "RequestResponse" and isinstance(decoded, dict):
            ev["responseObject"] = self._trim(decoded, rec)
        if "objectRef" in ev and "name" not in ev["objectRef"] and request.method == "POST" and \
                isinstance(decoded, dict) and decoded.get("kind") != "Status":
            name = (decoded.get("metadata") or {}).get("name")
            if name:
                ev["objectRef"]["name"] = name  # a create learns its object's name from the response
        self._emit(rec, "ResponseComplete")

    @staticmethod
    def _trim(obj: Any, rec: Record) -> Any:
        if rec.omit_managed_fields and isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
            obj["metadata"].pop("managedFields", None)
        return obj

    def _emit(self, rec: Record, stage: str) -> None:
        if stage in rec.omit:
            return
        ev = rec.event
        ev["stage"] = stage
        ev["stageTimestamp"] = _micro(time.time())
        try:
            self.log.write([{k: ev[k] for k in _ORDER if k in ev}])
        except OSError:  # a full disk must not fail the request (upstream's log backend drops too)
            pass


def _user(user: dict[str, Any] | None) -> dict[str, Any]:
    if not user:
        return {}
    out: dict[str, Any] = {"username": user.get("username", "")}
    if user.get("uid"):
        out["uid"] = user["uid"]
    if user.get("groups"):
        out["groups"] = list(user["groups"])
    if user.get("extra"):
        out["extra"] = user["extra"]
    return out


def new_audit_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class AuditFlags:
    """kube-apiserver's --audit-policy-file, --audit-log-path, --audit-log-maxage,
    --audit-log-maxbackup and --audit-log-maxsize (MB)."""
    policy_file: str = ""
    log_path: str = ""
    max_age: int = 0
    max_backup: int = 0
    max_size: int = 0

    @property
    def enabled(self) -> bool:  # as upstream: a policy and a backend, or no auditing
        return bool(self.policy_file and self.log_path)

    def args(self) -> list[str]:
        """The same flags for another apiserver process (--api-workers)."""
        if not self.enabled:
            return []
        return ["--audit-policy-file", self.policy_file, "--audit-log-path", self.log_path,
                "--audit-log-maxage", str(self.max_age), "--audit-log-maxbackup", str(self.max_backup),
                "--audit-log-maxsize", str(self.max_size)]

    def auditor(self) -> Auditor | None:
        if not self.enabled:
            return None
        return Auditor(load_policy(self.policy_file), LogFile(self.log_path, max_size_mb=self.max_size,
                                                               max_backup=self.max_backup,
                                                               max_age_days=self.max_age))
