"""batch/v1 Job and CronJob: defaults (pkg/apis/batch/v1/defaults.go), the
selector and labels the Job strategy generates, and the validation users meet
first (pkg/apis/batch/validation). Their controllers come with later work."""

from __future__ import annotations

import copy
import re
from typing import Any

from kybern.api.core import default_pod_spec, validate_pod_template
from kybern.api.registry import ResourceInfo
from kybern.api.strategy import Cause, Obj, Strategy
from kybern.machinery import cron, errors, selectors

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
_CRON_FIELD = re.compile(r"^[\d*/,\-?LW#A-Za-z]+$")
_CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def default_job_spec(spec: Obj) -> None:
    completions, parallelism = spec.get("completions"), spec.get("parallelism")
    if completions is None and parallelism is None:
        spec["completions"] = spec["parallelism"] = 1
    elif parallelism is None:
        spec["parallelism"] = 1
    # with a per-index limit the global one is effectively off (SetDefaults_Job: MaxInt32)
    spec.setdefault("backoffLimit", 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    for rule in (spec.get("podFailurePolicy") or {}).get("rules") or []:
        for pattern in (rule.get("onPodConditions") or []) if isinstance(rule, dict) else []:
            if isinstance(pattern, dict) and not pattern.get("status"):
                pattern["status"] = "True"  # SetDefaults_Job
    # Failed when a pod failure policy is set, as upstream
    spec.setdefault("podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed")
    tmpl = spec.setdefault("template", {})
    tmpl.setdefault("metadata", {}).setdefault("creationTimestamp", None)
    default_pod_spec(tmpl.setdefault("spec", {}))


def validate_job_spec(spec: Obj, path: str) -> list[Cause]:
    out: list[Cause] = []
    for field in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished",
                  "backoffLimitPerIndex", "maxFailedIndexes"):
        v = spec.get(field)
        if isinstance(v, int) and not isinstance(v, bool) and v < 0:
            out.append(errors.cause(f"{path}.{field}", f"Invalid value: {v}: must be greater than or equal to 0"))
    ads = spec.get("activeDeadlineSeconds")
    if isinstance(ads, int) and ads == 0:
        out.append(errors.cause(f"{path}.activeDeadlineSeconds", "Invalid value: 0: must be greater than 0"))
    mode = spec.get("completionMode")
    if mode not in (None, "NonIndexed", "Indexed"):
        out.append(errors.cause(f"{path}.completionMode", f'Unsupported value: "{mode}": supported values: '
                                '"NonIndexed", "Indexed"', "FieldValueNotSupported"))
    if mode == "Indexed" and spec.get("completions") is None:
        out.append(errors.required(f"{path}.completions") |
                   {"message": "Required value: when completion mode is Indexed"})
    per_index, max_failed = spec.get("backoffLimitPerIndex"), spec.get("maxFailedIndexes")
    if max_failed is not None and per_index is None:
        out.append(errors.required(f"{path}.backoffLimitPerIndex") |
                   {"message": "Required value: when maxFailedIndexes is specified"})
    if mode == "Indexed" and isinstance(max_failed, int) and isinstance(spec.get("completions"), int) \
            and max_failed > spec["completions"]:
        out.append(errors.cause(f"{path}.maxFailedIndexes", f"Invalid value: {max_failed}: must be less than or "
                                "equal to completions"))
    if mode in (None, "NonIndexed"):
        for field, v in (("backoffLimitPerIndex", per_index), ("maxFailedIndexes", max_failed)):
            if v is not None:
                out.append(errors.cause(f"{path}.{field}", f"Invalid value: {v}: requires indexed completion mode"))
    sp = spec.get("successPolicy")
    if isinstance(sp, dict) and mode == "Indexed":
        sp_rules = sp.get("rules") or []
        if not sp_rules:
            out.append(errors.required(f"{path}.successPolicy.rules") | {
                "message": "Required value: at least one rules must be specified when the successPolicy is specified"})
        for i, rule in enumerate(sp_rules if isinstance(sp_rules, list) else []):
            if not isinstance(rule, dict):
                continue
            count = rule.get("succeededCount")
            if rule.get("succeededIndexes") is None and count is None:
                out.append(errors.required(f"{path}.successPolicy.rules[{i}]") | {"message": "Required value: at "
                           "least one of succeededCount or succeededIndexes must be specified"})
            if isinstance(count, int) and isinstance(spec.get("completions"), int) and count > spec["completions"]:
                out.append(errors.cause(f"{path}.successPolicy.rules[{i}].succeededCount",
                                        f"Invalid value: {count}: must be less than or equal to "
                                        f"{spec['completions']} (the number of specified completions)"))
    if isinstance(spec.get("podFailurePolicy"), dict):
        out.extend(_validate_pod_failure_policy(spec, f"{path}.podFailurePolicy"))
    tmpl = spec.get("template") or {}
    out.extend(validate_pod_template(tmpl, f"{path}.template"))
    rp = (tmpl.get("spec") or {}).get("restartPolicy")
    if rp not in ("OnFailure", "Never"):
        out.append(errors.cause(f"{path}.template.spec.restartPolicy", f'Unsupported value: "{rp}": supported '
                                'values: "OnFailure", "Never"', "FieldValueNotSupported"))
    elif spec.get("podFailurePolicy") is not None and rp != "Never":
        out.append(errors.cause(f"{path}.template.spec.restartPolicy", f'Invalid value: "{rp}": only "Never" is '
                                "supported when podFailurePolicy is specified"))
    return out


