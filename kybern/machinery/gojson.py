"""The error Go's encoding/json gives for bytes it cannot unmarshal into a
map[string]interface{}: its scanner's syntax errors ("invalid character 'b'
looking for beginning of object key string", "unexpected end of JSON input") and
the type error for a valid non-object. Upstream's validation quotes them (a
Secret's `.dockerconfigjson`), so the messages follow encoding/json/scanner.go."""

from __future__ import annotations

_WS = b" \t\r\n"


def _quote_char(c: int) -> str:
    """quoteChar: 'x', with Go's escapes for the rest."""
    if c == ord("'"):
        return "'\\''"
    if c == ord('"'):
        return "'\"'"
    ch = chr(c)
    if ch.isprintable() and c < 0x80:
        return f"'{ch}'"
    escapes = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}
    if c in escapes:
        return f"'{escapes[c]}'"
    return f"'\\x{c:02x}'" if c < 0x80 else f"'{ch}'"


class _Stop(Exception):
    pass


def unmarshal_map_error(data: bytes) -> str | None:
    """None when `data` unmarshals into a map[string]interface{}, else Go's error text."""
    try:
        kind = _scan(data)
    except _Stop as e:
        return str(e)
    if kind in ("object", "null"):
        return None
    return f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"


def syntax_error(data: bytes) -> str | None:
    """None when `data` is valid JSON, else the scanner's error text."""
    try:
        _scan(data)
    except _Stop as e:
        return str(e)
    return None


def _scan(data: bytes) -> str:
    """Walk `data` as encoding/json's checkValid does; the top value's kind if valid."""
    pos = 0
    n = len(data)

    def fail(c: int, context: str) -> _Stop:
        return _Stop(f"invalid character {_quote_char(c)} {context}")

    def eof() -> _Stop:
        return _Stop("unexpected end of JSON input")

    def skip_ws() -> None:
        nonlocal pos
        while pos < n and data[pos] in _WS:
            pos += 1

    def literal(word: bytes) -> None:
        nonlocal pos
        for i, want in enumerate(word[1:], 1):
            if pos + i >= n:  # the scanner's eof steps a space through the literal
                raise fail(0x20, f"in literal {word.decode()} (expecting '{chr(want)}')")
            if data[pos + i] != want:
                raise fail(data[pos + i], f"in literal {word.decode()} (expecting '{chr(want)}')")
        pos += len(word)

    def string() -> None:
        nonlocal pos
        pos += 1
        while True:
            if pos >= n:
                raise eof()
            c = data[pos]
            if c == ord('"'):
                pos += 1
                return
            if c == ord("\\"):
                pos += 1
                if pos >= n:
                    raise fail(0x20, "in string escape code")
                e = data[pos]
                if e == ord("u"):
                    for _ in range(4):
                        pos += 1
                        if pos >= n:
                            raise fail(0x20, "in \\u hexadecimal character escape")
                        if chr(data[pos]) not in "0123456789abcdefABCDEF":
                            raise fail(data[pos], "in \\u hexadecimal character escape")
                elif e not in b'bfnrt\\/"':
                    raise fail(e, "in string escape code")
            elif c < 0x20:
                raise fail(c, "in string literal")
            pos += 1

    def digits() -> int:
        nonlocal pos
        start = pos
        while pos < n and 0x30 <= data[pos] <= 0x39:
            pos += 1
        return pos - start

    def number() -> None:
        nonlocal pos
        if data[pos] == ord("-"):
            pos += 1
            if pos >= n:
                raise fail(0x20, "in numeric literal")
            if not 0x30 <= data[pos] <= 0x39:
                raise fail(data[pos], "in numeric literal")
        if data[pos] == ord("0"):
            pos += 1
        else:
            digits()
        if pos < n and data[pos] == ord("."):
            pos += 1
            if pos >= n:
                raise fail(0x20, "after decimal point in numeric literal")
            if not digits():
                raise fail(data[pos], "after decimal point in numeric literal")
        if pos < n and data[pos] in b"eE":
            pos += 1
            if pos < n and data[pos] in b"+-":
                pos += 1
            if pos >= n:
                raise fail(0x20, "in exponent of numeric literal")
            if not digits():
                raise fail(data[pos], "in exponent of numeric literal")

    def value() -> str:
        nonlocal pos
        skip_ws()
        if pos >= n:
            raise eof()
        c = data[pos]
        if c == ord("{"):
            pos += 1
            skip_ws()
            if pos < n and data[pos] == ord("}"):
                pos += 1
                return "object"
            while True:
                skip_ws()
                if pos >= n:
                    raise eof()
                if data[pos] != ord('"'):
                    raise fail(data[pos], "looking for beginning of object key string")
                string()
                skip_ws()
                if pos >= n:
                    raise eof()
                if data[pos] != ord(":"):
                    raise fail(data[pos], "after object key")
                pos += 1
                value()
                skip_ws()
                if pos >= n:
                    raise eof()
                if data[pos] == ord(","):
                    pos += 1
                    continue
                if data[pos] == ord("}"):
                    pos += 1
                    return "object"
                raise fail(data[pos], "after object key:value pair")
        if c == ord("["):
            pos += 1
            skip_ws()
            if pos < n and data[pos] == ord("]"):
                pos += 1
                return "array"
            while True:
                value()
                skip_ws()
                if pos >= n:
                    raise eof()
                if data[pos] == ord(","):
                    pos += 1
                    continue
                if data[pos] == ord("]"):
                    pos += 1
                    return "array"
                raise fail(data[pos], "after array element")
        if c == ord('"'):
            string()
            return "string"
        if c == ord("-") or 0x30 <= c <= 0x39:
            number()
            return "number"
        for word, kind in ((b"true", "bool"), (b"false", "bool"), (b"null", "null")):
            if c == word[0]:
                literal(word)
                return kind
        raise fail(c, "looking for beginning of value")

    kind = value()
    skip_ws()
    if pos < n:
        raise fail(data[pos], "after top-level value")
    return kind
