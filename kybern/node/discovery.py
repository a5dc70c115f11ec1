"""Discovering the cluster's CA with a bootstrap token, as `kubeadm join
--discovery-token-ca-cert-hash`: the joining machine needs no copy of ca.crt.

The agent reads `kube-public/cluster-info` without credentials and without
verifying the server (it does not know the CA yet), then trusts what it read
only if (1) the ConfigMap carries `jws-kubeconfig-<token id>` and it is the
token's signature of the kubeconfig there (proof that whoever published it holds
the token: controllers/bootstrapsigner.py), and (2) the CA in that kubeconfig has
the public key pinned by `sha256:<hex of the SHA-256 of its SubjectPublicKeyInfo>`
(kubeadm's hash; `kybern token create --print-join-command` prints it). Messages are
kubeadm's. Run in a short-lived child (`python -m kybern.node.discovery`), as the
certificate bootstrap, so the x509 library does not stay in the agent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import ssl
from pathlib import Path
from typing import Any

from kybern.api.bootstrap_token import TOKEN, detached_signature


class DiscoveryError(RuntimeError):
    pass


def ca_hash(ca_pem: bytes) -> str:
    """kubeadm's pin of a CA: sha256 of the certificate's SubjectPublicKeyInfo."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(ca_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


async def discover(server: str, token: str, pins: list[str], *, unsafe_skip_ca_verification: bool = False) -> bytes:
    """The cluster's CA (PEM), read from cluster-info and checked as above."""
    import aiohttp
    import yaml

    m = TOKEN.match(token)
    if m is None:
        raise DiscoveryError("the discovery needs a bootstrap token (<id>.<secret>, [a-z0-9]{6}.[a-z0-9]{16})")
    token_id, token_secret = m.groups()
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
    url = server.rstrip("/") + "/api/v1/namespaces/kube-public/configmaps/cluster-info"
    async with aiohttp.ClientSession() as s, s.get(url, ssl=insecure) as r:
        if r.status != 200:
            raise DiscoveryError(f"failed to request the cluster-info ConfigMap: {r.status} {await r.text()}")
        cm = await r.json()
    data = cm.get("data") or {}
    content = data.get("kubeconfig")
    if not content:
        raise DiscoveryError("there is no kubeconfig in the cluster-info ConfigMap")
    sig = data.get(f"jws-kubeconfig-{token_id}")
    if not sig:
        raise DiscoveryError(f'there is no JWS signed token in the cluster-info ConfigMap. This token id "{token_id}" '
                             "is invalid for this cluster, can't connect")
    if not hmac.compare_digest(sig, detached_signature(content, token_id, token_secret)):
        raise DiscoveryError("failed to verify JWS signature of received cluster info object, can't trust this "
                             "API Server")
    cfg = yaml.safe_load(content)
    try:
        ca_pem = base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"])
    except (KeyError, IndexError, TypeError, ValueError):
        raise DiscoveryError("the cluster-info kubeconfig names no CA") from None
    if not unsafe_skip_ca_verification:
        got = ca_hash(ca_pem)
        if got not in pins:
            raise DiscoveryError(f"cluster CA found in cluster-info ConfigMap is invalid: none of the public keys "
                                 f'"{got}" are pinned')
    return ca_pem


async def discover_in_child(server: str, token: str, pins: list[str], out: str | os.PathLike[str],
                            unsafe_skip_ca_verification: bool = False) -> str:
    """discover() in `python -m kybern.node.discovery`; the CA is written to `out`."""
    from kybern.node import childcall

    args = {"server": server, "token": token, "pins": pins, "out": str(out), "unsafe": unsafe_skip_ca_verification}
    try:
        answer = await childcall.call("kybern.node.discovery", args, DiscoveryError)
    except childcall.ChildFailed as e:
        raise DiscoveryError(f"discovery failed: {e}") from None
    return str(answer["ca_file"])


async def _child(args: dict[str, Any]) -> dict[str, Any]:
    ca = await discover(args["server"], args["token"], args["pins"], unsafe_skip_ca_verification=args["unsafe"])
    out = Path(args["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(ca)
    os.replace(tmp, out)
    return {"ca_file": str(out)}


if __name__ == "__main__":
    from kybern.node import childcall

    childcall.serve(_child, DiscoveryError, OSError)
