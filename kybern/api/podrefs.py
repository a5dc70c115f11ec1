"""Which other API objects a pod spec names (upstream's podutil.VisitPodSecretNames
and VisitPodConfigmapNames, all containers): what the ServiceAccount plugin refuses
in a mirror pod and NodeRestriction in a pod a node creates."""

from __future__ import annotations

from typing import Any


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or []),
            *(spec.get("ephemeralContainers") or [])]


def _projected(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for v in spec.get("volumes") or [] for s in (v.get("projected") or {}).get("sources") or []]


def references_secrets(spec: dict[str, Any]) -> bool:
    """Image pull secrets, env and envFrom secrets, secret volumes and projections, and
    the secretRef of any other volume type (CSI, CephFS, ...)."""
    containers = _containers(spec)
    return bool(
        spec.get("imagePullSecrets")
        or any((e.get("valueFrom") or {}).get("secretKeyRef") for c in containers for e in c.get("env") or [])
        or any(f.get("secretRef") for c in containers for f in c.get("envFrom") or [])
        or any(v.get("secret") or any(isinstance(src, dict) and isinstance(src.get("secretRef"), dict)
                                      for src in v.values())
               for v in spec.get("volumes") or [])
        or any(s.get("secret") for s in _projected(spec)))


def references_configmaps(spec: dict[str, Any]) -> bool:
    containers = _containers(spec)
    return bool(
        any((e.get("valueFrom") or {}).get("configMapKeyRef") for c in containers for e in c.get("env") or [])
        or any(f.get("configMapRef") for c in containers for f in c.get("envFrom") or [])
        or any(v.get("configMap") for v in spec.get("volumes") or [])
        or any(s.get("configMap") for s in _projected(spec)))


def projects(spec: dict[str, Any], source: str) -> bool:
    """Does a projected volume have a `source` (serviceAccountToken, clusterTrustBundle)?"""
    return any(s.get(source) for s in _projected(spec))
