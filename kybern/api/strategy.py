"""Strategies: what create, update and status writes mean for one kind, after
k8s.io/apiserver pkg/registry/rest (create.go, update.go) and the per-kind
`strategy.go` files. The generic store (kybern/apiserver/store.py) owns the
mechanics; a strategy only says what differs between kinds.

Contract (as upstream):
- prepare_for_create(obj): clear status where users may not set it, set defaults.
- validate(obj) -> causes: must not mutate.
- prepare_for_update(new, old): e.g. keep old status when status is a subresource.
- validate_update(new, old) -> causes: immutable fields and the like.
- status strategy: the mirror image; only status changes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from kybern.machinery import errors, meta

Obj = dict[str, Any]
Cause = dict[str, str]

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def validate_dns_subdomain(value: str, field: str) -> list[Cause]:
    if len(value) > 253:
        return [errors.cause(field, f'Invalid value: "{value}": must be no more than 253 characters')]
    if not DNS1123_SUBDOMAIN.match(value):
        return [errors.cause(field, f'Invalid value: "{value}": a lowercase RFC 1123 subdomain must consist '
                                    "of lower case alphanumeric characters, '-' or '.', and must start and end "
                                    "with an alphanumeric character (e.g. 'example.com', regex used for validation "
                                    "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")]
    return []


def validate_dns_label(value: str, field: str) -> list[Cause]:
    if len(value) > 63 or not DNS1123_LABEL.match(value):
        return [errors.cause(field, f'Invalid value: "{value}": a lowercase RFC 1123 label must consist of '
                                    "lower case alphanumeric characters or '-', and must start and end with an "
                                    "alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                                    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")]
    return []


def validate_label_selector(sel: Any, path: str) -> list[Cause]:
    """metav1 validation.ValidateLabelSelector: labels, and each expression's
    operator and values."""
    if not isinstance(sel, dict):
        return []
    out = validate_labels(sel.get("matchLabels"), f"{path}.matchLabels")
    for i, e in enumerate(sel.get("matchExpressions") or []):
        p = f"{path}.matchExpressions[{i}]"
        op, values = e.get("operator"), e.get("values") or []
        if op in ("In", "NotIn") and not values:
            out.append(errors.cause(f"{p}.values", "Required value: must be specified when `operator` is 'In' or "
                                    "'NotIn'", "FieldValueRequired"))
        elif op in ("Exists", "DoesNotExist") and values:
            out.append(errors.cause(f"{p}.values", "Forbidden: may not be specified when `operator` is 'Exists' "
                                    "or 'DoesNotExist'", "FieldValueForbidden"))
        elif op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            out.append(errors.cause(f"{p}.operator", f'Invalid value: "{op or ""}": not a valid selector operator'))
    return out


def validate_labels(labels: Any, field: str) -> list[Cause]:
    """apimachinery's ValidateLabels: each key a qualified name (IsQualifiedName's
    messages: prefix, length, characters), each value at most 63 characters of the
    label-value form."""
    out: list[Cause] = []
    if not isinstance(labels, dict):
        return out
    for k, v in labels.items():
        out.extend(errors.cause(field, f"Invalid value: {json.dumps(k, ensure_ascii=False)}: {msg}")
                   for msg in qualified_name_errors(str(k)))
        shown = json.dumps(v, ensure_ascii=False)
        if isinstance(v, str) and len(v) > 63:
            out.append(errors.cause(field, f"Invalid value: {shown}: must be no more than 63 characters"))
        if not isinstance(v, str) or not _LABEL_VALUE.match(v):
            out.append(errors.cause(field, f'Invalid value: {shown}: a valid label must be an empty string or '
                                           "consist of alphanumeric characters, '-', '_' or '.', and must "
                                           "start and end with an alphanumeric character (e.g. 'MyValue',  or "
                                           "'my_value',  or '12345', regex used for validation is "
                                           "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"))
    return out


TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024  # apimachinery's TotalAnnotationSizeLimitB


def validate_annotations(annotations: Any, field: str) -> list[Cause]:
    """apimachinery's ValidateAnnotations: each key a qualified name (case does not
    matter: checked lower-cased, reported as given) and all keys and values
    together at most 256 KiB."""
    out: list[Cause] = []
    if not isinstance(annotations, dict):
        return out
    for k in annotations:
        out.extend(errors.cause(field, f"Invalid value: {json.dumps(k, ensure_ascii=False)}: {msg}")
                   for msg in qualified_name_errors(str(k).lower()))
    size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in annotations.items())
    if size > TOTAL_ANNOTATION_SIZE_LIMIT:
        out.append(errors.cause(field, f"Too long: may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes",
                                "FieldValueTooLong"))
    return out


_QUALIFIED_FMT = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                  "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
                  "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")


def qualified_name_errors(value: str) -> list[str]:
    """apimachinery's IsQualifiedName: an optional DNS subdomain prefix and '/',
    then a name of at most 63 characters."""
    parts = value.split("/")
    if len(parts) == 1:
        prefix, name = "", parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return ["prefix part must be non-empty"]
    else:
        return ["a qualified name " + _QUALIFIED_FMT + " with an optional DNS subdomain prefix and '/' "
                "(e.g. 'example.com/MyName')"]
    out = []
    if prefix:
        if len(prefix) > 253:
            out.append("prefix part must be no more than 253 characters")
        if not DNS1123_SUBDOMAIN.match(prefix):
            out.append("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                       "characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
                       "'example.com', regex used for validation is "
                       "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
    if not name:
        out.append("name part must be non-empty")
    elif len(name) > 63:
        out.append("name part must be no more than 63 characters")
    if name and not _QUALIFIED_NAME.match(name):
        out.append("name part " + _QUALIFIED_FMT)
    return out


def _go_strings(values: list[str]) -> str:
    return "[]string{" + ", ".join(json.dumps(v) for v in values) + "}"


def validate_owner_references(refs: Any, field: str = "metadata.ownerReferences") -> list[Cause]:
    """apimachinery's validateOwnerReference for each reference: a version, kind, name
    and uid. (Two controller references are not refused here: upstream's message
    prints the list with Go pointer addresses.)"""
    out: list[Cause] = []
    for ref in refs if isinstance(refs, list) else []:
        if not isinstance(ref, dict):
            continue
        api_version = ref.get("apiVersion") or ""
        version = "" if api_version.count("/") > 1 else api_version.rpartition("/")[2]
        for key, value, what in (("apiVersion", api_version, "version"), ("kind", ref.get("kind") or "", "kind"),
                                 ("name", ref.get("name") or "", "name"), ("uid", ref.get("uid") or "", "uid")):
            if not (version if key == "apiVersion" else value):
                out.append(errors.cause(f"{field}.{key}", f"Invalid value: {json.dumps(value)}: {what} must not "
                                                          "be empty"))
    return out


def validate_finalizers(new: Any, old: Any = None, field: str = "metadata.finalizers") -> list[Cause]:
    """apimachinery's ValidateFinalizers, and on update (old given) the rule that an
    object being deleted takes no new finalizer (ValidateObjectMetaUpdate)."""
    out: list[Cause] = []
    fins = [f for f in new.get("finalizers") or [] if isinstance(f, str)]
    for f in fins:
        out.extend(errors.cause(field, f"Invalid value: {json.dumps(f)}: {msg}") for msg in qualified_name_errors(f))
    if "orphan" in fins and "foregroundDeletion" in fins:
        out.append(errors.cause(field, f"Invalid value: {_go_strings(fins)}: finalizer orphan and "
                                       "foregroundDeletion cannot be both set"))
    if old is not None and old.get("deletionTimestamp"):
        extra = sorted(set(fins) - set(old.get("finalizers") or []))
        if extra:
            out.append(errors.cause(field, "Forbidden: no new finalizers can be added if the object is being "
                                           f"deleted, found new finalizers {_go_strings(extra)}"))
    return out


class Strategy:
    """Default behaviour: a kind with no status subresource and no extra rules."""

    has_status = False  # status is a subresource: main-resource writes keep the old status
    tracks_generation = False  # metadata.generation counts spec changes (workloads, CRs)
    name_validator = staticmethod(validate_dns_subdomain)
    allow_create_on_update = False
    allow_unconditional_update = True
    # what a DELETE that names no propagationPolicy does (DefaultGarbageCollectionPolicy);
    # default_gc_warning, if set, is sent back as a Warning in that case
    default_gc_policy = "Background"
    default_gc_warning = ""
    return_deleted_object = False  # a finished DELETE answers with a Success Status, not the object
    # names an API DELETE of one object is refused for (403 `<resource> "<name>" is forbidden: <why>`)
    undeletable: dict[str, str] = {}
    # top-level RawExtension fields (a ControllerRevision's `data`): kept as sent,
    # their nulls too, as Go keeps a RawExtension's bytes
    raw_fields: tuple[str, ...] = ()
    # annotations the strategy itself sets: no manager comes to own them
    server_set_annotations: tuple[str, ...] = ()

    # field selectors a kind supports besides metadata.name/namespace (AddFieldLabelConversionFuncs)
    field_labels: tuple[str, ...] = ()
    # old names its conversion func rewrites to current ones (pods: spec.host -> spec.nodeName)
    field_label_aliases: dict[str, str] = {}

    def field_label_error(self, label: str) -> str | None:
        """Why a field selector on `label` is refused, in upstream's words; None if supported."""
        if label in ("metadata.name", "metadata.namespace") or label in self.field_labels:
            return None
        if self.field_labels:  # kinds with their own conversion func word it so
            return f"field label not supported: {label}"
        return f'"{label}" is not a known field selector: only "metadata.name", "metadata.namespace"'

    def default(self, obj: Obj) -> None:
        """Defaulting (SetDefaults_*); runs on create and update."""

    def prepare_for_create(self, obj: Obj) -> None:
        if self.has_status:
            obj.pop("status", None)
        self.default(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        if self.has_status:
            if "status" in old:
                new["status"] = meta.clone_json(old["status"])
            else:
                new.pop("status", None)
        self.default(new)

    def validate(self, obj: Obj) -> list[Cause]:
        return []

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return self.validate(new)

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        """Whether `metadata.generation` should be bumped (spec change only)."""
        return {k: v for k, v in new.items() if k not in ("metadata", "status", "apiVersion", "kind")} != \
               {k: v for k, v in old.items() if k not in ("metadata", "status", "apiVersion", "kind")}

    # status subresource ----------------------------------------------------
    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        """Only status (and nothing else) changes through /status: a copy of old
        (same key order) with new's status, old's own status not copied."""
        has = "status" in new
        out = meta.clone_json({k: v for k, v in old.items() if k != "status"})
        if "status" in old:
            out = {k: (new["status"] if k == "status" else out[k]) for k in old if has or k != "status"}
        elif has:
            out["status"] = new["status"]
        out["metadata"]["resourceVersion"] = new.get("metadata", {}).get("resourceVersion")
        return out

    def validate_status_update(self, new: Obj, old: Obj) -> list[Cause]:
        return []

    # deletion ------------------------------------------------------------------
    def holds_deletion(self, obj: Obj) -> bool:
        """Whether a delete must only mark the object (e.g. a Namespace whose
        spec.finalizers are not done); finalizers in metadata always do."""
        return False

    def mark_deleting(self, obj: Obj) -> None:
        """Changes besides deletionTimestamp when a delete only marks the object."""


    def grace_period(self, obj: Obj, requested: int | None) -> int:
        """Seconds of graceful deletion; 0 deletes at once (most kinds)."""
        return 0
