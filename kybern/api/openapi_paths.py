"""Which REST operations each served resource has, named as kube-apiserver names
them: paths, operationIds (`listAppsV1NamespacedDeployment`), `x-kubernetes-action`,
GVKs, query parameters, request and response types.

This is the format-neutral model; kybern.api.openapi renders it as swagger 2.0
(/openapi/v2) and OpenAPI 3.0 (/openapi/v3/...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, NamedTuple

from kybern.api.registry import ResourceInfo

_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
STATUS = _META + "Status"
DELETE_OPTIONS = _META + "DeleteOptions"
WATCH_EVENT = _META + "WatchEvent"
PATCH = _META + "Patch"
API_RESOURCE_LIST = _META + "APIResourceList"
API_GROUP = _META + "APIGroup"
API_GROUP_LIST = _META + "APIGroupList"
API_VERSIONS = _META + "APIVersions"
SCALE = "io.k8s.api.autoscaling.v1.Scale"

JSON_TYPES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
WATCH_TYPES = JSON_TYPES + ("application/json;stream=watch",
                            "application/vnd.kubernetes.protobuf;stream=watch")
PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json",
               "application/merge-patch+json", "application/strategic-merge-patch+json")
# custom resources take no strategic merge patch (the apiserver answers 415); kubectl apply
# reads this list in /openapi/v3 to choose between a strategic and a JSON merge patch
CR_PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json")


def _patch_types(r: ResourceInfo) -> tuple[str, ...]:
    from kybern.api.customresource import CRStrategy  # lazy: customresource imports much of kybern.api

    return CR_PATCH_TYPES if isinstance(r.strategy, CRStrategy) else PATCH_TYPES
CODE_TEXT = {200: "OK", 201: "Created", 202: "Accepted"}


class Param(NamedTuple):
    name: str
    location: str  # "query" | "path"
    type: str
    description: str


def _q(name: str, type_: str, description: str) -> Param:
    return Param(name, "query", type_, description)


PARAMETERS: dict[str, Param] = {p.name: p for p in [
    _q("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type "
       "\"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag."),
    _q("continue", "string", "The continue option should be set when retrieving more results "
       "from the server. Since this value is server defined, clients may only use the continue "
       "value from a previous query result with identical query parameters."),
    _q("dryRun", "string", "When present, indicates that modifications should not be persisted. "
       "An invalid or unrecognized dryRun directive will result in an error response and no "
       "further processing of the request. Valid values are: - All: all dry run stages will be "
       "processed"),
    _q("fieldManager", "string", "fieldManager is a name associated with the actor or entity "
       "that is making these changes. The value must be less than or 128 characters long, and "
       "only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint."),
    _q("fieldSelector", "string", "A selector to restrict the list of returned objects by their "
       "fields. Defaults to everything."),
    _q("fieldValidation", "string", "fieldValidation instructs the server on how to handle objects "
       "in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: "
       "- Ignore: This will ignore any unknown fields that are silently dropped from the object, "
       "and will ignore all but the last duplicate field that the decoder encounters. This is the "
       "default behavior prior to v1.23. - Warn: This will send a warning via the standard warning "
       "response header for each unknown field that is dropped from the object, and for each "
       "duplicate field that is encountered. The request will still succeed if there are no other "
       "errors, and will only persist the last of any duplicate fields. This is the default in "
       "v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields "
       "would be dropped from the object, or if any duplicate fields are present. The error "
       "returned from the server will contain all unknown and duplicate fields encountered."),
    _q("force", "boolean", "Force is going to \"force\" Apply requests. It means user will "
       "re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply "
       "patch requests."),
    _q("gracePeriodSeconds", "integer", "The duration in seconds before the object should be "
       "deleted. Value must be non-negative integer. The value zero indicates delete immediately."),
    _q("ignoreStoreReadErrorWithClusterBreakingPotential", "boolean", "if set to true, it will "
       "trigger an unsafe deletion of the resource in case the normal deletion flow fails with a "
       "corrupt object error."),
    _q("labelSelector", "string", "A selector to restrict the list of returned objects by their "
       "labels. Defaults to everything."),
    _q("limit", "integer", "limit is a maximum number of responses to return for a list call. If "
       "more items exist, the server will set the `continue` field on the list metadata to a value "
       "that can be used with the same initial query to retrieve the next set of results."),
    _q("orphanDependents", "boolean", "Deprecated: please use the PropagationPolicy, this field "
       "will be deprecated in 1.7. Should the dependent objects be orphaned."),
    _q("pretty", "string", "If 'true', then the output is pretty printed. Defaults to 'false' "
       "unless the user-agent indicates a browser or command-line HTTP tool (curl and wget)."),
    _q("propagationPolicy", "string", "Whether and how garbage collection will be performed. "
       "Acceptable values are: 'Orphan', 'Background', 'Foreground'."),
    _q("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions "
       "a request may be served from. Defaults to unset"),
    _q("resourceVersionMatch", "string", "resourceVersionMatch determines how resourceVersion is "
       "applied to list calls. Defaults to unset"),
    _q("sendInitialEvents", "boolean", "`sendInitialEvents=true` may be set together with "
       "`watch=true`. In that case, the watch stream will begin with synthetic events to produce "
       "the current state of objects in the collection."),
    _q("timeoutSeconds", "integer", "Timeout for the list/watch call. This limits the duration of "
       "the call, regardless of any activity or inactivity."),
    _q("watch", "boolean", "Watch for changes to the described resources and return them as a "
       "stream of add, update, and remove notifications. Specify resourceVersion."),
    # pods/log
    _q("container", "string", "The container for which to stream logs. Defaults to only "
       "container if there is one container in the pod."),
    _q("follow", "boolean", "Follow the log stream of the pod. Defaults to false."),
    _q("insecureSkipTLSVerifyBackend", "boolean", "insecureSkipTLSVerifyBackend indicates that "
       "the apiserver should not confirm the validity of the serving certificate of the backend."),
    _q("limitBytes", "integer", "If set, the number of bytes to read from the server before "
       "terminating the log output."),
    _q("previous", "boolean", "Return previous terminated container logs. Defaults to false."),
    _q("sinceSeconds", "integer", "A relative time in seconds before the current time from which "
       "to show logs."),
    _q("stream", "string", "Specify which container log stream to return to the client. "
       "Acceptable values are \"All\", \"Stdout\" and \"Stderr\"."),
    _q("tailLines", "integer", "If set, the number of lines from the end of the logs to show."),
    _q("timestamps", "boolean", "If true, add an RFC3339 or RFC3339Nano timestamp at the "
       "beginning of every line of log output. Defaults to false."),
    # pods/exec, attach, portforward
    _q("command", "string", "Command is the remote command to execute. argv array. Not executed "
       "within a shell."),
    _q("stderr", "boolean", "Redirect the standard error stream of the pod for this call."),
    _q("stdin", "boolean", "Redirect the standard input stream of the pod for this call."),
    _q("stdout", "boolean", "Redirect the standard output stream of the pod for this call."),
    _q("tty", "boolean", "TTY if true indicates that a tty will be allocated for the call."),
    _q("ports", "integer", "List of ports to forward Required when using WebSockets"),
    Param("name", "path", "string", "name of the resource"),
    Param("namespace", "path", "string", "object name and auth scope, such as for teams and "
          "projects"),
    Param("path", "path", "string", "path to the resource"),
]}

LIST_PARAMS = ("allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit",
               "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds",
               "watch")
WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")
DELETE_PARAMS = ("dryRun", "gracePeriodSeconds", "ignoreStoreReadErrorWithClusterBreakingPotential",
                 "orphanDependents", "propagationPolicy")
DELETE_COLLECTION_PARAMS = ("continue", "dryRun", "fieldSelector", "gracePeriodSeconds",
                            "ignoreStoreReadErrorWithClusterBreakingPotential", "labelSelector",
                            "limit", "orphanDependents", "propagationPolicy", "resourceVersion",
                            "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds")
LOG_PARAMS = ("container", "follow", "insecureSkipTLSVerifyBackend", "limitBytes", "previous",
              "sinceSeconds", "stream", "tailLines", "timestamps")
EXEC_PARAMS = ("command", "container", "stderr", "stdin", "stdout", "tty")
ATTACH_PARAMS = ("container", "stderr", "stdin", "stdout", "tty")


@dataclass
class Operation:
    method: str
    operation_id: str
    description: str
    tag: str
    action: str = ""
    gvk: dict[str, str] | None = None
    parameters: tuple[str, ...] = ()
    body: str = ""              # definition name of the request body
    body_required: bool = True
    response: str = ""          # definition name, or "string"/"object"
    codes: tuple[int, ...] = (200,)
    consumes: tuple[str, ...] = ("*/*",)
    produces: tuple[str, ...] = JSON_TYPES


@dataclass
class PathItem:
    path: str
    parameters: tuple[str, ...] = ()
    operations: list[Operation] = field(default_factory=list)


def gv_path(group: str, version: str) -> str:
    return f"/apis/{group}/{version}" if group else f"/api/{version}"


def group_id(group: str) -> str:
    """`apps` -> `Apps`, `rbac.authorization.k8s.io` -> `RbacAuthorization`, "" -> `Core`."""
    if not group:
        return "Core"
    if group.endswith(".k8s.io"):
        group = group[: -len(".k8s.io")]
    return "".join(part[:1].upper() + part[1:] for part in group.replace("-", ".").split("."))


def _tag(group: str, version: str) -> str:
    gid = group_id(group)
    return f"{gid[:1].lower()}{gid[1:]}_{version}"


def _gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "kind": kind, "version": version}


def path_items(resources: Iterable[ResourceInfo], *, include_roots: bool,
               group_version: tuple[str, str] | None = None) -> list[PathItem]:
    """All path items for `resources`, plus each group-version's resource list root."""
    resources = sorted(resources, key=lambda r: (r.group, r.version, r.plural))
    items: list[PathItem] = []
    gvs = sorted({(r.group, r.version) for r in resources} | ({group_version} if group_version else set()))
    if include_roots:
        items += [core_versions_item(), api_versions_item()]
        items += [group_item(g) for g in sorted({g for g, _ in gvs if g})]
    for group, version in gvs:
        gid = group_id(group) + version[:1].upper() + version[1:]
        items.append(PathItem(gv_path(group, version) + "/", (), [Operation(
            "get", f"get{gid}APIResources", "get available resources", _tag(group, version),
            response=API_RESOURCE_LIST, consumes=JSON_TYPES)]))
    for r in resources:
        items += _resource_items(r)
    return items


