"""Strategic merge patch (application/strategic-merge-patch+json), the "apply a
patch" half of k8s.io/apimachinery/pkg/util/strategicpatch, on plain JSON dicts.

Lists whose schema says `x-kubernetes-patch-strategy: merge` are merged by
`x-kubernetes-patch-merge-key` (containers by name, ports by containerPort...) or,
for scalars, unioned; other lists are replaced; `null` deletes a key; directives
`$patch: replace|delete`, `$retainKeys`, `$deleteFromPrimitiveList/<field>` and
`$setElementOrder/<field>` are honoured, and list order follows upstream's
normalizeElementOrder (patch order, live order, new items before live-only ones).

`schema_lookup(path)` returns the schema of the field at `path` (field names and
map keys; list levels are skipped), e.g. `kybern.api.schemas.lookup(definition)`.
Without one every list is replaced and every map merged.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from kybern.machinery.errors import StatusError, bad_request, internal
from kybern.machinery.meta import clone_json

SchemaLookup = Callable[[tuple[str, ...]], Mapping[str, Any] | None]

_PATCH = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_FROM_PRIMITIVE = "$deleteFromPrimitiveList/"
_SET_ELEMENT_ORDER = "$setElementOrder/"


class PatchFailed(StatusError):
    """NewGenericServerResponse(422, ...) as the apiserver's patch handler uses it: a Status
    with empty details and no causes, so kubectl prints what it prints against
    kube-apiserver ("The request is invalid: the server rejected our request due to an
    error in our request"). `why` keeps the underlying message for logs and tests."""

    def __init__(self, why: str) -> None:
        super().__init__(422, "Invalid", "the server rejected our request due to an error in our request",
                         details={})
        self.why = why


def unprocessable(message: str) -> StatusError:
    return PatchFailed(message)


class _SMPError(Exception):
    """An upstream mergepatch error; `code` picks the HTTP answer like
    interpretStrategicMergePatchError does."""

    def __init__(self, message: str, code: int = 500) -> None:
        super().__init__(message)
        self.code = code


def strategic_merge_patch(doc: Any, patch: Any, schema_lookup: SchemaLookup | None = None, *,
                          owned: bool = False) -> Any:
    """Apply a strategic merge patch; returns a new document (`owned`: the
    caller gives `doc` and `patch` up, so they are used as they are rather
    than copied)."""
    if not isinstance(patch, dict):
        kind = "array" if isinstance(patch, list) else type(patch).__name__
        raise bad_request(f"json: cannot unmarshal {kind} into Go value of type "
                          "map[string]interface {}")
    original = (doc if owned else clone_json(doc)) if isinstance(doc, dict) else {}
    try:
        return _merge_map(original, patch if owned else clone_json(patch), (), schema_lookup or _no_schema)
    except _SMPError as e:
        if e.code == 400:
            raise bad_request(str(e))
        if e.code == 422:
            raise unprocessable(str(e))
        raise internal(str(e))


def _no_schema(path: tuple[str, ...]) -> None:
    return None


def _meta(lookup: SchemaLookup, path: tuple[str, ...]) -> tuple[str, str]:
    """(patch strategy without retainKeys, merge key) for the field at `path`."""
    schema = lookup(path)
    if not schema:
        return "", ""
    strategies = [s for s in str(schema.get("x-kubernetes-patch-strategy", "")).split(",") if s]
    others = [s for s in strategies if s != "retainKeys"]
    if len(others) > 1:
        raise _SMPError(f"unexpected patch strategy: {','.join(strategies)}")
    return (others[0] if others else ""), str(schema.get("x-kubernetes-patch-merge-key", ""))


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "slice"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "float64"
    if isinstance(value, str):
        return "string"
    return "nil"


def _discard_nulls(value: Any) -> None:
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v is None]:
            del value[key]
        for v in value.values():
            _discard_nulls(v)
    elif isinstance(value, list):
        for v in value:
            _discard_nulls(v)


def _remove_directives(value: Any) -> tuple[Any, bool]:
    """Strip directive-carrying maps; (value, keep)."""
    if isinstance(value, dict):
        if _PATCH in value:
            return None, False
        for key in list(value):
            v, keep = _remove_directives(value[key])
            if keep:
                value[key] = v
            else:
                del value[key]
        return value, True
    if isinstance(value, list):
        out = []
        for item in value:
            v, keep = _remove_directives(item)
            if keep:
                out.append(v)
        return out, True
    return value, True


def _take_patch_value(value: Any) -> tuple[Any, bool]:
    _discard_nulls(value)
    return _remove_directives(value)


