"""Resource quantities and what a pod asks for, as the scheduler counts them
(upstream k8s.io/apimachinery resource.Quantity and component-helpers
resource.PodRequests).

Amounts are ints: cpu in millicores, everything else in base units (bytes for
memory, ephemeral-storage and hugepages; a count for extended resources), each
rounded up as Quantity.MilliValue()/Value() do.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any

Resources = dict[str, int]

_SUFFIX = {
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
}

DEFAULT_MILLI_CPU = 100  # upstream DefaultMilliCPURequest, used only for scoring
DEFAULT_MEMORY = 200 * 1024 * 1024  # DefaultMemoryRequest


def parse_quantity(value: str | float) -> Decimal:
    """'100m' -> 0.1, '1Gi' -> 1073741824, '1e3' -> 1000."""
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    s = str(value).strip()
    for suf in ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"):
        if s.endswith(suf):
            return _num(s[:-2], value) * _SUFFIX[suf]
    if s and s[-1] in "numkMGTPE":  # an exponent (1e3) always ends in a digit
        return _num(s[:-1], value) * _SUFFIX[s[-1]]
    return _num(s, value)


def _num(s: str, orig: Any) -> Decimal:
    try:
        return Decimal(s)
    except InvalidOperation:
        raise ValueError(f"quantities must match the regular expression: {orig!r}") from None


def amount(name: str, value: str | float) -> int:
    q = parse_quantity(value)
    if name == "cpu":
        q = q * 1000
    return int(q.to_integral_value(rounding=ROUND_CEILING))


def to_resources(rl: dict[str, Any] | None) -> Resources:
    return {k: amount(k, v) for k, v in (rl or {}).items()}


def container_requests(c: dict[str, Any]) -> Resources:
    """requests, with limits standing in for missing requests (apiserver defaulting)."""
    res = c.get("resources") or {}
    out = to_resources(res.get("limits"))
    out.update(to_resources(res.get("requests")))
    return out


def _add(into: Resources, r: Resources) -> None:
    for k, v in r.items():
        into[k] = into.get(k, 0) + v


def _max(into: Resources, r: Resources) -> None:
    for k, v in r.items():
        if v > into.get(k, 0):
            into[k] = v


def _non_zero(r: Resources) -> Resources:
    out = dict(r)
    if not out.get("cpu"):
        out["cpu"] = DEFAULT_MILLI_CPU
    if not out.get("memory"):
        out["memory"] = DEFAULT_MEMORY
    return out


def pod_requests(pod: dict[str, Any], *, non_zero: bool = False) -> Resources:
    """Sum of containers; sidecar (restartPolicy Always) init containers add up;
    each plain init container is a peak the pod must also fit; plus overhead.
    `non_zero` gives containers without cpu/memory requests the defaults used
    for scoring."""
    spec = pod.get("spec") or {}
    conv = (lambda c: _non_zero(container_requests(c))) if non_zero else container_requests
    reqs: Resources = {}
    for c in spec.get("containers") or []:
        _add(reqs, conv(c))
    sidecars: Resources = {}
    init_peak: Resources = {}
    for c in spec.get("initContainers") or []:
        r = conv(c)
        if c.get("restartPolicy") == "Always":
            _add(reqs, r)
            _add(sidecars, r)
            peak = dict(sidecars)
        else:
            peak = dict(r)
            _add(peak, sidecars)
        _max(init_peak, peak)
    _max(reqs, init_peak)
    _add(reqs, to_resources(spec.get("overhead")))
    return reqs
