"""Which other API objects a pod spec names (upstream's podutil.VisitPodSecretNames
and VisitPodConfigmapNames, all containers): what the ServiceAccount plugin refuses
in a mirror pod, NodeRestriction in a pod a node creates, and what the Node
authorizer lets a node read (nodegraph.py)."""

from __future__ import annotations

from typing import Any


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or []),
            *(spec.get("ephemeralContainers") or [])]


def _projected(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for v in spec.get("volumes") or [] for s in (v.get("projected") or {}).get("sources") or []]


def secret_names(spec: dict[str, Any]) -> set[str]:
    """Image pull secrets, env and envFrom secrets, secret volumes and projections, and
    the secretRef of any other volume type (CSI's nodePublishSecretRef, CephFS, ...)."""
    out = {r.get("name") for r in spec.get("imagePullSecrets") or [] if isinstance(r, dict)}
    for c in _containers(spec):
        out.update(((e.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name") for e in c.get("env") or [])
        out.update((f.get("secretRef") or {}).get("name") for f in c.get("envFrom") or [])
    for v in spec.get("volumes") or []:
        out.add((v.get("secret") or {}).get("secretName"))
        out.add((v.get("azureFile") or {}).get("secretName"))
        for src in v.values():
            if isinstance(src, dict):
                out.update(ref.get("name") for k, ref in src.items()
                           if k.endswith(("secretRef", "SecretRef")) and isinstance(ref, dict))
    out.update((s.get("secret") or {}).get("name") for s in _projected(spec))
    out.discard(None)
    out.discard("")
    return out  # type: ignore[return-value]


def configmap_names(spec: dict[str, Any]) -> set[str]:
    out = set()
    for c in _containers(spec):
        out.update(((e.get("valueFrom") or {}).get("configMapKeyRef") or {}).get("name") for e in c.get("env") or [])
        out.update((f.get("configMapRef") or {}).get("name") for f in c.get("envFrom") or [])
    out.update((v.get("configMap") or {}).get("name") for v in spec.get("volumes") or [])
    out.update((s.get("configMap") or {}).get("name") for s in _projected(spec))
    out.discard(None)
    out.discard("")
    return out  # type: ignore[return-value]


def claim_names(pod: dict[str, Any]) -> set[str]:
    """The PersistentVolumeClaims a pod uses: named ones, and an ephemeral volume's
    `<pod name>-<volume name>` (as upstream's ephemeral.VolumeClaimName)."""
    pod_name = (pod.get("metadata") or {}).get("name") or ""
    out = set()
    for v in (pod.get("spec") or {}).get("volumes") or []:
        if v.get("persistentVolumeClaim"):
            out.add(v["persistentVolumeClaim"].get("claimName") or "")
        elif v.get("ephemeral"):
            out.add(f"{pod_name}-{v.get('name', '')}")
    out.discard("")
    return out


def references_secrets(spec: dict[str, Any]) -> bool:
    return bool(secret_names(spec))


def references_configmaps(spec: dict[str, Any]) -> bool:
    return bool(configmap_names(spec))


def projects(spec: dict[str, Any], source: str) -> bool:
    """Does a projected volume have a `source` (serviceAccountToken, clusterTrustBundle)?"""
    return any(s.get(source) for s in _projected(spec))
