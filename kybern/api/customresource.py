"""Custom resources: the ResourceInfo rows and the strategy a CRD gives each of
its served versions — pkg/registry/customresource/strategy.go of
apiextensions-apiserver, for dict objects.

- Every write is pruned, defaulted and validated against that version's
  structural schema (kybern.api.crschema); schema errors are 422 Invalid with
  field paths. Unknown fields are dropped (a `Warning` header under
  fieldValidation=Warn, a 400 under Strict), except under
  x-kubernetes-preserve-unknown-fields.
- metadata.generation starts at 1 and moves on every change outside metadata
  (and status, when status is a subresource).
- Versions share one storage key; with no conversion webhook they convert by
  changing apiVersion (the `None` strategy), through kybern.apiserver.conversion.
"""

from __future__ import annotations

import copy
from typing import Any

from kybern.api import crd as crd_api
from kybern.api import crschema, validation
from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Cause, Obj, Strategy
from kybern.machinery import errors


class CRStrategy(Strategy):
    tracks_generation = True

    def __init__(self, crd: Obj, version: Obj) -> None:
        spec = crd.get("spec") or {}
        self.group = str(spec.get("group", ""))
        self.kind = str((spec.get("names") or {}).get("kind", ""))
        self.version = str(version.get("name", ""))
        self.schema: Obj = (version.get("schema") or {}).get("openAPIV3Schema") or \
            {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        subs = version.get("subresources") or {}
        self.has_status = "status" in subs
        self.scale: Obj | None = subs.get("scale") if isinstance(subs.get("scale"), dict) else None
        self.storage_version = f"{self.group}/{crd_api.storage_version(crd)}"
        self.terminating = bool((crd.get("metadata") or {}).get("deletionTimestamp"))
        # x-kubernetes-validations, compiled once per CRD version (None: no rules, no cost)
        self.rules: Any = None
        if crd_api.has_validation_rules(self.schema):
            from kybern.api import celvalidation  # CEL (cel-python) is imported on first use

            self.rules = celvalidation.Validator.build(self.schema)
        self._blocked = False
        self._warnings: list[str] = []

    # conversion: the `None` strategy only rewrites apiVersion
    def convert(self, obj: Obj, api_version: str) -> Obj:
        obj["apiVersion"] = api_version
        return obj

    def prepare_for_create(self, obj: Obj) -> None:
        if self.terminating:
            raise errors.StatusError(405, "MethodNotAllowed",
                                     "create not allowed while custom resource definition is terminating")
        super().prepare_for_create(obj)

    def default(self, obj: Obj) -> None:
        crschema.default(obj, self.schema)

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        # compare what will be stored: unknown fields are pruned before the write
        a, b = copy.deepcopy(new), copy.deepcopy(old)
        crschema.prune(a, self.schema)
        crschema.prune(b, self.schema)
        return super().spec_changed(a, b)

    def validator(self, obj: Obj, info: ResourceInfo, field_validation: str,
                  warnings: list[str]) -> list[Cause]:
        """Replaces the built-in kinds' schema validator (see APIServer.store_for)."""
        unknown = crschema.prune(obj, self.schema)
        if unknown:
            if field_validation == "Strict":
                raise validation.strict_error(info.kind, info.api_version, unknown)
            if field_validation == "Warn":
                warnings.extend(validation.unknown_field_messages(unknown))
        crschema.default(obj, self.schema)
        causes = crschema.validate(obj, self.schema)
        if self.rules is not None:
            # the store calls validate*() right after this, in the same step: rules do not
            # run on an object of the wrong types (upstream's hasBlockingErr)
            self._blocked = any(c.get("type") in ("FieldValueTypeInvalid", "FieldValueNotSupported")
                                for c in causes)
            self._warnings = warnings
        return causes

    def validate(self, obj: Obj) -> list[Cause]:
        return self._validate_scale(obj) + self._validate_rules(obj, None)

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return self._validate_scale(new) + self._validate_rules(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[Cause]:
        return self._validate_rules(new, old)

    def _validate_rules(self, obj: Obj, old: Obj | None) -> list[Cause]:
        if self.rules is None:
            return []
        if self._blocked:
            self._blocked = False
            return [errors.cause("<nil>", 'Invalid value: "null": some validation rules were not checked '
                                 "because the object was invalid; correct the existing errors to complete "
                                 "validation")]
        warnings, self._warnings = self._warnings, []
        return self.rules.validate(obj, old, warnings)

    def _validate_scale(self, obj: Obj) -> list[Cause]:
        if not self.scale:
            return []
        from kybern.api import crprinter

        out: list[Cause] = []
        path = str(self.scale.get("specReplicasPath", ""))
        steps = crprinter.parse(path)
        found = crprinter.find(obj, steps) if steps else []
        # wrong types are the schema's to report; the scale contract adds non-negativity
        if found and isinstance(found[0], int) and not isinstance(found[0], bool) and found[0] < 0:
            out.append(errors.cause(path.lstrip("."), f"Invalid value: {found[0]!r}: should be a non-negative "
                                    "integer"))
        return out


def resource_infos(crd: Obj) -> list[ResourceInfo]:
    """One ResourceInfo per served version of an accepted CRD."""
    spec = crd.get("spec") or {}
    names = (crd.get("status") or {}).get("acceptedNames") or spec.get("names") or {}
    out = []
    for v in crd_api.served_versions(crd):
        subs = v.get("subresources") or {}
        group, version, kind = str(spec["group"]), str(v["name"]), str(names["kind"])
        out.append(ResourceInfo(
            group, version, kind, str(names["plural"]), spec.get("scope") == "Namespaced",
            crschema.definition_name(group, version, kind),
            short_names=tuple(names.get("shortNames") or ()), categories=tuple(names.get("categories") or ()),
            subresources=tuple(s for s in ("status", "scale") if s in subs),
            strategy=CRStrategy(crd, v), singular_name=str(names.get("singular") or "")))
    return out


def definitions(crd: Obj) -> dict[str, tuple[Obj, list[dict[str, str]]]]:
    """The OpenAPI definitions a CRD publishes: name -> (schema, GVKs)."""
    spec = crd.get("spec") or {}
    group, kind = str(spec.get("group")), str((spec.get("names") or {}).get("kind"))
    out: dict[str, tuple[Obj, list[dict[str, str]]]] = {}
    for v in crd_api.served_versions(crd):
        version = str(v["name"])
        schema = (v.get("schema") or {}).get("openAPIV3Schema")
        name = crschema.definition_name(group, version, kind)
        out[name] = (crschema.object_definition(schema, group, version, kind),
                     [{"group": group, "kind": kind, "version": version}])
        out[name + "List"] = (crschema.list_definition(group, version, kind),
                              [{"group": group, "kind": kind + "List", "version": version}])
    return out


def printer_columns(crd: Obj) -> list[Obj]:
    """The preferred version's additionalPrinterColumns (the one `kubectl get` asks for;
    tables are per kind here, not per version)."""
    from kybern.api.registry import _version_priority

    served = sorted(crd_api.served_versions(crd), key=lambda v: _version_priority(str(v.get("name"))))
    return list(served[0].get("additionalPrinterColumns") or []) if served else []


def scale_paths(info: ResourceInfo) -> Obj | None:
    strategy: Any = info.strategy
    return getattr(strategy, "scale", None)