_ACTIONS = ("Count", "FailIndex", "FailJob", "Ignore")
_OPERATORS = ("In", "NotIn")


def _go_int32s(values: Any) -> str:
    """%#v of a []int32, as upstream's messages print the list."""
    if values is None:
        return "[]int32(nil)"
    return "[]int32{" + ", ".join(str(v) for v in values) + "}"


def _validate_pod_failure_policy(spec: Obj, path: str) -> list[Cause]:
    """validatePodFailurePolicy: each rule's action, exit code requirement or pod
    condition patterns (not both, not neither)."""
    out: list[Cause] = []
    tmpl = (spec.get("template") or {}).get("spec") or {}
    names = {c.get("name") for c in (tmpl.get("containers") or []) + (tmpl.get("initContainers") or [])
             if isinstance(c, dict)}
    rules = spec["podFailurePolicy"].get("rules") or []
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, dict):
            continue
        rp = f"{path}.rules[{i}]"
        action = rule.get("action")
        if not action:
            out.append(errors.required(f"{rp}.action") |
                       {"message": 'Required value: valid values: ["Count" "FailIndex" "FailJob" "Ignore"]'})
        elif action == "FailIndex":
            if spec.get("backoffLimitPerIndex") is None:
                out.append(errors.cause(f"{rp}.action", 'Invalid value: "FailIndex": requires the '
                                        "backoffLimitPerIndex to be set"))
        elif action not in _ACTIONS:
            out.append(errors.cause(f"{rp}.action", f'Unsupported value: "{action}": supported values: '
                                    + ", ".join(f'"{a}"' for a in _ACTIONS), "FieldValueNotSupported"))
        codes = rule.get("onExitCodes")
        if isinstance(codes, dict):
            cp = f"{rp}.onExitCodes"
            op = codes.get("operator")
            if not op:
                out.append(errors.required(f"{cp}.operator") | {"message": 'Required value: valid values: ["In" '
                                                                           '"NotIn"]'})
            elif op not in _OPERATORS:
                out.append(errors.cause(f"{cp}.operator", f'Unsupported value: "{op}": supported values: "In", '
                                        '"NotIn"', "FieldValueNotSupported"))
            if codes.get("containerName") is not None and codes["containerName"] not in names:
                out.append(errors.cause(f"{cp}.containerName", f'Invalid value: "{codes["containerName"]}": must be '
                                        "one of the container or initContainer names in the pod template"))
            values = codes.get("values")
            if not values:
                out.append(errors.cause(f"{cp}.values", f"Invalid value: {_go_int32s(values)}: at least one value "
                                        "is required"))
            elif isinstance(values, list) and all(isinstance(v, int) for v in values):
                seen: set[int] = set()
                for j, v in enumerate(values):
                    if op == "In" and v == 0:
                        out.append(errors.cause(f"{cp}.values[{j}]", "Invalid value: 0: must not be 0 for the In "
                                                "operator"))
                    if v in seen:
                        out.append(errors.cause(f"{cp}.values[{j}]", f"Duplicate value: {v}", "FieldValueDuplicate"))
                    seen.add(v)
                if any(a > b for a, b in zip(values, values[1:])):
                    out.append(errors.cause(f"{cp}.values", f"Invalid value: {_go_int32s(values)}: must be ordered"))
        if codes is not None and rule.get("onPodConditions"):
            out.append(errors.cause(rp, "Invalid value: specifying both OnExitCodes and OnPodConditions is not "
                                        "supported"))
        if codes is None and not rule.get("onPodConditions"):
            out.append(errors.cause(rp, "Invalid value: specifying one of OnExitCodes and OnPodConditions is "
                                        "required"))
    return out


