"""apiextensions.k8s.io/v1 CustomResourceDefinition: defaults, validation
(names, scope, versions, structural schemas, printer columns, subresources) and
the strategy of the CRD object itself — after apiextensions-apiserver's
pkg/apis/apiextensions/validation and pkg/registry/customresourcedefinition.

Serving the custom resources a CRD defines is kybern.apiserver.crds; what the
schema does to each custom resource is kybern.api.crschema.

Deletion, as upstream: the first delete marks the CRD (deletionTimestamp, a
`Terminating` condition) and keeps it until the CRD server has deleted every
custom resource and set `Terminating=False` (reason InstanceDeletionCompleted);
then the object goes. (Upstream holds it with the `customresourcecleanup`
finalizer; here the strategy holds it, so `metadata.finalizers` stays the user's.)
"""

from __future__ import annotations

import re
from typing import Any

from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Cause, Obj, Strategy, validate_dns_subdomain
from kybern.machinery import errors, meta

GROUP = "apiextensions.k8s.io"
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
                "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
COLUMN_TYPES = ("integer", "number", "string", "boolean", "date")
_SCHEMA_TYPES = ("array", "boolean", "integer", "number", "object", "string")


def storage_version(crd: Obj) -> str:
    for v in (crd.get("spec") or {}).get("versions") or []:
        if v.get("storage"):
            return str(v.get("name"))
    return ""


def served_versions(crd: Obj) -> list[Obj]:
    return [v for v in (crd.get("spec") or {}).get("versions") or [] if v.get("served")]


