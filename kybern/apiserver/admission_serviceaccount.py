"""The ServiceAccount admission plugin's token volume (upstream
plugin/pkg/admission/serviceaccount): on pod create, unless the pod or its
service account says `automountServiceAccountToken: false`, the pod gets a
projected volume `kube-api-access-<5 random>` — a bound service account token
(`token`, 3607 s), the cluster's CA (`ca.crt` from the `kube-root-ca.crt`
ConfigMap) and its namespace (`namespace`, downward API) — mounted read-only at
/var/run/secrets/kubernetes.io/serviceaccount in every init and app container
that does not mount something there already (ephemeral containers are left
alone, as upstream). The node agent fills it (kybern/node/volumes.py)."""

from __future__ import annotations

import secrets
from typing import Any

from kybern.api import podrefs
from kybern.machinery import meta

VOLUME_PREFIX = meta.TOKEN_VOLUME_PREFIX
MOUNT_PATH = meta.SERVICE_ACCOUNT_MOUNT_PATH
TOKEN_EXPIRATION = 3607  # upstream's: an hour and a few seconds, so a rotation is noticed
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # upstream's utilrand alphabet (no vowels, no 0/1/3)


def mirror_pod_refusal(pod: dict[str, Any]) -> str | None:
    """Why a mirror pod (a static pod's, kybern/node/staticpods.py) is refused, as
    upstream's plugin: it may not name a service account, reference a secret or
    project a service account token; nothing is added to it."""
    spec = pod.get("spec") or {}
    if spec.get("serviceAccountName") or spec.get("serviceAccount"):
        return "a mirror pod may not reference service accounts"
    if podrefs.references_secrets(spec):
        return "a mirror pod may not reference secrets"
    if podrefs.projects(spec, "serviceAccountToken"):
        return "a mirror pod may not use ServiceAccountToken volume projections"
    return None


def _suffix() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(5))


def token_volume(name: str) -> dict[str, Any]:
    return {"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION, "path": "token"}},
        {"configMap": {"name": meta.ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}


def mount_token(pod: dict[str, Any], service_account: dict[str, Any] | None) -> None:
    """Add the token volume and its mounts to `pod` (a create), as upstream."""
    spec = pod.setdefault("spec", {})
    automount = spec.get("automountServiceAccountToken")
    if automount is None and service_account is not None:
        automount = service_account.get("automountServiceAccountToken")
    if automount is False:
        return
    volumes = spec.get("volumes") or []
    name = next((v.get("name") for v in volumes if str(v.get("name", "")).startswith(VOLUME_PREFIX)), None)
    existing = name is not None
    if name is None:
        taken = {v.get("name") for v in volumes}
        name = VOLUME_PREFIX + _suffix()
        while name in taken:
            name = VOLUME_PREFIX + _suffix()
    needed = False
    for kind in ("initContainers", "containers"):
        for c in spec.get(kind) or []:
            mounts = c.get("volumeMounts") or []
            if any(m.get("mountPath") == MOUNT_PATH for m in mounts):
                continue
            c["volumeMounts"] = [*mounts, {"name": name, "readOnly": True, "mountPath": MOUNT_PATH}]
            needed = True
    if needed and not existing:
        spec["volumes"] = [*volumes, token_volume(name)]