def core_versions_item() -> PathItem:
    return PathItem("/api/", (), [Operation("get", "getCoreAPIVersions", "get available API versions",
                                            "core", response=API_VERSIONS, consumes=JSON_TYPES)])


def api_versions_item() -> PathItem:
    return PathItem("/apis/", (), [Operation("get", "getAPIVersions", "get available API versions",
                                             "apis", response=API_GROUP_LIST, consumes=JSON_TYPES)])


def group_item(group: str) -> PathItem:
    gid = group_id(group)
    return PathItem(f"/apis/{group}/", (), [Operation(
        "get", f"get{gid}APIGroup", "get information of a group", gid[:1].lower() + gid[1:],
        response=API_GROUP, consumes=JSON_TYPES)])


def _resource_items(r: ResourceInfo) -> list[PathItem]:
    gid = group_id(r.group) + r.version[:1].upper() + r.version[1:]
    ns = "Namespaced" if r.namespaced else ""
    tag = _tag(r.group, r.version)
    gvk = _gvk(r.group, r.version, r.kind)
    prefix = gv_path(r.group, r.version)
    scope = "/namespaces/{namespace}" if r.namespaced else ""
    base = f"{prefix}{scope}/{r.plural}"
    scope_params: tuple[str, ...] = ("namespace",) if r.namespaced else ()
    verbs = set(r.verbs)
    list_def = r.definition + "List"
    items: list[PathItem] = []

    def op(method: str, verb: str, suffix: str, description: str, action: str, **kw: object) -> Operation:
        return Operation(method, f"{verb}{gid}{suffix}", description, tag, action, **kw)  # type: ignore[arg-type]

    collection = PathItem(base, scope_params + ("pretty",))
    if "list" in verbs:
        collection.operations.append(op(
            "get", "list", f"{ns}{r.kind}", f"list or watch objects of kind {r.kind}", "list",
            gvk=gvk, parameters=LIST_PARAMS, response=list_def, produces=WATCH_TYPES))
    if "create" in verbs:
        collection.operations.append(op(
            "post", "create", f"{ns}{r.kind}", f"create a {r.kind}", "post", gvk=gvk,
            parameters=WRITE_PARAMS, body=r.definition, response=r.definition, codes=(200, 201, 202)))
    if "deletecollection" in verbs:
        collection.operations.append(op(
            "delete", "delete", f"Collection{ns}{r.kind}", f"delete collection of {r.kind}",
            "deletecollection", gvk=gvk, parameters=DELETE_COLLECTION_PARAMS, body=DELETE_OPTIONS,
            body_required=False, response=STATUS))
    if collection.operations:
        items.append(collection)

    item = PathItem(f"{base}/{{name}}", ("name",) + scope_params + ("pretty",))
    if "get" in verbs:
        item.operations.append(op("get", "read", f"{ns}{r.kind}", f"read the specified {r.kind}",
                                  "get", gvk=gvk, response=r.definition, consumes=JSON_TYPES))
    if "update" in verbs:
        item.operations.append(op(
            "put", "replace", f"{ns}{r.kind}", f"replace the specified {r.kind}", "put", gvk=gvk,
            parameters=WRITE_PARAMS, body=r.definition, response=r.definition, codes=(200, 201)))
    if "delete" in verbs:
        item.operations.append(op(
            "delete", "delete", f"{ns}{r.kind}", f"delete a {r.kind}", "delete", gvk=gvk,
            parameters=DELETE_PARAMS, body=DELETE_OPTIONS, body_required=False, response=STATUS,
            codes=(200, 202)))
    if "patch" in verbs:
        item.operations.append(op(
            "patch", "patch", f"{ns}{r.kind}", f"partially update the specified {r.kind}", "patch",
            gvk=gvk, parameters=WRITE_PARAMS + ("force",), body=PATCH, response=r.definition,
            codes=(200, 201), consumes=_patch_types(r)))
    if item.operations:
        items.append(item)

    for sub in r.subresources:
        items += _subresource_items(r, sub, base, scope_params, gid, ns, tag, gvk)

    if "watch" in verbs:
        watch_prefix = f"{prefix}/watch{scope}/{r.plural}"
        items.append(PathItem(watch_prefix, scope_params + LIST_PARAMS + ("pretty",), [op(
            "get", "watch", f"{ns}{r.kind}List", f"watch individual changes to a list of {r.kind}. "
            "deprecated: use the 'watch' parameter with a list operation instead.", "watchlist",
            gvk=gvk, response=WATCH_EVENT, produces=WATCH_TYPES)]))
        items.append(PathItem(watch_prefix + "/{name}",
                              ("name",) + scope_params + LIST_PARAMS + ("pretty",), [op(
            "get", "watch", f"{ns}{r.kind}", f"watch changes to an object of kind {r.kind}. "
            "deprecated: use the 'watch' parameter with a list operation instead, filtered to a "
            "single item with the 'fieldSelector' parameter.", "watch", gvk=gvk,
            response=WATCH_EVENT, produces=WATCH_TYPES)]))
    if r.namespaced and "list" in verbs:
        items.append(PathItem(f"{prefix}/{r.plural}", LIST_PARAMS + ("pretty",), [op(
            "get", "list", f"{r.kind}ForAllNamespaces", f"list or watch objects of kind {r.kind}",
            "list", gvk=gvk, response=list_def, produces=WATCH_TYPES)]))
        if "watch" in verbs:
            items.append(PathItem(f"{prefix}/watch/{r.plural}", LIST_PARAMS + ("pretty",), [op(
                "get", "watch", f"{r.kind}ListForAllNamespaces", f"watch individual changes to a "
                f"list of {r.kind}. deprecated: use the 'watch' parameter with a list operation "
                "instead.", "watchlist", gvk=gvk, response=WATCH_EVENT, produces=WATCH_TYPES)]))
    return items


