"""CEL, the Common Expression Language, as the apiserver evaluates it: CRD
validation rules (x-kubernetes-validations, kybern.api.celvalidation) and
admission webhooks' matchConditions.

Parsing and evaluation are cel-python's (`celpy`); this module adds what
kube-apiserver's CEL environment has on top of standard CEL (the Kubernetes
libraries of k8s.io/apiserver/pkg/cel/library and cel-go's string extensions):

- strings: charAt, indexOf, lastIndexOf, lowerAscii, upperAscii, replace,
  split, substring, trim, join, reverse, format (%s %d %f %v only);
- lists: isSorted, sum, min, max, indexOf, lastIndexOf; regex: find, findAll
  (RE2, as matches());
- url(), isURL() and getScheme/getHost/getHostname/getPort/getEscapedPath/getQuery;
- ip(), isIP(), cidr(), isCIDR() and family/isLoopback/isUnspecified/
  isLinkLocalMulticast/isLinkLocalUnicast/isGlobalUnicast/containsIP/containsCIDR/
  prefixLength/masked/ip;
- quantity(), isQuantity() and compareTo/isLessThan/isGreaterThan/add/sub/
  asInteger/asApproximateFloat/isInteger/sign;
- sets.contains, sets.equivalent, sets.intersects; cel.bind(v, init, body)
  (rewritten as `[init].map(v, body)[0]`); strings.quote();
- optionals: optional syntax (`x.?f`, `x[?k]`, `optional.of()`, `optional.none()`,
  `optional.ofNonZeroValue()`, rewritten to library calls before parsing) and
  hasValue(), value(), orValue(), or() (also for optionalOldSelf);
- the `authorizer` of admission expressions (group/resource/subresource/
  namespace/name/path/serviceAccount, check(), allowed()/reason()/errored()/
  error()): every check is allowed, kybern having no authorization yet.

`compile()` parses once per expression text (a cache shared by every CRD and
webhook) and checks the names it refers to (variables, functions), so a CRD or a
webhook configuration with a rule that cannot run is refused when written, not
on each request. Type checking against the schema (cel-go's checker) and cost
estimation are not done: a rule on a field of the wrong type fails when it runs.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import celpy
import re2  # RE2, as cel-go's regexes: linear time, no backtracking (cel-python depends on it)
from celpy import celtypes
from lark import Token, Tree

from kybern.machinery import quantity as qty

_ENV = celpy.Environment()
MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_BUILTIN_FUNCS = frozenset({
    "size", "contains", "type", "endsWith", "startsWith", "matches", "has", "dyn",
    "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getFullYear", "getMonth", "getHours",
    "getMilliseconds", "getMinutes", "getSeconds", "bool", "bytes", "double", "duration", "int", "list",
    "map", "null_type", "string", "timestamp", "uint"})


class CompileError(Exception):
    """The expression does not compile; str() is upstream's detail text."""


class Unsupported(CompileError):
    """Valid for kube-apiserver's cel-go, but beyond kybern's CEL: optional
    entries in list and map literals (`[?x]`, `{?k: v}`), optMap/optFlatMap,
    the `math` and `format` libraries.
    Writes that carry such expressions are accepted and the expression is not
    evaluated (logged), rather than refusing what upstream accepts."""