def condition(crd: Obj, type_: str) -> Obj | None:
    for c in (crd.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


def set_condition(crd: Obj, type_: str, status: str, reason: str, message: str) -> bool:
    """Set a status condition; lastTransitionTime moves only when status does. True if changed."""
    conds = crd.setdefault("status", {}).setdefault("conditions", [])
    for c in conds:
        if c.get("type") == type_:
            if (c.get("status"), c.get("reason"), c.get("message")) == (status, reason, message):
                return False
            if c.get("status") != status:
                c["lastTransitionTime"] = meta.now()
            c.update(status=status, reason=reason, message=message)
            return True
    conds.append({"type": type_, "status": status, "lastTransitionTime": meta.now(), "reason": reason,
                  "message": message})
    return True


def _dns1035(value: Any, field: str, cause_msg: str = _DNS1035_MSG) -> list[Cause]:
    if isinstance(value, str) and value and not _DNS1035.match(value):
        return [errors.cause(field, f'Invalid value: "{value}": {cause_msg}')]
    return []


def validate_names(names: Obj, path: str) -> list[Cause]:
    out: list[Cause] = []
    plural, singular, kind = names.get("plural"), names.get("singular"), names.get("kind")
    list_kind = names.get("listKind")
    if not plural:
        out.append(errors.required(f"{path}.plural"))
    out += _dns1035(plural, f"{path}.plural")
    out += _dns1035(singular, f"{path}.singular")
    if not kind:
        out.append(errors.required(f"{path}.kind"))
    kind_msg = "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?"
    if isinstance(kind, str) and kind and not _DNS1035.match(kind.lower()):
        out.append(errors.cause(f"{path}.kind", f'Invalid value: "{kind}": {kind_msg}'))
    if isinstance(list_kind, str) and list_kind:
        if not _DNS1035.match(list_kind.lower()):
            out.append(errors.cause(f"{path}.listKind", f'Invalid value: "{list_kind}": {kind_msg}'))
        if list_kind == kind:
            out.append(errors.cause(f"{path}.listKind",
                                    f'Invalid value: "{list_kind}": kind and listKind may not be the same'))
    for i, short in enumerate(names.get("shortNames") or []):
        out += _dns1035(short, f"{path}.shortNames[{i}]")
    return out


# -- structural schemas ------------------------------------------------------------
def has_validation_rules(schema: Any) -> bool:
    """Whether any node of a schema has x-kubernetes-validations (CEL rules)."""
    if not isinstance(schema, dict):
        return False
    if schema.get("x-kubernetes-validations"):
        return True
    for sub in (schema.get("properties") or {}).values():
        if has_validation_rules(sub):
            return True
    return has_validation_rules(schema.get("additionalProperties")) or \
        has_validation_rules(schema.get("items")) or any(has_validation_rules(s) for s in schema.get("allOf") or ())



def validate_structural(schema: Any, path: str) -> list[Cause]:
    """The rules that make a schema structural (apiextensions' structural.Validate,
    the common ones): every node has a type unless it is int-or-string or
    preserves unknown fields, properties and additionalProperties exclude each
    other, items is one schema, no $ref, and root metadata may only restrict
    name and generateName."""
    if not isinstance(schema, dict):
        return [errors.required(path)]
    out: list[Cause] = []
    if schema.get("type") not in (None, "object"):
        out.append(errors.cause(f"{path}.type", f'Invalid value: "{schema.get("type")}": must be object at '
                                "the root"))
    _structural(schema, path, out, level=0)
    meta_schema = (schema.get("properties") or {}).get("metadata")
    if isinstance(meta_schema, dict):
        for key in meta_schema:
            if key not in ("type", "properties", "description"):
                out.append(errors.cause(f"{path}.properties[metadata]",
                                        "Forbidden: must not specify anything other than name and "
                                        "generateName, but metadata is implicitly specified",
                                        "FieldValueForbidden"))
                break
        for pname in meta_schema.get("properties") or {}:
            if pname not in ("name", "generateName"):
                out.append(errors.cause(f"{path}.properties[metadata].properties[{pname}]",
                                        "Forbidden: must not be specified", "FieldValueForbidden"))
    return out


def _structural(s: Obj, path: str, out: list[Cause], level: int) -> None:
    t = s.get("type")
    int_or_string = s.get("x-kubernetes-int-or-string")
    if "$ref" in s:
        out.append(errors.cause(f"{path}.$ref", "Forbidden: $ref is not supported", "FieldValueForbidden"))
    if t is None and not int_or_string and not s.get("x-kubernetes-preserve-unknown-fields") \
            and not s.get("x-kubernetes-embedded-resource"):
        where = "at the root" if level == 0 else "for specified object fields" if level == 1 \
            else "for specified array items"
        out.append(errors.required(f"{path}.type") | {"message": f"Required value: must not be empty {where}"})
    elif t is not None and t not in _SCHEMA_TYPES:
        out.append(errors.cause(f"{path}.type", f'Unsupported value: "{t}": supported values: "array", '
                                '"boolean", "integer", "number", "object", "string"', "FieldValueNotSupported"))
    if int_or_string and t is not None:
        out.append(errors.cause(f"{path}.type", "Forbidden: must be empty if x-kubernetes-int-or-string is true",
                                "FieldValueForbidden"))
    props = s.get("properties")
    extra = s.get("additionalProperties")
    if props and isinstance(extra, dict) or props and extra is True:
        out.append(errors.cause(f"{path}.additionalProperties",
                                "Forbidden: additionalProperties and properties are mutual exclusive",
                                "FieldValueForbidden"))
    for name, sub in (props or {}).items():
        if isinstance(sub, dict):
            _structural(sub, f"{path}.properties[{name}]", out, 1)
    if isinstance(extra, dict):
        _structural(extra, f"{path}.additionalProperties", out, 1)
    items = s.get("items")
    if isinstance(items, list):
        out.append(errors.cause(f"{path}.items", "Forbidden: items must be a schema object and not an array",
                                "FieldValueForbidden"))
    elif isinstance(items, dict):
        _structural(items, f"{path}.items", out, 2)
    elif t == "array":
        out.append(errors.required(f"{path}.items") | {"message": "Required value: must be specified"})
    if "default" in s and level == 0:
        out.append(errors.cause(f"{path}.default", "Forbidden: must not be set at the root",
                                "FieldValueForbidden"))


# -- the CRD as a whole -------------------------------------------------------------
def validate_crd(crd: Obj) -> list[Cause]:
    out: list[Cause] = []
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group")
    name = (crd.get("metadata") or {}).get("name", "")
    if names.get("plural") and group and name != f"{names['plural']}.{group}":
        out.append(errors.cause("metadata.name", f'Invalid value: "{name}": must be spec.names.plural+"."+'
                                "spec.group"))
    if not group:
        out.append(errors.required("spec.group"))
    else:
        out += validate_dns_subdomain(group, "spec.group")
        if "." not in group:
            out.append(errors.cause("spec.group", f'Invalid value: "{group}": should be a domain with at least '
                                    "one dot"))
    scope = spec.get("scope")
    if scope not in ("Cluster", "Namespaced"):
        out.append(errors.cause("spec.scope", f'Unsupported value: "{scope or ""}": supported values: '
                                '"Cluster", "Namespaced"', "FieldValueNotSupported"))
    out += validate_names(names, "spec.names")
    out += _validate_versions(spec)
    conv = (spec.get("conversion") or {}).get("strategy", "None")
    if conv not in ("None", "Webhook"):
        out.append(errors.cause("spec.conversion.strategy", f'Unsupported value: "{conv}": supported values: '
                                '"None", "Webhook"', "FieldValueNotSupported"))
    return out


def _validate_versions(spec: Obj) -> list[Cause]:
    out: list[Cause] = []
    versions = spec.get("versions") or []
    if not versions:
        return [errors.required("spec.versions") | {"message": "Required value: must have exactly one version "
                                                              "marked as storage version"}]
    seen: set[str] = set()
    storage = 0
    for i, v in enumerate(versions):
        p = f"spec.versions[{i}]"
        vname = v.get("name")
        if not vname:
            out.append(errors.required(f"{p}.name"))
        else:
            out += _dns1035(vname, f"{p}.name")
            if vname in seen:
                out.append(errors.cause("spec.versions", "Invalid value: ...: must contain unique version names"))
            seen.add(vname)
        storage += bool(v.get("storage"))
        schema = (v.get("schema") or {}).get("openAPIV3Schema")
        if schema is None:
            out.append(errors.required(f"{p}.schema.openAPIV3Schema") | {"message": "Required value: schemas "
                                                                                     "are required"})
        else:
            out += validate_structural(schema, f"{p}.schema.openAPIV3Schema")
            if has_validation_rules(schema):  # CEL (cel-python) is imported on first use
                from kybern.api import celvalidation

                out += celvalidation.crd_causes(schema, f"{p}.schema.openAPIV3Schema")
        for j, col in enumerate(v.get("additionalPrinterColumns") or []):
            cp = f"{p}.additionalPrinterColumns[{j}]"
            if not col.get("name"):
                out.append(errors.required(f"{cp}.name"))
            if col.get("type") not in COLUMN_TYPES:
                out.append(errors.cause(f"{cp}.type", f'Unsupported value: "{col.get("type", "")}": supported '
                                        'values: "integer", "number", "string", "boolean", "date"',
                                        "FieldValueNotSupported"))
            if not col.get("jsonPath"):
                out.append(errors.required(f"{cp}.jsonPath"))
        scale = (v.get("subresources") or {}).get("scale")
        if isinstance(scale, dict):
            sp, st_ = scale.get("specReplicasPath", ""), scale.get("statusReplicasPath", "")
            if not sp.startswith(".spec."):
                out.append(errors.cause(f"{p}.subresources.scale.specReplicasPath", f'Invalid value: "{sp}": '
                                        "should be a json path under .spec"))
            if not st_.startswith(".status."):
                out.append(errors.cause(f"{p}.subresources.scale.statusReplicasPath", f'Invalid value: "{st_}": '
                                        "should be a json path under .status"))
    if storage != 1:
        out.append(errors.cause("spec.versions", "Invalid value: ...: must have exactly one version marked as "
                                "storage version"))
    if not any(v.get("served") for v in versions):
        out.append(errors.cause("spec.versions", "Invalid value: ...: must have at least one served version"))
    return out


class CRDStrategy(Strategy):
    has_status = True
    tracks_generation = True

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        names = spec.setdefault("names", {})
        if names.get("kind"):
            names.setdefault("singular", str(names["kind"]).lower())
            names.setdefault("listKind", f"{names['kind']}List")
        conv = spec.setdefault("conversion", {})
        conv.setdefault("strategy", "None")

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj["status"] = {"acceptedNames": {"kind": "", "plural": ""}, "storedVersions": []}
        self._add_stored_version(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        self._add_stored_version(new)

    @staticmethod
    def _add_stored_version(obj: Obj) -> None:
        sv = storage_version(obj)
        stored = obj.setdefault("status", {}).setdefault("storedVersions", [])
        if sv and sv not in stored:
            stored.append(sv)

    def validate(self, obj: Obj) -> list[Cause]:
        return validate_crd(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        out = validate_crd(new)
        ns, os_ = new.get("spec") or {}, old.get("spec") or {}
        if ns.get("scope") != os_.get("scope") and (old.get("status") or {}).get("storedVersions"):
            out.append(errors.cause("spec.scope", f'Invalid value: "{ns.get("scope")}": field is immutable'))
        if ns.get("group") != os_.get("group"):
            out.append(errors.cause("spec.group", f'Invalid value: "{ns.get("group")}": field is immutable'))
        return out

    # deletion: held until the CRD server has removed every custom resource
    def holds_deletion(self, obj: Obj) -> bool:
        c = condition(obj, "Terminating")
        return not (c and c.get("status") == "False" and meta.is_deleting(obj))

    def mark_deleting(self, obj: Obj) -> None:
        set_condition(obj, "Terminating", "True", "InstanceDeletionInProgress",
                      "CustomResource deletion is in progress")


RESOURCES = [
    ResourceInfo(GROUP, "v1", "CustomResourceDefinition", "customresourcedefinitions", False,
                 "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
                 short_names=("crd", "crds"), categories=("api-extensions",), subresources=("status",),
                 strategy=CRDStrategy()),
]