def _default_job_labels(obj: Obj) -> None:
    """SetDefaults_Job: a Job without labels gets its pod template's."""
    tmpl_labels = (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels")
    m = obj.setdefault("metadata", {})
    if isinstance(tmpl_labels, dict) and tmpl_labels and not m.get("labels"):
        m["labels"] = dict(tmpl_labels)


class JobStrategy(Strategy):
    has_status = True
    tracks_generation = True
    field_labels = ("status.successful",)
    # batch/v1 keeps a deleted Job's pods unless told otherwise (kubectl says Background)
    default_gc_policy = "Orphan"
    default_gc_warning = ("child pods are preserved by default when jobs are deleted; set "
                          "propagationPolicy=Background to remove them or set propagationPolicy=Orphan to "
                          "suppress this warning")

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj["status"] = {}
        spec = obj["spec"]
        if not spec.get("manualSelector"):
            # the generated selector and labels (pkg/registry/batch/job/strategy.go generateSelector)
            uid = obj["metadata"]["uid"]
            name = obj["metadata"]["name"]
            labels = spec["template"].setdefault("metadata", {}).setdefault("labels", {})
            labels.update({CONTROLLER_UID: uid, JOB_NAME: name, "controller-uid": uid, "job-name": name})
            spec.setdefault("selector", {"matchLabels": {CONTROLLER_UID: uid}})
        # upstream defaults again whatever it reads back from etcd: the Job then shows the
        # generated labels as its own (`kubectl get job pi -o yaml`, "Jobs" concept page)
        _default_job_labels(obj)

    def default(self, obj: Obj) -> None:
        default_job_spec(obj.setdefault("spec", {}))
        _default_job_labels(obj)

    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        out = validate_job_spec(spec, "spec")
        sel = spec.get("selector")
        if spec.get("manualSelector") and not sel:
            out.append(errors.required("spec.selector"))
        if isinstance(sel, dict):
            labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            try:
                ok = selectors.selector_matches(sel, labels)
            except (KeyError, TypeError):
                ok = False
            if not ok:
                out.append(errors.cause("spec.template.metadata.labels", "Invalid value: ...: `selector` does "
                                        "not match template `labels`"))
        return out

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        out = self.validate(new)
        ns, os_ = new.get("spec") or {}, old.get("spec") or {}
        if ns.get("selector") != os_.get("selector"):
            out.append(errors.cause("spec.selector", "Invalid value: ...: field is immutable"))
        if ns.get("backoffLimitPerIndex") != os_.get("backoffLimitPerIndex"):
            out.append(errors.cause("spec.backoffLimitPerIndex", f"Invalid value: {ns.get('backoffLimitPerIndex')}: "
                                    "field is immutable"))
        if ns.get("completions") != os_.get("completions"):
            if ns.get("completionMode") != "Indexed":
                out.append(errors.cause("spec.completions", f"Invalid value: {ns.get('completions')}: field is "
                                        "immutable"))
            elif ns.get("completions") is not None and ns.get("completions") != ns.get("parallelism"):
                # elastic Indexed Jobs (GA in 1.31): completions and parallelism change together
                out.append(errors.cause("spec.completions", f"Invalid value: {ns.get('completions')}: can only be "
                                        "modified in tandem with spec.parallelism"))
        # the pod template is immutable but for its scheduling directives (node selector and
        # affinity, tolerations, labels, annotations, scheduling gates), and those only while
        # the Job is suspended and never started (validatePodTemplateUpdate)
        mutable = bool(os_.get("suspend")) and not (old.get("status") or {}).get("startTime")
        if (_template_core(ns) != _template_core(os_)) if mutable else (ns.get("template") != os_.get("template")):
            out.append(errors.cause("spec.template", "Invalid value: ...: field is immutable"))
        return out


def _template_core(spec: Obj) -> Obj:
    tmpl = copy.deepcopy(spec.get("template") or {})
    for k in ("labels", "annotations"):
        (tmpl.get("metadata") or {}).pop(k, None)
    pod = tmpl.get("spec") or {}
    for k in ("nodeSelector", "tolerations", "schedulingGates"):
        pod.pop(k, None)
    affinity = pod.get("affinity")
    if isinstance(affinity, dict):  # only its nodeAffinity may change
        affinity.pop("nodeAffinity", None)
        if not affinity:
            pod.pop("affinity")
    return tmpl


def _schedule_error(schedule: str) -> str | None:
    """robfig/cron's message for an unparseable schedule, as upstream's validation reports it."""
    try:
        cron.parse(schedule)
    except cron.CronError as e:
        return str(e)
    return None


def valid_schedule(schedule: str) -> bool:
    s = schedule.strip()
    if s.startswith("TZ=") or s.startswith("CRON_TZ="):
        s = s.split(None, 1)[1] if " " in s else ""
    if s in _CRON_MACROS or s.startswith("@every "):
        return True
    fields = s.split()
    return len(fields) == 5 and all(_CRON_FIELD.match(f) for f in fields)


class CronJobStrategy(Strategy):
    has_status = True
    tracks_generation = True

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj["status"] = {}

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        jt = spec.setdefault("jobTemplate", {})
        jt.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        # SetDefaults_Job is a Job's, not a template's: only the pod template is defaulted
        # here (parallelism, completions, backoffLimit... come when the Job is created)
        tmpl = jt.setdefault("spec", {}).setdefault("template", {})
        tmpl.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        default_pod_spec(tmpl.setdefault("spec", {}))

    def validate(self, obj: Obj) -> list[Cause]:
        out: list[Cause] = []
        spec = obj.get("spec") or {}
        sched = spec.get("schedule")
        if not sched:
            out.append(errors.required("spec.schedule"))
        elif (cron_error := _schedule_error(str(sched))) is not None:
            out.append(errors.cause("spec.schedule", f'Invalid value: "{sched}": {cron_error}'))
        if sched and "TZ" in str(sched):
            out.append(errors.cause("spec.schedule", f'Invalid value: "{sched}": cannot use TZ or CRON_TZ in '
                                    "schedule, use timeZone field instead"))
        pol = spec.get("concurrencyPolicy")
        if pol not in ("Allow", "Forbid", "Replace"):
            out.append(errors.cause("spec.concurrencyPolicy", f'Unsupported value: "{pol}": supported values: '
                                    '"Allow", "Forbid", "Replace"', "FieldValueNotSupported"))
        tz = spec.get("timeZone")
        if tz is not None and not _valid_tz(str(tz)):
            out.append(errors.cause("spec.timeZone", f'Invalid value: "{tz}": unknown time zone {tz}'))
        name = (obj.get("metadata") or {}).get("name", "")
        if len(name) > 52:
            out.append(errors.cause("metadata.name", f'Invalid value: "{name}": must be no more than 52 characters'))
        out.extend(validate_job_spec((spec.get("jobTemplate") or {}).get("spec") or {}, "spec.jobTemplate.spec"))
        return out


def _valid_tz(tz: str) -> bool:
    try:
        import zoneinfo

        zoneinfo.ZoneInfo(tz)
        return True
    except (ValueError, KeyError, ImportError, OSError):
        return False


RESOURCES = [
    ResourceInfo("batch", "v1", "Job", "jobs", True, "io.k8s.api.batch.v1.Job", categories=("all",),
                 subresources=("status",), strategy=JobStrategy()),
    ResourceInfo("batch", "v1", "CronJob", "cronjobs", True, "io.k8s.api.batch.v1.CronJob", short_names=("cj",),
                 categories=("all",), subresources=("status",), strategy=CronJobStrategy()),
]