_STRINGS = re.compile(r"'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"")
_UNSUPPORTED = re.compile(r"[\[{]\?|\.(?:optMap|optFlatMap)\s*\("
                          r"|\bformat\.[A-Za-z0-9]+\s*\(|\bmath\.[a-z]+\s*\(")


class EvalError(Exception):
    """The expression failed at run time; str() is upstream's wording where known
    (no such key: x, index out of bounds: 5, division by zero, ...)."""


def _err(msg: str) -> celpy.CELEvalError:
    return celpy.CELEvalError(msg)


# -- values -------------------------------------------------------------------
def to_cel(v: Any) -> Any:
    """JSON value -> CEL value (no schema: integers stay int, as dyn)."""
    if isinstance(v, str):
        return celtypes.StringType(v)
    if isinstance(v, bool):
        return celtypes.BoolType(v)
    if isinstance(v, int):
        return celtypes.IntType(v)
    if isinstance(v, float):
        return celtypes.DoubleType(v)
    if isinstance(v, dict):
        return celtypes.MapType({celtypes.StringType(k): to_cel(x) for k, x in v.items()})
    if isinstance(v, list):
        return celtypes.ListType([to_cel(x) for x in v])
    return v  # None


def from_cel(v: Any) -> Any:
    if isinstance(v, (celtypes.BoolType, bool)):
        return bool(v)
    if isinstance(v, celtypes.MapType):
        return {str(k): from_cel(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [from_cel(x) for x in v]
    if isinstance(v, str):
        return str(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v)
    return v


class Optional:
    """cel-go's optional type, as oldSelf is under optionalOldSelf."""
    __slots__ = ("present", "v")

    def __init__(self, v: Any = None, present: bool = False) -> None:
        self.v, self.present = v, present

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Optional) and (self.present, self.v) == (other.present, other.v)

    def __hash__(self) -> int:
        return hash(self.present)


# -- the Kubernetes libraries -------------------------------------------------
def _s(x: Any) -> str:
    if not isinstance(x, str):
        raise TypeError
    return str(x)


def _char_at(s: Any, i: Any) -> Any:
    s = _s(s)
    if i < 0 or i > len(s):
        return _err(f"index out of range: {i}")
    return celtypes.StringType(s[i:i + 1])


def _index_of(x: Any, sub: Any, start: Any = 0) -> Any:
    if isinstance(x, list):
        for i, e in enumerate(x):
            if e == sub:
                return celtypes.IntType(i)
        return celtypes.IntType(-1)
    s = _s(x)
    if start < 0 or start > len(s):
        return _err(f"index out of range: {start}")
    return celtypes.IntType(s.find(_s(sub), int(start)))


def _last_index_of(x: Any, sub: Any, end: Any = None) -> Any:
    if isinstance(x, list):
        for i in range(len(x) - 1, -1, -1):
            if x[i] == sub:
                return celtypes.IntType(i)
        return celtypes.IntType(-1)
    s = _s(x)
    if end is None:
        return celtypes.IntType(s.rfind(_s(sub)))
    if end < 0 or end >= len(s) + 1:
        return _err(f"index out of range: {end}")
    return celtypes.IntType(s.rfind(_s(sub), 0, int(end) + len(sub)))


def _substring(s: Any, start: Any, end: Any = None) -> Any:
    s = _s(s)
    e = len(s) if end is None else int(end)
    if start < 0 or start > len(s):
        return _err(f"index out of range: {start}")
    if e < 0 or e > len(s):
        return _err(f"index out of range: {e}")
    if start > e:
        return _err(f"invalid substring range. start: {start}, end: {e}")
    return celtypes.StringType(s[int(start):e])


def _split(s: Any, sep: Any, n: Any = None) -> Any:
    s, sep = _s(s), _s(sep)
    if n is not None and n == 0:
        return celtypes.ListType([])
    if sep == "":
        parts = list(s)
        if n is not None and n > 0 and len(parts) > n:
            parts = parts[:n - 1] + ["".join(parts[n - 1:])]
    else:
        parts = s.split(sep, -1 if n is None or n < 0 else int(n) - 1)
    return celtypes.ListType([celtypes.StringType(p) for p in parts])


def _replace(s: Any, old: Any, new: Any, n: Any = -1) -> Any:
    return celtypes.StringType(_s(s).replace(_s(old), _s(new), int(n)))


def _join(lst: Any, sep: Any = "") -> Any:
    return celtypes.StringType(_s(sep).join(_s(x) for x in lst))


def _format(fmt: Any, args: Any) -> Any:
    out, it = [], iter(args)

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "%%":
            return "%"
        try:
            a = next(it)
        except StopIteration:
            raise ValueError("too few arguments") from None
        c = m.group(2)
        if c == "d":
            return str(int(a))
        if c == "f":
            return f"%.{m.group(1)[1:] or 6}f" % float(a) if m.group(1) else f"{float(a):f}"
        if c in "sv":
            return _display(a)
        return m.group(0)
    try:
        out.append(re.sub(r"%%|%(\.\d+)?([sdfve])", sub, _s(fmt)))
    except ValueError as e:
        return _err(str(e))
    return celtypes.StringType("".join(out))


def _display(a: Any) -> str:
    if isinstance(a, (celtypes.BoolType, bool)):
        return "true" if a else "false"
    if isinstance(a, str):
        return str(a)
    if isinstance(a, list):
        return "[" + ", ".join(_display(x) for x in a) + "]"
    if a is None:
        return "null"
    return str(a)


def _is_sorted(lst: Any) -> Any:
    return celtypes.BoolType(all(lst[i] <= lst[i + 1] for i in range(len(lst) - 1)))


def _sum(lst: Any) -> Any:
    if not lst:
        return celtypes.IntType(0)
    total = lst[0]
    for x in lst[1:]:
        total = total + x
    return total


def _min(lst: Any) -> Any:
    return min(lst) if lst else _err("min called on empty list")


def _max(lst: Any) -> Any:
    return max(lst) if lst else _err("max called on empty list")


def _find(s: Any, pat: Any) -> Any:
    try:
        m = re2.search(_s(pat), _s(s))
    except re2.error as e:
        return _err(f"regex compile error: {e}")
    return celtypes.StringType(m.group(0) if m else "")


def _find_all(s: Any, pat: Any, n: Any = -1) -> Any:
    try:
        found = [m.group(0) for m in re2.finditer(_s(pat), _s(s))]
    except re2.error as e:
        return _err(f"regex compile error: {e}")
    if n >= 0:
        found = found[:n]
    return celtypes.ListType([celtypes.StringType(x) for x in found])


# url
class URL:
    __slots__ = ("parts", "raw")

    def __init__(self, raw: str) -> None:
        self.raw, self.parts = raw, urlsplit(raw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, URL) and self.raw == other.raw

    def __str__(self) -> str:
        return self.raw

    def __hash__(self) -> int:
        return hash(self.raw)


def _parse_url(s: str) -> URL | None:
    if not s or " " in s or not (s.startswith("/") or re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*:", s)):
        return None
    try:
        u = URL(s)
        _ = u.parts.port
    except ValueError:
        return None
    return u


def _url(s: Any) -> Any:
    u = _parse_url(_s(s))
    return u if u is not None else _err(f"URL parse error during conversion from string: {s}")


def _host(u: URL) -> str:
    netloc = u.parts.netloc.rsplit("@", 1)[-1]
    return netloc


def _get_hostname(u: Any) -> Any:
    h = _host(u)
    if h.startswith("["):
        return celtypes.StringType(h[1:h.index("]")])
    return celtypes.StringType(h.rsplit(":", 1)[0] if ":" in h else h)


def _get_port(u: Any) -> Any:
    h = _host(u)
    if h.startswith("["):
        rest = h[h.index("]") + 1:]
        return celtypes.StringType(rest[1:] if rest.startswith(":") else "")
    return celtypes.StringType(h.rsplit(":", 1)[1] if ":" in h else "")


# ip / cidr
class IP:
    __slots__ = ("addr",)

    def __init__(self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        self.addr = addr

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IP) and self.addr == other.addr

    def __str__(self) -> str:
        return str(self.addr)

    def __hash__(self) -> int:
        return hash(self.addr)


class CIDR:
    __slots__ = ("iface",)

    def __init__(self, iface: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> None:
        self.iface = iface

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CIDR) and self.iface == other.iface

    def __str__(self) -> str:
        return str(self.iface)

    def __hash__(self) -> int:
        return hash(self.iface)


def _parse_ip(s: str) -> IP | None:
    if "%" in s:
        return None  # zones are refused, as upstream
    try:
        a = ipaddress.ip_address(s)
    except ValueError:
        return None
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        return None
    return IP(a)


def _ip(s: Any) -> Any:
    if isinstance(s, CIDR):
        return IP(s.iface.ip)
    ip = _parse_ip(_s(s))
    return ip if ip is not None else _err(f"IP Address {s!s} parse error during conversion from string: "
                                          f"ParseAddr({str(s)!r}): unable to parse IP")


def _parse_cidr(s: str) -> CIDR | None:
    if "/" not in s:
        return None
    try:
        return CIDR(ipaddress.ip_interface(s))
    except ValueError:
        return None


def _cidr(s: Any) -> Any:
    c = _parse_cidr(_s(s))
    return c if c is not None else _err(f"network address parse error during conversion from string: "
                                        f"netip.ParsePrefix({str(s)!r}): bad prefix")


def _contains_ip(c: Any, ip: Any) -> Any:
    if isinstance(ip, str):
        ip = _ip(ip)
        if not isinstance(ip, IP):
            return ip
    return celtypes.BoolType(ip.addr in c.iface.network)


def _contains_cidr(c: Any, other: Any) -> Any:
    if isinstance(other, str):
        other = _cidr(other)
        if not isinstance(other, CIDR):
            return other
    a, b = c.iface.network, other.iface.network
    return celtypes.BoolType(a.version == b.version and b.subnet_of(a))  # type: ignore[arg-type]


# quantity
class Quantity:
    __slots__ = ("raw", "value")

    def __init__(self, raw: str, value: Decimal) -> None:
        self.raw, self.value = raw, value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Quantity) and self.value == other.value

    def __str__(self) -> str:
        return self.raw

    def __hash__(self) -> int:
        return hash(self.value)


def _parse_quantity(s: str) -> Quantity | None:
    try:
        return Quantity(s, qty.value(s))
    except (ValueError, TypeError, ArithmeticError):
        return None


def _quantity(s: Any) -> Any:
    q = _parse_quantity(_s(s))
    return q if q is not None else _err("quantities must match the regular expression "
                                        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


def _q(x: Any) -> Decimal:
    if isinstance(x, Quantity):
        return x.value
    return Decimal(int(x))


def _as_integer(q: Any) -> Any:
    v = q.value
    if v != v.to_integral_value() or abs(v) > 2 ** 63 - 1:
        return _err("cannot convert value to integer")
    return celtypes.IntType(int(v))


def _cmp(a: Any, b: Any) -> int:
    x, y = _q(a), _q(b)
    return -1 if x < y else (1 if x > y else 0)


def _qtext(v: Decimal) -> str:
    return qty.text(v)


def _is_less_than(a: Any, b: Any) -> Any:
    if isinstance(a, (URL, IP, CIDR)):
        raise TypeError
    return celtypes.BoolType(_cmp(a, b) < 0)


def _is_greater_than(a: Any, b: Any) -> Any:
    return celtypes.BoolType(_cmp(a, b) > 0)


def _add(a: Any, b: Any) -> Any:
    v = _q(a) + _q(b)
    return Quantity(_qtext(v), v)


def _sub(a: Any, b: Any) -> Any:
    v = _q(a) - _q(b)
    return Quantity(_qtext(v), v)


def _opt_value(o: Any) -> Any:
    if not isinstance(o, Optional):
        raise TypeError
    return o.v if o.present else _err("optional.none() dereference")


# authorizer (admission matchConditions, ValidatingAdmissionPolicy): check() asks the
# apiserver's authorizer chain through the function the caller gives (authz.cel_check);
# without one every check is allowed
class AuthzCheck:
    """authorizer.group(g).resource(r)...: what a check() asks about."""
    __slots__ = ("fields", "fn")

    def __init__(self, fn: Any = None, **fields: str) -> None:
        self.fn = fn
        self.fields = fields

    def with_(self, **more: str) -> AuthzCheck:
        return AuthzCheck(self.fn, **{**self.fields, **more})


class _AuthzMap(celtypes.MapType):
    """The `authorizer` variable: a map (so `authorizer.requestResource` reads) that
    carries the check function to the checks built from it."""
    fn: Any = None


class AuthzDecision:
    __slots__ = ("allowed", "reason")

    def __init__(self, allowed: bool, reason: str) -> None:
        self.allowed, self.reason = allowed, reason


def authorizer(request_resource: dict[str, str] | None = None, check: Any = None) -> Any:
    """The `authorizer` variable. `check(fields, verb) -> (allowed, reason)` decides."""
    out = _AuthzMap()
    out.fn = check
    if request_resource is not None:
        out[celtypes.StringType("requestResource")] = AuthzCheck(check, **request_resource)
    return out


def _authz_step(key: str) -> Any:
    def step(target: Any, value: Any) -> Any:
        base = target if isinstance(target, AuthzCheck) else AuthzCheck(getattr(target, "fn", None))
        return base.with_(**{key: _s(value)})
    return step


def _check(target: Any, verb: Any) -> Any:
    if not isinstance(target, AuthzCheck):
        raise TypeError
    if target.fn is None:
        return AuthzDecision(True, "")
    allowed, reason = target.fn(dict(target.fields), _s(verb))
    return AuthzDecision(allowed, reason)


def _wrap(fn: Any) -> Any:
    """A library function whose wrong argument types become CEL's 'no such overload'."""
    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        try:
            return fn(*args)
        except (TypeError, AttributeError):
            return _err("no such overload")
    return call


_LIB: dict[str, Any] = {
    # strings (cel-go ext.Strings)
    "charAt": _char_at, "indexOf": _index_of, "lastIndexOf": _last_index_of,
    "lowerAscii": lambda s: celtypes.StringType(_s(s).lower()),
    "upperAscii": lambda s: celtypes.StringType(_s(s).upper()),
    "replace": _replace, "split": _split, "substring": _substring,
    "trim": lambda s: celtypes.StringType(_s(s).strip()),
    "join": _join, "reverse": lambda s: celtypes.StringType(_s(s)[::-1]), "format": _format,
    # lists
    "isSorted": _is_sorted, "sum": _sum, "min": _min, "max": _max,
    # regex
    "find": _find, "findAll": _find_all,
    # urls
    "url": _url, "isURL": lambda s: celtypes.BoolType(_parse_url(_s(s)) is not None),
    "getScheme": lambda u: celtypes.StringType(u.parts.scheme),
    "getHost": lambda u: celtypes.StringType(_host(u)),
    "getHostname": _get_hostname, "getPort": _get_port,
    "getEscapedPath": lambda u: celtypes.StringType(u.parts.path),
    "getQuery": lambda u: celtypes.MapType({
        celtypes.StringType(k): celtypes.ListType([celtypes.StringType(x) for x in v])
        for k, v in parse_qs(u.parts.query, keep_blank_values=True).items()}),
    # ip / cidr
    "ip": _ip, "isIP": lambda s: celtypes.BoolType(_parse_ip(_s(s)) is not None),
    "cidr": _cidr, "isCIDR": lambda s: celtypes.BoolType(_parse_cidr(_s(s)) is not None),
    "family": lambda x: celtypes.IntType((x.addr if isinstance(x, IP) else x.iface).version),
    "isLoopback": lambda x: celtypes.BoolType(x.addr.is_loopback),
    "isUnspecified": lambda x: celtypes.BoolType(x.addr.is_unspecified),
    "isLinkLocalMulticast": lambda x: celtypes.BoolType(
        x.addr in ipaddress.ip_network("224.0.0.0/24" if x.addr.version == 4 else "ff02::/16")),
    "isLinkLocalUnicast": lambda x: celtypes.BoolType(x.addr.is_link_local),
    "isGlobalUnicast": lambda x: celtypes.BoolType(
        not (x.addr.is_loopback or x.addr.is_multicast or x.addr.is_unspecified or x.addr.is_link_local
             or (x.addr.version == 4 and x.addr == ipaddress.IPv4Address("255.255.255.255")))),
    "containsIP": _contains_ip, "containsCIDR": _contains_cidr,
    "prefixLength": lambda c: celtypes.IntType(c.iface.network.prefixlen),
    "masked": lambda c: CIDR(ipaddress.ip_interface(str(c.iface.network))),
    # quantity
    "quantity": _quantity, "isQuantity": lambda s: celtypes.BoolType(_parse_quantity(_s(s)) is not None),
    "compareTo": lambda a, b: celtypes.IntType(_cmp(a, b)),
    "isLessThan": _is_less_than, "isGreaterThan": _is_greater_than, "add": _add, "sub": _sub,
    "asInteger": _as_integer, "asApproximateFloat": lambda q: celtypes.DoubleType(float(q.value)),
    "isInteger": lambda q: celtypes.BoolType(q.value == q.value.to_integral_value()
                                             and abs(q.value) <= 2 ** 63 - 1),
    "sign": lambda q: celtypes.IntType((q.value > 0) - (q.value < 0)),
    # authorizer
    "group": _authz_step("group"), "resource": _authz_step("resource"), "subresource": _authz_step("subresource"),
    "namespace": _authz_step("namespace"), "name": _authz_step("name"), "path": _authz_step("path"),
    "serviceAccount": lambda a, ns, n: AuthzCheck(getattr(a, "fn", None),
                                                  user=f"system:serviceaccount:{_s(ns)}:{_s(n)}"),
    "check": _check, "allowed": lambda d: celtypes.BoolType(d.allowed),
    "reason": lambda d: celtypes.StringType(d.reason), "errored": lambda d: celtypes.BoolType(False),
    "error": lambda d: celtypes.StringType(""),
    # optionals
    "hasValue": lambda o: celtypes.BoolType(o.present), "value": _opt_value,
    "orValue": lambda o, d: o.v if o.present else d,
}
FUNCTIONS: dict[str, Any] = {k: _wrap(v) for k, v in _LIB.items()}


def _numeric_ops() -> dict[str, Any]:
    """Comparisons across int, uint and double, as cel-go compares them in
    kube-apiserver (heterogeneous equality, cross-type numeric comparisons):
    `self.ratio < 2`, `self.count == 2.0`. Other operands: celpy's own."""
    from celpy import evaluation as ev

    def numeric(x: Any) -> bool:
        return isinstance(x, (celtypes.IntType, celtypes.UintType, celtypes.DoubleType)) and \
            not isinstance(x, celtypes.BoolType)

    out = {}
    for name, op in (("_<_", "__lt__"), ("_<=_", "__le__"), ("_>_", "__gt__"), ("_>=_", "__ge__"),
                     ("_==_", "__eq__"), ("_!=_", "__ne__")):
        base = ev.base_functions[name]

        def call(a: Any, b: Any, base: Any = base, op: str = op) -> Any:
            if numeric(a) and numeric(b) and type(a) is not type(b):
                return celtypes.BoolType(getattr(float(a), op)(float(b)))
            return base(a, b)
        out[name] = call
    return out


FUNCTIONS.update(_numeric_ops())


class _Sets:
    """The `sets` of Kubernetes' sets library: sets.contains(a, b),
    sets.equivalent(a, b), sets.intersects(a, b) on lists."""


SETS = _Sets()
GLOBALS = frozenset({"sets"})


def _sets_fn(name: str, test: Any) -> Any:
    from celpy import evaluation as ev

    base = ev.base_functions.get(name) or FUNCTIONS.get(name)

    def call(target: Any, *args: Any) -> Any:
        if isinstance(target, _Sets):
            if len(args) != 2 or not all(isinstance(a, list) for a in args):
                return _err("no such overload")
            return celtypes.BoolType(test(args[0], args[1]))
        if base is None:
            return _err("no such overload")
        return base(target, *args)
    return call


FUNCTIONS["contains"] = _sets_fn("contains", lambda a, b: all(x in a for x in b))
FUNCTIONS["equivalent"] = _sets_fn("equivalent", lambda a, b: all(x in a for x in b) and all(x in b for x in a))
FUNCTIONS["intersects"] = _sets_fn("intersects", lambda a, b: any(x in a for x in b))


KNOWN_FUNCTIONS = _BUILTIN_FUNCS | set(FUNCTIONS) | MACROS | GLOBALS


# -- compiling ------------------------------------------------------------------
class Program:
    """One compiled expression: `run(activation)` -> CEL value or EvalError."""
    __slots__ = ("idents", "runner", "source", "tree")

    def __init__(self, source: str, tree: Tree, idents: frozenset[str]) -> None:
        self.source = source
        self.tree = tree
        self.runner = _ENV.program(tree, functions=FUNCTIONS)
        self.idents = idents

    def selections(self) -> list[list[tuple[str, int]]]:
        """Every field selection chain from a variable (`self.a.b` -> self, a, b),
        each name with the 1-based column of the dot before it, in source order."""
        out: list[list[tuple[str, int]]] = []
        for node in self.tree.iter_subtrees_topdown():
            if node.data == "member_dot":
                names = _chain(node)
                if names is not None:
                    out.append([(str(t), (getattr(t, "column", None) or 2) - 1) for t in names])
        return out

    def caret(self, col: int) -> str:
        """cel-go's excerpt under an error: the source line and a caret at col."""
        return f"\n | {self.source}\n | {'.' * (col - 1)}^"

    def uses(self, name: str) -> bool:
        return name in self.idents

    def run(self, activation: dict[str, Any]) -> Any:
        if "sets" in self.idents and "sets" not in activation:
            activation = {**activation, "sets": SETS}
        try:
            out = self.runner.evaluate(activation)
        except celpy.CELEvalError as e:
            raise EvalError(_eval_message(e)) from None
        except (RecursionError, ZeroDivisionError, OverflowError, TypeError, ValueError, KeyError,
                IndexError, AttributeError) as e:
            raise EvalError(str(e) or type(e).__name__) from None
        if isinstance(out, celpy.CELEvalError):
            raise EvalError(_eval_message(out))
        return out


def _chain(node: Any) -> list[Any] | None:
    if not isinstance(node, Tree):
        return None
    if node.data == "member_dot":
        base = _chain(node.children[0])
        return None if base is None else [*base, node.children[1]]
    if node.data in ("member", "primary") and len(node.children) == 1:
        return _chain(node.children[0])
    if node.data == "ident":
        return [node.children[0]]
    return None


def _eval_message(e: Exception) -> str:
    msg = str(e.args[0]) if e.args else str(e)
    m = re.match(r"no such member in mapping: '(.*)'", msg)
    if m:
        return f"no such key: {m.group(1)}"
    if msg == "no such key" and len(e.args) > 2 and e.args[2]:
        return f"no such key: {e.args[2][0]}"
    if msg.startswith("undeclared reference"):
        return msg.split(" (in activation", 1)[0]
    if msg == "modulus or divide by zero":
        return "division by zero"
    if msg == "return error for overflow":
        return "integer overflow"
    if msg == "invalid_argument":
        return "index out of bounds"
    if msg.startswith("found no matching overload") or msg == "no such overload":
        return "no such overload"
    return msg


def _walk(tree: Tree, idents: set[str], calls: set[str], bound: set[str]) -> None:
    for node in tree.iter_subtrees():
        if node.data == "ident":
            idents.add(str(node.children[0]))
        elif node.data == "ident_arg":
            calls.add(str(node.children[0]))
        elif node.data in ("member_dot_arg",):
            name = str(node.children[1])
            calls.add(name)
            if name in MACROS and len(node.children) > 2 and isinstance(node.children[2], Tree):
                args = node.children[2].children
                if args:
                    toks = [t for t in args[0].scan_values(lambda v: isinstance(v, Token))]
                    if len(toks) == 1:
                        bound.add(str(toks[0]))


# -- optional syntax (cel-go's optional types), by rewriting to library calls -------
_TOKEN = re.compile(
    r"(?P<str>[rRbB]{0,2}(?:\"\"\"(?:\\.|[^\\])*?\"\"\"|'''(?:\\.|[^\\])*?'''"
    r"|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'))"
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<num>[0-9][0-9A-Za-z_.]*)|(?P<ws>\s+)"
    r"|(?P<op>\.\?|\[\?|&&|\|\||==|!=|<=|>=|.)", re.DOTALL)
_OPTIONAL_HINT = re.compile(r"\.\?[A-Za-z_]|\[\?|\boptional\.(?:of|none|ofNonZeroValue)\s*\(")
_OPT_CTORS = {"of": "optOf_", "none": "optNone_", "ofNonZeroValue": "optOfNonZero_"}


def _rewrite_optionals(source: str) -> str:
    """`a.?b`, `a[?k]`, `optional.of(x)`, `optional.none()` (and selections after
    an optional in the same chain, which cel-go keeps optional) as calls of this
    module's optSelect_/optIndex_/optOf_/optNone_ functions, which cel-python runs.
    Optional list and map literal entries (`[?x]`, `{?k: v}`) stay unsupported."""
    toks = [(str(m.lastgroup), m.group(0)) for m in _TOKEN.finditer(source)]
    out: list[str] = []
    flags = [False]      # per bracket depth: the current postfix chain is optional
    closers: list[str] = []
    prev = ""            # the last significant token (its kind for names and literals)
    i, n = 0, len(toks)

    def nxt(j: int) -> tuple[int, str, str]:
        while j < n and toks[j][0] == "ws":
            j += 1
        return (j, toks[j][0], toks[j][1]) if j < n else (j, "", "")

    while i < n:
        kind, text = toks[i]
        if kind == "ws":
            out.append(text)
            i += 1
            continue
        postfix = prev in ("ident", "str", "num", ")", "]", "}")
        if kind == "ident" and text == "optional" and prev != ".":
            j, _, t2 = nxt(i + 1)
            j3, _, t3 = nxt(j + 1)
            if t2 == "." and t3 in _OPT_CTORS:
                out.append(_OPT_CTORS[t3])
                i, prev = j3 + 1, "ident"
                continue
        if text == ".?" and postfix:
            j, k2, t2 = nxt(i + 1)
            if k2 != "ident":
                raise CompileError("ERROR: <input>:1:1: Syntax error: expected a field name after '.?'")
            out.append(f".optSelect_('{t2}')")
            flags[-1] = True
            i, prev = j + 1, ")"
            continue
        if text == "." and flags[-1]:
            j, k2, t2 = nxt(i + 1)
            _, _, tn = nxt(j + 1)
            if k2 == "ident" and tn != "(":
                out.append(f".optSelect_('{t2}')")
                i, prev = j + 1, ")"
                continue
            flags[-1] = False  # a method call ends the optional chain (orValue, value, hasValue, ...)
        if text in ("[?", "[") and postfix and (text == "[?" or flags[-1]):
            out.append(".optIndex_(")
            flags[-1] = True
            flags.append(False)
            closers.append(")")
            i, prev = i + 1, "("
            continue
        if text in ("(", "[", "{"):
            if not postfix:
                flags[-1] = False
            flags.append(False)
            closers.append({"(": ")", "[": "]", "{": "}"}[text])
            out.append(text)
            i, prev = i + 1, text
            continue
        if text in (")", "]", "}"):
            if len(flags) > 1:
                flags.pop()
            out.append(closers.pop() if closers else text)
            i, prev = i + 1, text
            continue
        if kind != "ident" and text != ".":
            flags[-1] = False
        out.append(text)
        prev = kind if kind in ("ident", "str", "num") else text
        i += 1
    return "".join(out)


def _opt_select(x: Any, name: Any) -> Any:
    if isinstance(x, Optional):
        if not x.present:
            return x
        x = x.v
    if isinstance(x, dict):
        k = celtypes.StringType(name)
        return Optional(x[k], True) if k in x else Optional()
    return _err("no such overload")


def _opt_index(x: Any, k: Any) -> Any:
    if isinstance(x, Optional):
        if not x.present:
            return x
        x = x.v
    if isinstance(x, dict):
        return Optional(x[k], True) if k in x else Optional()
    if isinstance(x, list) and isinstance(k, int) and not isinstance(k, bool):
        return Optional(x[k], True) if 0 <= k < len(x) else Optional()
    return _err("no such overload")


def _is_zero(v: Any) -> bool:
    return v is None or (not isinstance(v, (URL, IP, CIDR, Quantity, Optional)) and not v)


FUNCTIONS.update({
    "optSelect_": _opt_select, "optIndex_": _opt_index,
    "optOf_": lambda v: Optional(v, True), "optNone_": lambda: Optional(),
    "optOfNonZero_": lambda v: Optional() if _is_zero(v) else Optional(v, True),
    "or": _wrap(lambda o, other: o if o.present else other),
})
KNOWN_FUNCTIONS = KNOWN_FUNCTIONS | {"optSelect_", "optIndex_", "optOf_", "optNone_", "optOfNonZero_", "or"}


_BIND_HINT = re.compile(r"\bcel\s*\.\s*bind\s*\(|\bstrings\s*\.\s*quote\s*\(")


def _rewrite_bind(source: str) -> str:
    """`cel.bind(v, init, body)` as `[init].map(v, body)[0]` (the same value: init
    evaluated once, body with v bound to it), `strings.quote(s)` as a library call."""
    toks = [m.group(0) for m in _TOKEN.finditer(source)]
    sig = [j for j, t in enumerate(toks) if not t.isspace()]

    def at(k: int) -> str:
        return toks[sig[k]] if k < len(sig) else ""

    for k in range(len(sig)):
        if at(k) == "strings" and at(k + 1) == "." and at(k + 2) == "quote" and at(k + 3) == "(" and \
                (k == 0 or at(k - 1) != "."):
            head = "".join(toks[:sig[k]])
            return _rewrite_bind(head + "stringsQuote_" + "".join(toks[sig[k + 3]:]))
        if at(k) == "cel" and at(k + 1) == "." and at(k + 2) == "bind" and at(k + 3) == "(" and \
                (k == 0 or at(k - 1) != "."):
            depth, args, start = 0, [], sig[k + 3] + 1
            for j in range(sig[k + 3], len(toks)):
                t = toks[j]
                if t in ("(", "[", "{", "[?", ".optIndex_("):
                    depth += 1
                elif t in (")", "]", "}"):
                    depth -= 1
                    if depth == 0:
                        args.append("".join(toks[start:j]))
                        end = j
                        break
                elif t == "," and depth == 1:
                    args.append("".join(toks[start:j]))
                    start = j + 1
            else:
                raise CompileError("ERROR: <input>:1:1: Syntax error: unbalanced cel.bind(")
            if len(args) != 3 or not re.fullmatch(r"\s*[A-Za-z_][A-Za-z0-9_]*\s*", args[0]):
                raise CompileError("ERROR: <input>:1:1: cel.bind() takes a variable name and two expressions")
            head, tail = "".join(toks[:sig[k]]), "".join(toks[end + 1:])
            return _rewrite_bind(f"{head}[{args[1]}].map({args[0].strip()}, {args[2]})[0]{tail}")
    return source


def _quote(s: Any) -> Any:
    out = ['"']
    for ch in _s(s):
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(ch)])
        elif ord(ch) < 0x20 or ord(ch) == 0x7f:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return celtypes.StringType("".join(out))