def _subresource_items(r: ResourceInfo, sub: str, base: str, scope_params: tuple[str, ...], gid: str,
                       ns: str, tag: str, gvk: dict[str, str]) -> list[PathItem]:
    path = f"{base}/{{name}}/{sub}"
    params = ("name",) + scope_params + ("pretty",)
    title = sub[:1].upper() + sub[1:]
    kind_id = f"{ns}{r.kind}{title}"

    def op(method: str, verb: str, description: str, action: str, **kw: object) -> Operation:
        return Operation(method, f"{verb}{gid}{kind_id}", description, tag, action, **kw)  # type: ignore[arg-type]

    if sub in ("status", "scale"):
        body = r.definition if sub == "status" else SCALE
        sub_gvk = gvk if sub == "status" else _gvk("autoscaling", "v1", "Scale")
        return [PathItem(path, params, [
            op("get", "read", f"read {sub} of the specified {r.kind}", "get", gvk=sub_gvk,
               response=body, consumes=JSON_TYPES),
            op("put", "replace", f"replace {sub} of the specified {r.kind}", "put", gvk=sub_gvk,
               parameters=WRITE_PARAMS, body=body, response=body, codes=(200, 201)),
            op("patch", "patch", f"partially update {sub} of the specified {r.kind}", "patch",
               gvk=sub_gvk, parameters=WRITE_PARAMS + ("force",), body=PATCH, response=body,
               codes=(200, 201), consumes=_patch_types(r)),
        ])]
    if sub in ("binding", "eviction"):
        definition = "io.k8s.api.core.v1.Binding" if sub == "binding" else "io.k8s.api.policy.v1.Eviction"
        sub_gvk = _gvk("", "v1", "Binding") if sub == "binding" else _gvk("policy", "v1", "Eviction")
        return [PathItem(path, params, [op(
            "post", "create", f"create {sub} of a {r.kind}", "post", gvk=sub_gvk,
            parameters=WRITE_PARAMS, body=definition, response=definition, codes=(200, 201, 202))])]
    if sub == "log":
        return [PathItem(path, params + LOG_PARAMS, [op(
            "get", "read", f"read log of the specified {r.kind}", "get", gvk=gvk, response="string",
            consumes=JSON_TYPES, produces=("text/plain", "application/json", "application/yaml",
                                           "application/vnd.kubernetes.protobuf"))])]
    if sub in ("exec", "attach", "portforward"):
        options = {"exec": ("PodExecOptions", EXEC_PARAMS), "attach": ("PodAttachOptions", ATTACH_PARAMS),
                   "portforward": ("PodPortForwardOptions", ("ports",))}[sub]
        opts_gvk = _gvk("", "v1", options[0])
        name = {"exec": "Exec", "attach": "Attach", "portforward": "Portforward"}[sub]
        return [PathItem(path, ("name",) + scope_params + options[1], [
            Operation(method, f"connect{gid}{method.capitalize()}{ns}{r.kind}{name}",
                      f"connect {method.upper()} requests to {sub} of {r.kind}", tag, "connect",
                      gvk=opts_gvk, response="string", consumes=("*/*",), produces=("*/*",))
            for method in ("get", "post")])]
    return []


def referenced_definitions(resources: Iterable[ResourceInfo], items: Iterable[PathItem]) -> set[str]:
    """Definitions a document must carry: served kinds, their lists, bodies and answers."""
    out = {STATUS, DELETE_OPTIONS, WATCH_EVENT, PATCH, API_RESOURCE_LIST}
    for r in resources:
        out.add(r.definition)
        out.add(r.definition + "List")
    for item in items:
        for op in item.operations:
            for name in (op.body, op.response):
                if name and name not in ("string", "object"):
                    out.add(name)
    return out
