"""Token cleaner (upstream pkg/controller/bootstrap/tokencleaner): a bootstrap token
Secret (`kube-system`, type `bootstrap.kubernetes.io/token`) whose `expiration` has
passed is deleted (preconditioned on its uid), so the token stops authenticating
(kybern/apiserver/bootstraptokens.py) and is gone from `kubectl get secrets`. A
token not yet expired is looked at again when it expires."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from kybern.api.bootstrap_token import SECRET_TYPE, decoded, expiration, expired
from kybern.client.http import Client
from kybern.client.informer import Informer
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import SECRETS
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.machinery import errors

log = logging.getLogger(__name__)


class TokenCleaner:
    name = "tokencleaner"

    def __init__(self, client: Client, informers: InformerFactory) -> None:
        self.client = client
        # its own informer: only the bootstrap token Secrets of kube-system, as upstream's
        self.secrets = Informer(client, SECRETS, namespace="kube-system", field_selector=f"type={SECRET_TYPE}")
        self.queue = WorkQueue(self.name, base_delay=0.5, max_delay=30)
        self.secrets.add_handler(self._on_secret)

    def _on_secret(self, typ: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if typ != "DELETED":
            self.queue.add(new["metadata"]["name"])

    async def run(self, workers: int = 1) -> None:
        self.secrets.start()
        try:
            await self.secrets.wait_synced()
            await run_workers(self.queue, self.reconcile, workers)
        finally:
            await self.secrets.stop()

    async def reconcile(self, name: str) -> None:
        secret = self.secrets.get(f"kube-system/{name}")
        if secret is None or secret.get("type") != SECRET_TYPE or secret["metadata"].get("deletionTimestamp"):
            return
        data = decoded(secret)
        if not expired(data):
            when = expiration(data)
            if when is not None:
                self.queue.add_after(name, max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds()) + 0.1)
            return
        log.info("%s: deleting expired bootstrap token secret kube-system/%s", self.name, name)
        try:
            await self.client.delete(SECRETS, name, "kube-system", preconditions={"uid": secret["metadata"]["uid"]})
        except errors.StatusError as e:
            if e.code not in (404, 409):  # gone already, or replaced by a new Secret of that name
                raise

