"""Kubernetes `Status` errors, shared by the apiserver (which sends them) and the
client (which raises them when it receives one).

    StatusError                 any failure a kube-apiserver would answer with a Status
     ├─ reason NotFound          404
     ├─ reason AlreadyExists     409
     ├─ reason Conflict          409
     ├─ reason Invalid           422 (details.causes carry field paths)
     ├─ reason BadRequest        400
     ├─ reason Gone / Expired    410
     └─ ...                      see the constructors below

Messages follow upstream's wording (k8s.io/apimachinery/pkg/api/errors/errors.go)
because scripts and users match on them.
"""

from __future__ import annotations

from typing import Any


class StatusError(Exception):
    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        """The Status in metav1.Status's field order (as Go encodes it, so the
        bytes match kube-apiserver's; the Python client's e2e suite compares them)."""
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:  # `json:"reason,omitempty"`: a webhook's denial may carry none
            out["reason"] = self.reason
        if self.details is not None:  # `{}` is sent: clients such as kubectl debug read details
            out["details"] = ordered_details(self.details)
        out["code"] = self.code
        return out

    @classmethod
    def from_status(cls, status: dict[str, Any], code: int | None = None) -> "StatusError":
        return cls(
            int(status.get("code") or code or 500),
            str(status.get("reason") or ""),
            str(status.get("message") or ""),
            details=status.get("details"),
        )

    def __repr__(self) -> str:
        return f"StatusError({self.code}, {self.reason!r}, {self.message!r})"


_DETAIL_ORDER = ("name", "group", "kind", "uid", "causes", "retryAfterSeconds")
_CAUSE_ORDER = ("reason", "message", "field")


def ordered_details(details: dict[str, Any]) -> dict[str, Any]:
    """StatusDetails (and its causes) in Go's field order; unknown keys last."""
    out = {k: details[k] for k in _DETAIL_ORDER if k in details}
    out.update((k, v) for k, v in details.items() if k not in out)
    causes = out.get("causes")
    if isinstance(causes, list):
        out["causes"] = [_wire_cause(c) if isinstance(c, dict) else c for c in causes]
    return out


def _wire_cause(c: dict[str, Any]) -> dict[str, Any]:
    """A cause as metav1.StatusCause encodes it: its type goes on the wire as
    `reason` (`json:"reason,omitempty"`), then message, then field."""
    c = dict(c)
    if "type" in c:
        c.setdefault("reason", c.pop("type"))
    return {**{k: c[k] for k in _CAUSE_ORDER if k in c}, **c}


def _qualified(group: str, resource: str) -> str:
    return f"{resource}.{group}" if group else resource


def _details(group: str, kind: str, name: str | None, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"kind": kind}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    d.update(extra)
    return d


def not_found(group: str, resource: str, name: str) -> StatusError:
    q = _qualified(group, resource)
    return StatusError(404, "NotFound", f'{q} "{name}" not found',
                       details=_details(group, resource, name))


def already_exists(group: str, resource: str, name: str) -> StatusError:
    q = _qualified(group, resource)
    return StatusError(409, "AlreadyExists", f'{q} "{name}" already exists',
                       details=_details(group, resource, name))


def conflict(group: str, resource: str, name: str, why: str) -> StatusError:
    q = _qualified(group, resource)
    return StatusError(409, "Conflict", f'Operation cannot be fulfilled on {q} "{name}": {why}',
                       details=_details(group, resource, name))


OPTIMISTIC_LOCK = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(group: str, kind: str, name: str, causes: list[dict[str, str]]) -> StatusError:
    """422 Invalid. `causes` are {"type","message","field"} dicts; the message lists
    every one the way upstream's NewInvalid does."""
    q = f"{kind}.{group}" if group else kind
    parts = []
    for c in causes:
        field = c.get("field", "")
        parts.append(f"{field}: {c['message']}" if field else c["message"])
    if len(parts) == 1:
        msg = f'{q} "{name}" is invalid: {parts[0]}'
    else:
        msg = f'{q} "{name}" is invalid: [{", ".join(parts)}]'
    return StatusError(422, "Invalid", msg, details=_details(group, kind, name, causes=causes))


def cause(field: str, message: str, type_: str = "FieldValueInvalid") -> dict[str, str]:
    return {"type": type_, "message": message, "field": field}


def required(field: str) -> dict[str, str]:
    return cause(field, "Required value", "FieldValueRequired")


def bad_request(message: str, causes: list[dict[str, str]] | None = None) -> StatusError:
    return StatusError(400, "BadRequest", message,
                       details={"causes": causes} if causes else None)


def method_not_allowed(message: str) -> StatusError:
    return StatusError(405, "MethodNotAllowed", message)


BODY_TYPES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")


def unsupported_media_type(accepted: tuple[str, ...] | list[str] = BODY_TYPES) -> StatusError:
    """negotiation.NewUnsupportedMediaTypeError: what the endpoint accepts, not what it got."""
    return StatusError(415, "UnsupportedMediaType",
                       "the body of the request was in an unknown format - accepted media types include: "
                       + ", ".join(accepted))


def not_acceptable(message: str) -> StatusError:
    return StatusError(406, "NotAcceptable", message)


def too_large() -> StatusError:
    return StatusError(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")


def gone(message: str) -> StatusError:
    return StatusError(410, "Expired", message)


def resource_expired(rv: int | str) -> StatusError:
    return StatusError(410, "Expired", f"too old resource version: {rv}")


def forbidden(message: str) -> StatusError:
    return StatusError(403, "Forbidden", message)


def forbidden_object(group: str, resource: str, name: str, why: str) -> StatusError:
    """Upstream's NewForbidden for a named object: `pods "x" is forbidden: <why>`."""
    return StatusError(403, "Forbidden", f'{_qualified(group, resource)} "{name}" is forbidden: {why}',
                       details=_details(group, resource, name))


def unauthorized() -> StatusError:
    return StatusError(401, "Unauthorized", "Unauthorized")


def internal(message: str) -> StatusError:
    return StatusError(500, "InternalError", f"Internal error occurred: {message}")


def timeout(message: str) -> StatusError:
    return StatusError(504, "Timeout", message)


def service_unavailable(message: str) -> StatusError:
    return StatusError(503, "ServiceUnavailable", message)
