"""The three PATCH flavours kube-apiserver accepts, applied to plain JSON dicts:

- `json_patch(doc, ops)`            application/json-patch+json (RFC 6902)
- `merge_patch(doc, patch)`         application/merge-patch+json (RFC 7386)
- `strategic_merge_patch(doc, patch, schema_lookup)`
                                    application/strategic-merge-patch+json

Strategic merge (list merge keys and strategies from the schema, `$patch`,
`$retainKeys`, `$deleteFromPrimitiveList/`, `$setElementOrder/`) lives in
kybern.machinery.strategicpatch and is re-exported here.

Inputs are never mutated; errors are `StatusError`s worded and coded as upstream's.
"""

from __future__ import annotations

from typing import Any

from kybern.machinery.errors import StatusError, bad_request
from kybern.machinery.strategicpatch import (
    SchemaLookup,
    clone_json,
    strategic_merge_patch,
    unprocessable,
)

__all__ = ["json_patch", "merge_patch", "strategic_merge_patch", "SchemaLookup"]

MAX_JSON_PATCH_OPERATIONS = 10000


# ---------------------------------------------------------------------------
# RFC 6902 JSON patch


class _PointerError(Exception):
    pass


def _parse_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise _PointerError(pointer)
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]


def _index(token: str, length: int, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return length
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise _PointerError(token)
    i = int(token)
    if i > length or (i == length and not allow_end):
        raise _UnprocessableIndex(i)
    return i


class _UnprocessableIndex(Exception):
    def __init__(self, index: int) -> None:
        super().__init__(f"Unable to access invalid index: {index}: invalid index referenced")


def _container(doc: Any, parts: list[str]) -> Any:
    """The parent of the location `parts` points at, or raise _PointerError."""
    node = doc
    for token in parts[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise _PointerError(token)
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(token, len(node), False)]
        else:
            raise _PointerError(token)
    return node


def _get(doc: Any, parts: list[str]) -> Any:
    node = doc
    for token in parts:
        if isinstance(node, dict):
            if token not in node:
                raise _PointerError(token)
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(token, len(node), False)]
        else:
            raise _PointerError(token)
    return node


def _add(doc: Any, parts: list[str], value: Any, path: str) -> Any:
    if not parts:
        return value
    try:
        parent = _container(doc, parts)
    except _PointerError:
        raise unprocessable(f'add operation does not apply: doc is missing path: "{path}": missing value')
    key = parts[-1]
    if isinstance(parent, dict):
        parent[key] = value
    elif isinstance(parent, list):
        parent.insert(_index(key, len(parent), True), value)
    else:
        raise unprocessable(f'add operation does not apply: doc is missing path: "{path}": missing value')
    return doc


def _remove(doc: Any, parts: list[str], path: str, op: str = "remove") -> Any:
    try:
        parent = _container(doc, parts) if parts else None
        key = parts[-1] if parts else ""
        if isinstance(parent, dict) and key in parent:
            return parent.pop(key)
        if isinstance(parent, list):
            return parent.pop(_index(key, len(parent), False))
    except _PointerError:
        pass
    raise unprocessable(f'{op} operation does not apply: doc is missing path: "{path}": missing value')


def json_patch(doc: Any, ops: Any, *, owned: bool = False) -> Any:
    """Apply an RFC 6902 patch; returns a new document (`owned`: the caller
    gives `doc` up, so it is changed in place rather than copied first)."""
    if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
        raise bad_request(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
            if isinstance(ops, dict) else "invalid JSON Patch")
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise StatusError(413, "RequestEntityTooLarge",
                          "Request entity too large: The allowed maximum operations in a JSON patch "
                          f"is {MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}")
    if not owned:
        doc = clone_json(doc)
    for op in ops:
        try:
            doc = _apply_op(doc, op)
        except _UnprocessableIndex as e:
            raise unprocessable(str(e))
        except _PointerError:
            raise unprocessable(f"{op.get('op')} operation does not apply: doc is missing path: "
                                 f"\"{op.get('path')}\": missing value")
    return doc


def _apply_op(doc: Any, op: dict[str, Any]) -> Any:
    kind = op.get("op")
    path = op.get("path")
    if not isinstance(path, str):
        raise unprocessable(f"{kind} operation does not apply: doc is missing path: "
                             "\"\": missing value" if kind in ("add", "remove", "replace", "move",
                                                               "copy", "test")
                             else f"Unexpected kind: {kind}")
    try:
        parts = _parse_pointer(path)
    except _PointerError:
        raise unprocessable(f"{kind} operation does not apply: doc is missing path: \"{path}\": "
                             "missing value")
    if kind == "add":
        return _add(doc, parts, clone_json(op.get("value")), path)
    if kind == "remove":
        _remove(doc, parts, path)
        return doc
    if kind == "replace":
        try:
            _get(doc, parts)
        except _PointerError:
            raise unprocessable(f"replace operation does not apply: doc is missing key: {path}: "
                                 "missing value")
        if not parts:
            return clone_json(op.get("value"))
        parent = _container(doc, parts)
        key = parts[-1]
        if isinstance(parent, list):
            parent[_index(key, len(parent), False)] = clone_json(op.get("value"))
        else:
            parent[key] = clone_json(op.get("value"))
        return doc
    if kind in ("move", "copy"):
        source = op.get("from")
        try:
            from_parts = _parse_pointer(source if isinstance(source, str) else "")
            value = _get(doc, from_parts)
        except _PointerError:
            raise unprocessable(f"{kind} operation does not apply: doc is missing from path: "
                                 f"{source}: missing value")
        if kind == "move":
            if from_parts == parts:
                return doc
            if parts[:len(from_parts)] == from_parts:
                raise unprocessable(f"move operation does not apply: \"{path}\" is a child of "
                                     f"\"{source}\"")
            _remove(doc, from_parts, source or "", "move")
        else:
            value = clone_json(value)
        return _add(doc, parts, value, path)
    if kind == "test":
        try:
            current = _get(doc, parts)
        except _PointerError:
            current = None
        if not _json_equal(current, op.get("value")):
            raise unprocessable(f"testing value {path} failed: test failed")
        return doc
    raise unprocessable(f"Unexpected kind: {kind}")


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b or (
        isinstance(a, (int, float)) and isinstance(b, (int, float)) and a == b)


# ---------------------------------------------------------------------------
# RFC 7386 JSON merge patch


def merge_patch(doc: Any, patch: Any, *, owned: bool = False) -> Any:
    """Apply an RFC 7386 merge patch; returns a new document (`owned`: the
    caller gives `doc` and `patch` up, so they are used as they are rather
    than copied: the result may share parts of both)."""
    if not isinstance(patch, dict):
        raise bad_request("Invalid JSON Patch")
    return _merge(doc if owned else clone_json(doc), patch, owned)


def _merge(target: Any, patch: Any, owned: bool) -> Any:
    if not isinstance(patch, dict):
        return patch if owned else clone_json(patch)
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge(target.get(key), value, owned)
    return target
