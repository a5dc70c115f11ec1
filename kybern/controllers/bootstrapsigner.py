"""Bootstrap signer (upstream pkg/controller/bootstrap/bootstrapsigner) and the
cluster-info ConfigMap kubeadm's `init` publishes.

`kube-public/cluster-info` holds `kubeconfig`: a kubeconfig naming this cluster's API
address and CA, no credentials. Anyone may read it (the Role
`kybern:bootstrap-signer-clusterinfo`, bound to `system:anonymous`, as kubeadm's
`kubeadm:bootstrap-signer-clusterinfo`), so a machine that is to join learns the CA
from it. To trust what it read, the joining machine checks a signature: for each
bootstrap token with `usage-bootstrap-signing: "true"`, this controller keeps
`jws-kubeconfig-<token id>`, the token's HMAC signature of the kubeconfig
(`bootstrap_token.detached_signature`), and drops those of tokens that are gone or
expired. kybern makes the ConfigMap when it is missing (kubeadm does it once at init).
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path

from kybern.api.bootstrap_token import SECRET_TYPE, decoded, detached_signature, expired
from kybern.client.http import Client
from kybern.client.informer import Informer
from kybern.client.informer_factory import InformerFactory
from kybern.client.resources import CONFIGMAPS, SECRETS, Resource
from kybern.client.workqueue import WorkQueue, run_workers
from kybern.machinery import errors

log = logging.getLogger(__name__)

NAMESPACE, NAME = "kube-public", "cluster-info"
SIGNATURE_PREFIX = "jws-kubeconfig-"
ROLE = "kybern:bootstrap-signer-clusterinfo"
ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles", "Role")
ROLEBINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")


def cluster_kubeconfig(server: str, ca_pem: str) -> str:
    """kubeadm's cluster-info kubeconfig: one cluster (server, CA data), nothing else."""
    import yaml

    doc = {"apiVersion": "v1", "kind": "Config", "clusters": [{"name": "", "cluster": {
        "certificate-authority-data": base64.b64encode(ca_pem.encode()).decode(), "server": server}}],
        "contexts": None, "current-context": "", "preferences": {}, "users": None}
    return str(yaml.safe_dump(doc, default_flow_style=False))  # keys sorted, as kubeadm's Go YAML


class BootstrapSigner:
    name = "bootstrapsigner"

    def __init__(self, client: Client, informers: InformerFactory) -> None:
        self.client = client
        self.ca = Path(client.ca_file).read_text() if client.ca_file else ""
        self.configmaps = Informer(client, CONFIGMAPS, namespace=NAMESPACE, field_selector=f"metadata.name={NAME}")
        self.secrets = Informer(client, SECRETS, namespace="kube-system", field_selector=f"type={SECRET_TYPE}")
        self.queue = WorkQueue(self.name, base_delay=0.5, max_delay=30)
        for inf in (self.configmaps, self.secrets):
            inf.add_handler(lambda *_: self.queue.add(NAME))

    async def run(self, workers: int = 1) -> None:
        if not self.ca:
            log.info("%s: no CA file (plain HTTP): no cluster-info to publish", self.name)
            return
        for inf in (self.configmaps, self.secrets):
            inf.start()
        try:
            await self.configmaps.wait_synced()
            await self.secrets.wait_synced()
            await self._public_read()
            self.queue.add(NAME)
            await run_workers(self.queue, self.reconcile, workers)
        finally:
            for inf in (self.configmaps, self.secrets):
                await inf.stop()

    async def _public_read(self) -> None:
        """The Role and RoleBinding that let anyone read cluster-info (kubeadm makes them at init)."""
        role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": ROLE, "namespace": NAMESPACE},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [NAME], "verbs": ["get"]}]}
        binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": ROLE, "namespace": NAMESPACE},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE},
                   "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}]}
        for res, obj in ((ROLES, role), (ROLEBINDINGS, binding)):
            try:
                await self.client.create(res, obj, NAMESPACE)
            except errors.StatusError as e:
                if e.code != 409:  # kept as it is when it exists: an admin may have narrowed it
                    raise

    async def reconcile(self, _key: str) -> None:
        cm = self.configmaps.get(f"{NAMESPACE}/{NAME}")
        if cm is None:
            try:
                await self.client.create(CONFIGMAPS, {
                    "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": NAME, "namespace": NAMESPACE},
                    "data": {"kubeconfig": cluster_kubeconfig(self.client.server, self.ca)}}, NAMESPACE)
            except errors.StatusError as e:
                if e.code != 409:
                    raise
            return  # its event brings us back to sign it
        data = dict(cm.get("data") or {})
        content = data.get("kubeconfig")
        if content is None:
            return  # nothing to sign, as upstream
        want = {k: v for k, v in data.items() if not k.startswith(SIGNATURE_PREFIX)}
        for s in self.secrets.list(namespace="kube-system"):
            d = decoded(s)
            tid, secret = d.get("token-id", ""), d.get("token-secret", "")
            if (s.get("type") != SECRET_TYPE or s["metadata"].get("deletionTimestamp") or not tid or not secret
                    or d.get("usage-bootstrap-signing") != "true" or expired(d)):
                continue
            want[SIGNATURE_PREFIX + tid] = detached_signature(content, tid, secret)
        if want != data:
            try:
                await self.client.update(CONFIGMAPS, {**cm, "data": want})
            except errors.StatusError as e:
                if e.code not in (404, 409):  # the cache is behind: its event requeues us
                    raise