FUNCTIONS["stringsQuote_"] = _wrap(_quote)
KNOWN_FUNCTIONS = KNOWN_FUNCTIONS | {"stringsQuote_"}


@functools.lru_cache(maxsize=4096)
def _compile(source: str, variables: frozenset[str]) -> Program:
    stripped = _STRINGS.sub("''", source)
    if _BIND_HINT.search(stripped):
        rewritten = _rewrite_bind(source)
        if rewritten != source:
            return _compile(rewritten, variables)
    if _OPTIONAL_HINT.search(stripped):
        rewritten = _rewrite_optionals(source)
        if rewritten != source:
            return _compile(rewritten, variables)
    m = _UNSUPPORTED.search(stripped)
    if m:
        raise Unsupported(f"{m.group(0).rstrip('( ')!r} is not supported by kybern's CEL (cel-python)")
    try:
        tree = _ENV.compile(source)
    except celpy.CELParseError as e:
        line, col = getattr(e, "line", None) or 1, getattr(e, "column", None) or 1
        text = e.args[0] if e.args else str(e)
        lines = str(text).rstrip("\n").split("\n")
        src = lines[0] if lines else source
        raise CompileError(f"ERROR: <input>:{line}:{col}: Syntax error: mismatched input\n | {src}\n | "
                           f"{'.' * (max(col, 1) - 1)}^") from None
    idents: set[str] = set()
    calls: set[str] = set()
    bound: set[str] = set()
    _walk(tree, idents, calls, bound)
    for name in sorted(idents - bound - variables):
        if name not in KNOWN_FUNCTIONS:
            raise CompileError(f"ERROR: <input>:1:1: undeclared reference to '{name}' (in container '')")
    for name in sorted(calls - KNOWN_FUNCTIONS):
        raise CompileError(f"ERROR: <input>:1:1: undeclared reference to '{name}' (in container '')")
    return Program(source, tree, frozenset(idents))


def compile(source: str, variables: frozenset[str] | set[str]) -> Program:
    """The program for `source` with these variables declared (cached by text)."""
    return _compile(source, frozenset(variables))


def is_bool(v: Any) -> bool:
    return isinstance(v, (celtypes.BoolType, bool))


def match_conditions(conditions: Any, activation: dict[str, Any],
                     uncompiled: str = "no such overload") -> tuple[bool, list[str]]:
    """matchConditions as upstream evaluates them for webhooks and policies: (False, _)
    as soon as one is false; otherwise (True, the errors of those that failed to run
    or gave no bool). `conditions`: (expression, program or None) pairs; a missing
    program is an error reading `uncompiled`."""
    errs: list[str] = []
    for expr, prog in conditions:
        if prog is None:
            errs.append(f"expression '{expr}' resulted in error: {uncompiled}")
            continue
        try:
            v = prog.run(activation)
        except EvalError as e:
            errs.append(f"expression '{expr}' resulted in error: {e}")
            continue
        if not is_bool(v):
            errs.append(f"expression '{expr}' resulted in error: no such overload")
        elif not v:
            return False, []
    return True, errs


def is_true(v: Any) -> bool:
    return isinstance(v, (celtypes.BoolType, bool)) and bool(v)