def _merge_map(original: dict[str, Any], patch: dict[str, Any], path: tuple[str, ...],
               lookup: SchemaLookup) -> dict[str, Any]:
    if _PATCH in patch:
        directive = patch[_PATCH]
        if directive == "replace":
            del patch[_PATCH]
            _discard_nulls(patch)
            return patch
        if directive == "delete":
            return {}
        raise _SMPError(f"unknown patch type: {directive} in map: {patch}")
    _apply_retain_keys(original, patch)
    _merge_ordered_lists(original, patch, path, lookup)

    for key, patch_value in list(patch.items()):
        is_delete_list = False
        if key.startswith(_DELETE_FROM_PRIMITIVE):
            key = key[len(_DELETE_FROM_PRIMITIVE):]
            is_delete_list = True
            if not isinstance(patch_value, list):
                raise _SMPError("invalid patch format of primitive list", 400)
        if patch_value is None:
            original.pop(key, None)
            continue
        if key not in original or _kind(original[key]) != _kind(patch_value):
            if not is_delete_list:
                value, keep = _take_patch_value(patch_value)
                if keep:
                    original[key] = value
                else:
                    original.pop(key, None)
            continue
        current = original[key]
        child = path + (key,)
        if isinstance(current, dict):
            strategy, _ = _meta(lookup, child)
            if strategy == "replace":
                _discard_nulls(patch_value)
                original[key] = patch_value
            else:
                original[key] = _merge_map(current, patch_value, child, lookup)
        elif isinstance(current, list):
            strategy, merge_key = _meta(lookup, child)
            original[key] = _merge_slice_handler(current, patch_value, child, strategy, merge_key,
                                                 is_delete_list, lookup)
        else:
            value, keep = _remove_directives(patch_value)
            if keep:
                original[key] = value
            else:
                del original[key]
    return original


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    if _RETAIN_KEYS not in patch:
        return
    retain = patch.pop(_RETAIN_KEYS)
    if not isinstance(retain, list):
        raise _SMPError("invalid patch format of retainKeys", 400)
    keep = set(k for k in retain if isinstance(k, str))
    for key, value in patch.items():
        if value is None or key.startswith((_DELETE_FROM_PRIMITIVE, _SET_ELEMENT_ORDER)):
            continue
        if key not in keep:
            raise _SMPError("invalid patch format of retainKeys", 400)
    for key in [k for k in original if k not in keep]:
        del original[key]


def _merge_slice_handler(original: list[Any], patch: list[Any], path: tuple[str, ...],
                         strategy: str, merge_key: str, is_delete_list: bool,
                         lookup: SchemaLookup) -> list[Any]:
    if strategy == "merge":
        return _merge_slice(original, patch, path, merge_key, is_delete_list, lookup)
    value, _ = _take_patch_value(patch)
    return value


def _element_kind(*lists: list[Any]) -> str:
    kind = ""
    for items in lists:
        for item in items:
            k = _kind(item)
            if not kind:
                if k == "slice":
                    raise _SMPError("lists of lists are not supported", 422)
                kind = k
            elif k != kind:
                raise _SMPError(f"list element types are not identical: {list(lists)}")
    if not kind:
        raise _SMPError("no elements in any of the given slices")
    return kind


def _merge_slice(original: list[Any], patch: list[Any], path: tuple[str, ...], merge_key: str,
                 is_delete_list: bool, lookup: SchemaLookup) -> list[Any]:
    if not original and not patch:
        return original
    kind = _element_kind(original, patch)
    if kind != "map":
        if is_delete_list:
            return [v for v in original if not any(_same(v, d) for d in patch)]
        merged: list[Any] = []
        for v in original + patch:
            if not any(_same(v, m) for m in merged):
                merged.append(v)
        patch_items = [v for v in merged if any(_same(v, p) for p in patch)]
        server_only = [v for v in merged if not any(_same(v, p) for p in patch)]
        return _normalize_order(patch_items, server_only, patch, original, "", kind)
    if not merge_key:
        raise _SMPError("cannot merge lists without merge key for type map")
    original, patch = _apply_special_elements(original, patch, merge_key)
    # Go's append inside mergeSliceWithoutSpecialElements leaves the caller's slice at its
    # old length: the live order used below excludes newly added items (they go first).
    server_order = list(original)
    original = list(original)
    for item in patch:
        if merge_key not in item:
            raise _SMPError(f"map: {item} does not contain declared merge key: {merge_key}")
        index = _find_by_key(original, merge_key, item[merge_key])
        if index >= 0:
            original[index] = _merge_map(original[index], item, path, lookup)
        else:
            value, keep = _take_patch_value(item)
            if keep:
                original.append(value)
    merged = original
    in_patch = [i[merge_key] for i in patch]
    patch_items = [v for v in merged if any(_same(v.get(merge_key), k) for k in in_patch)]
    server_only = [v for v in merged if not any(_same(v.get(merge_key), k) for k in in_patch)]
    return _normalize_order(patch_items, server_only, patch, server_order, merge_key, kind)


def _same(a: Any, b: Any) -> bool:
    # Go compares interface{} values: 1 == true is false there, unlike in Python.
    return type(a) is type(b) and a == b or (
        _kind(a) == "float64" and _kind(b) == "float64" and a == b)


