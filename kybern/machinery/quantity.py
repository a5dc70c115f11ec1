"""resource.Quantity for the apiserver's admission (LimitRanger, ResourceQuota):
parsing to an exact Decimal, and the canonical text Quantity.String() gives
("1.5Gi" -> "1536Mi", "0.5" -> "500m", "1000" -> "1k"), which upstream's
messages quote."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -3, "u": -2, "m": -1, "": 0, "k": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
_DEC_SUFFIX = {v: k for k, v in _DECIMAL.items()}
_BIN_SUFFIX = {v: k for k, v in _BINARY.items()}
_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:([eE][+-]?[0-9]+)|([a-zA-Z]*))$")


def parse(value: object) -> tuple[Decimal, str]:
    """(amount, format): format is "BinarySI", "DecimalSI" or "DecimalExponent"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Decimal(str(value)), "DecimalSI"
    m = _QUANTITY.match(str(value).strip())
    if not m:
        raise ValueError(f"quantities must match the regular expression: {value!r}")
    try:
        num = Decimal(m.group(1))
    except InvalidOperation:
        raise ValueError(f"invalid quantity {value!r}") from None
    if m.group(2):
        return num * (Decimal(10) ** int(m.group(2)[1:])), "DecimalExponent"
    suffix = m.group(3) or ""
    if suffix in _BINARY:
        return num * (Decimal(1024) ** _BINARY[suffix]), "BinarySI"
    if suffix in _DECIMAL:
        return num * (Decimal(1000) ** _DECIMAL[suffix]), "DecimalSI"
    raise ValueError(f"quantities must match the regular expression: {value!r}")


def value(q: object) -> Decimal:
    return parse(q)[0]


def _decimal_text(amount: Decimal) -> str:
    """DecimalSI canonical form: the largest power of 1000 that leaves an integer,
    rounded up to nano units as Quantity does."""
    nanos = (amount * Decimal(10) ** 9).to_integral_value(rounding="ROUND_CEILING")
    if nanos == 0:
        return "0"
    exp = -3
    n = int(nanos)
    while exp < 6 and n % 1000 == 0:
        n //= 1000
        exp += 1
    return f"{n}{_DEC_SUFFIX[exp]}"


def _binary_text(amount: Decimal) -> str:
    if amount == amount.to_integral_value() and abs(amount) >= 1024:
        n, exp = int(amount), 0
        while exp < 6 and n % 1024 == 0 and n != 0:
            n //= 1024
            exp += 1
        if exp:
            return f"{n}{_BIN_SUFFIX[exp]}"
    return _decimal_text(amount)


def canonical(q: object) -> str:
    """Quantity.String() of `q` (a string or a number)."""
    amount, fmt = parse(q)
    return text(amount, fmt)


def text(amount: Decimal, fmt: str = "DecimalSI") -> str:
    """`amount` as Quantity.String() writes it in format `fmt`."""
    if fmt == "BinarySI":
        return _binary_text(amount)
    if fmt == "DecimalExponent":  # mantissa and an exponent that is a multiple of 3, uncapped
        nanos = int((amount * Decimal(10) ** 9).to_integral_value(rounding="ROUND_CEILING"))
        if nanos == 0:
            return "0"
        exp = -9
        while nanos % 1000 == 0:
            nanos //= 1000
            exp += 3
        return f"{nanos}e{exp}" if exp else str(nanos)
    return _decimal_text(amount)
