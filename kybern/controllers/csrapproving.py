"""The CSR approving controller (kube-controller-manager's `csrapproving`,
pkg/controller/certificates/approver): a pending request for a kubelet client
certificate (signer kubernetes.io/kube-apiserver-client-kubelet, subject
`system:node:NAME` in `system:nodes`, client usages) is approved when its
requestor may create `certificatesigningrequests/selfnodeclient` (renewing its
own: the requestor is the subject) or `certificatesigningrequests/nodeclient`,
asked with a SubjectAccessReview as upstream. The csrsigning controller then
issues it. How kybern's node agents get their own identities (docs/certificates.md)."""

from __future__ import annotations

import logging
from typing import Any

from kybern.api import certificates as capi
from kybern.client.http import Client
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import CERTIFICATESIGNINGREQUESTS, SUBJECTACCESSREVIEWS
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.controllers.csrsigning import SignerError, kubelet_client_csr
from kybern.machinery import errors, meta

log = logging.getLogger(__name__)

# (subresource a requestor needs, the approval's message), in upstream's order
RECOGNIZERS = (("selfnodeclient", "Auto approving self kubelet client certificate after SubjectAccessReview."),
               ("nodeclient", "Auto approving kubelet client certificate after SubjectAccessReview."))


def recognized(obj: dict[str, Any]) -> list[tuple[str, str]]:
    """The recognizers a CSR matches: a kubelet client CSR for nodeclient, and for
    selfnodeclient too when its requestor is its subject."""
    spec = obj.get("spec") or {}
    if spec.get("signerName") != capi.KUBE_APISERVER_CLIENT_KUBELET:
        return []
    try:
        req = capi.parse_csr(capi.request_bytes(obj))
        kubelet_client_csr(req, list(spec.get("usages") or []))
    except (capi.CSRError, SignerError):
        return []
    cn, _ = capi.subject(req)
    return [r for r in RECOGNIZERS if r[0] == "nodeclient" or spec.get("username") == cn]


def pending(obj: dict[str, Any]) -> bool:
    return not (obj.get("status") or {}).get("certificate") and not capi.has_true(obj, capi.APPROVED) \
        and not capi.has_true(obj, capi.DENIED)


class CSRApprovingController:
    name = "csrapproving"

    def __init__(self, client: Client, informers: InformerFactory) -> None:
        self.client = client
        self.csrs = informers.informer(CERTIFICATESIGNINGREQUESTS)
        self.queue = WorkQueue(self.name, base_delay=0.5, max_delay=30)
        self.csrs.add_handler(self._on_csr)

    def _on_csr(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if typ != "DELETED" and pending(new):
            self.queue.add(new["metadata"]["name"])

    async def run(self, workers: int = 1) -> None:
        await self.csrs.wait_synced()
        await run_workers(self.queue, self.reconcile, workers)

    async def _allowed(self, spec: dict[str, Any], subresource: str) -> bool:
        review = await self.client.create(SUBJECTACCESSREVIEWS, {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": spec.get("username", ""), "uid": spec.get("uid", ""),
                     "groups": list(spec.get("groups") or []), "extra": spec.get("extra") or {},
                     "resourceAttributes": {"group": "certificates.k8s.io", "resource": "certificatesigningrequests",
                                            "verb": "create", "subresource": subresource, "version": "*"}}})
        return bool((review.get("status") or {}).get("allowed"))

    async def reconcile(self, name: str) -> None:
        obj = self.csrs.get(name)
        if obj is None or not pending(obj):
            return
        for subresource, message in recognized(obj):
            if not await self._allowed(obj.get("spec") or {}, subresource):
                continue
            obj = meta.clone_json(obj)
            obj.setdefault("status", {}).setdefault("conditions", []).append({
                "type": capi.APPROVED, "status": "True", "reason": "AutoApproved", "message": message,
                "lastUpdateTime": meta.now()})
            try:
                await self.client.update(CERTIFICATESIGNINGREQUESTS, obj, subresource="approval")
            except errors.StatusError as e:
                if e.code != 404:
                    raise  # a conflict: again from the informer's newer copy
            return