def _find_by_key(items: list[Any], merge_key: str, value: Any) -> int:
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _SMPError(f"value for key {i} is not a map.")
        if merge_key in item and _same(item[merge_key], value):
            return i
    return -1


def _apply_special_elements(original: list[Any], patch: list[Any],
                            merge_key: str) -> tuple[list[Any], list[Any]]:
    """`{"$patch": "delete", key: v}` deletes; `{"$patch": "replace"}` replaces the list."""
    plain: list[Any] = []
    replace = False
    for item in patch:
        directive = item.get(_PATCH) if isinstance(item, dict) else None
        if directive is None:
            plain.append(item)
        elif directive == "delete":
            if merge_key not in item:
                raise _SMPError(f"map: {item} does not contain declared merge key: {merge_key}")
            original = [o for o in original
                        if not (isinstance(o, dict) and _same(o.get(merge_key), item[merge_key]))]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise _SMPError("merging lists cannot yet be specified in the patch")
        else:
            raise _SMPError(f"unknown patch type: {directive} in map: {item}")
    if replace:
        _discard_nulls(plain)
        return plain, []
    return original, plain


def _position(order: list[Any], value: Any, merge_key: str, kind: str) -> int:
    want = value.get(merge_key) if kind == "map" and isinstance(value, dict) else value
    for i, item in enumerate(order):
        have = item.get(merge_key) if kind == "map" and isinstance(item, dict) else item
        if _same(have, want):
            return i
    return -1


def _sort_by(items: list[Any], order: list[Any], merge_key: str, kind: str) -> list[Any]:
    deletes: list[Any] = []
    if kind == "map":
        deletes = [i for i in items if isinstance(i, dict) and i.get(_PATCH) == "delete"]
        items = [i for i in items if not (isinstance(i, dict) and i.get(_PATCH) == "delete")]
    big = len(order) + 1
    keyed = [(p if (p := _position(order, item, merge_key, kind)) >= 0 else big, n, item)
             for n, item in enumerate(items)]
    keyed.sort(key=lambda t: (t[0], t[1]))
    return [t[2] for t in keyed] + deletes


def _normalize_order(patch_items: list[Any], server_only: list[Any], patch_order: list[Any],
                     server_order: list[Any], merge_key: str, kind: str) -> list[Any]:
    """Patch items in patch order, server-only items in live order, interleaved by the
    live order where both are known (upstream's normalizeElementOrder)."""
    right = _sort_by(patch_items, patch_order, merge_key, kind)
    left = _sort_by(server_only, server_order, merge_key, kind)
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = _position(server_order, left[i], merge_key, kind)
            ri = _position(server_order, right[j], merge_key, kind)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _merge_ordered_lists(original: dict[str, Any], patch: dict[str, Any], path: tuple[str, ...],
                         lookup: SchemaLookup) -> None:
    """Process `$setElementOrder/<field>` together with the patch list for <field>."""
    for key in [k for k in patch if k.startswith(_SET_ELEMENT_ORDER)]:
        order = patch.pop(key)
        if not isinstance(order, list):
            raise _SMPError("invalid patch format of setElementOrder list", 400)
        field = key[len(_SET_ELEMENT_ORDER):]
        if not field:
            raise _SMPError("invalid patch format of setElementOrder list", 400)
        has_original, has_patch = field in original, field in patch
        original_list = original.get(field) if has_original else []
        patch_list = patch.get(field) if has_patch else []
        if not isinstance(original_list, list) or not isinstance(patch_list, list):
            raise _SMPError("invalid patch format of setElementOrder list", 400)
        strategy, merge_key = _meta(lookup, path + (field,))
        _check_order(patch_list, order, merge_key)
        if has_original and not has_patch:
            merged = original_list
        elif has_patch and not has_original:
            merged, _ = _take_patch_value(patch_list)
        elif has_original and has_patch:
            merged = _merge_slice_handler(original_list, patch_list, path + (field,), strategy,
                                          merge_key, False, lookup)
        else:
            continue
        kind = _element_kind(original_list, patch_list)
        in_order = [i for i in merged if _position(order, i, merge_key, kind) >= 0]
        server_only = [i for i in merged if _position(order, i, merge_key, kind) < 0]
        original[field] = _normalize_order(in_order, server_only, order, original_list,
                                           merge_key, kind)
        patch.pop(field, None)


def _check_order(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    """The patch list must be a subsequence of the $setElementOrder list."""
    if not order or not patch_list:
        return
    items = [i for i in patch_list if not (isinstance(i, dict) and _PATCH in i)]
    kind = "map" if merge_key else "scalar"
    j = 0
    for item in items:
        while j < len(order) and _position([order[j]], item, merge_key, kind) < 0:
            j += 1
        if j >= len(order):
            raise _SMPError(f"The order in patch list:\n{patch_list}\n doesn't match "
                            f"$setElementOrder list:\n{order}\n")
        j += 1
