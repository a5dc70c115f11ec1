"""Runs kopf's own end-to-end tests (vendored here, see README.md) against a private
`kybern up` cluster, as kopf's CI runs them against k3s: the tests call `kubectl` (the
real one, from PATH) and run operators with `kopf.testing.KopfRunner`, both of which
find the cluster through `KUBECONFIG`, which this fixture points at the cluster's
kubeconfig for the package's tests (and restores afterwards).

Upstream runs pytest from its checkout's root and names files relative to it
(`examples/crd.yaml`, `examples/03-exceptions/example.py`): tests under `tests/` here
run with this directory, the vendored copy of that root, as their working directory.
The examples' own tests (`examples/*/test_*.py`) name their files relative to
wherever pytest was started, as upstream, and need no change of directory.

The examples create pods of the public image `busybox`. kybern never pulls from a
registry (docs/node.md, Images); like a user would, the fixture imports a local
stand-in under that name: no files of its own and busybox's PATH, so the commands
the pods run (`sh`, `sleep`) are the host's, as the process runtime looks them up.

`examples/17-admission` runs `kopf.WebhookAutoServer()`, whose development-mode helpers
need kopf's `dev` extras: `certvalidator` (to guess the cluster's kind from the
apiserver's serving certificate) and `certbuilder` (to make the webhook server's
self-signed certificate), both on `oscrypto`. oscrypto 1.3.0, the newest on PyPI, cannot
load OpenSSL 3.0.10 and later ("Error detecting the version of libcrypto";
wbond/oscrypto#78, fixed upstream but not released: kopf's CI installs it from a git
commit, which cannot be fetched here). When those imports fail, the fixture stands in
for the two helpers with the same steps on `cryptography` (kybern's own dependency):
`guess_host` reads the apiserver's certificate, checks that it is valid for the host
the kubeconfig names (what certvalidator's `validate_tls` checks of a self-trusted
certificate) and looks for k3s/minikube/docker-desktop names, then the `+k3s` version;
`build_certificate` makes the same self-signed CA certificate (subject, SANs, key usages).
Everything else (the webhook server, the webhook configurations kopf manages, the
apiserver's calls) is kopf's own code.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest

from kybern.node.images import ImageStore
from tests.conftest import Cluster, start_cluster, stop_cluster

HERE = Path(__file__).parent
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def oscrypto_works() -> bool:
    try:
        import certbuilder  # noqa: F401
        import oscrypto.errors
    except ImportError:
        return False
    try:
        import certvalidator  # noqa: F401
        import oscrypto.asymmetric
    except (ImportError, oscrypto.errors.LibraryNotFoundError):  # OpenSSL >= 3.0.10
        return False
    return True


async def guess_host() -> str | None:
    """kopf's ClusterDetector.guess_host (kopf/_kits/webhooks.py) on `cryptography`."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    from kopf._cogs.clients import api, scanning
    from kopf._cogs.configs import configuration
    from kopf._kits.webhooks import (
        WebhookDockerDesktopServer,
        WebhookK3dServer,
        WebhookMinikubeServer,
    )

    hostname, pem = await api.read_sslcert()
    cert = x509.load_pem_x509_certificate(pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = x509.SubjectAlternativeName([])
    names = san.get_values_for_type(x509.DNSName)
    try:
        valid = ipaddress.ip_address(hostname) in san.get_values_for_type(x509.IPAddress)
    except ValueError:
        valid = hostname in names
    if not valid:
        raise AssertionError(f"the apiserver's certificate is not valid for {hostname}")

    def attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
        return next((str(a.value) for a in name.get_attributes_for_oid(oid)), "")

    issuer_cn = attr(cert.issuer, NameOID.COMMON_NAME)
    subject_cn = attr(cert.subject, NameOID.COMMON_NAME)
    subject_org = attr(cert.subject, NameOID.ORGANIZATION_NAME)
    if subject_cn == 'k3s' or subject_org == 'k3s' or issuer_cn.startswith('k3s-'):
        return WebhookK3dServer.DEFAULT_HOST
    elif subject_cn == 'minikube' or issuer_cn == 'minikubeCA':
        return WebhookMinikubeServer.DEFAULT_HOST
    elif 'docker-for-desktop' in names:
        return WebhookDockerDesktopServer.DEFAULT_HOST
    versioninfo = await scanning.read_version(settings=configuration.OperatorSettings(),
                                              logger=logging.getLogger("kopf._kits.webhooks"))
    if '+k3s' in versioninfo.get('gitVersion', ''):
        return WebhookK3dServer.DEFAULT_HOST
    return None


def build_certificate(hostnames: Collection[str], password: str | None = None) -> tuple[bytes, bytes]:
    """kopf's WebhookServer.build_certificate (kopf/_kits/webhooks.py) on `cryptography`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    parsed_ips: dict[str, ipaddress.IPv4Address | ipaddress.IPv6Address] = {}
    for hostname in hostnames:
        try:
            parsed_ips[hostname] = ipaddress.ip_address(hostname)
        except ValueError:
            pass
    true_hostnames = [h for h in hostnames if h not in parsed_ips]
    accessible_ips = [ip for ip in parsed_ips.values() if not ip.is_unspecified]
    common_name = true_hostnames[0] if true_hostnames else str(accessible_ips[0])
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    sans: list[x509.GeneralName] = [x509.IPAddress(ip) for ip in set(accessible_ips)]
    sans += [x509.DNSName(h) for h in set(true_hostnames) | {str(ip) for ip in accessible_ips}]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                         key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(key, hashes.SHA256()))
    encryption = (serialization.BestAvailableEncryption(password.encode()) if password
                  else serialization.NoEncryption())
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))


@pytest.fixture(scope="package", autouse=True)
def kopf_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("kopf")
    c = start_cluster(base)
    mp = pytest.MonkeyPatch()
    try:
        busybox = base / "busybox"
        busybox.mkdir()
        ImageStore(str(c.dir / "data" / "node")).import_dir(
            "busybox:latest", busybox, config={"env": [f"PATH={PATH}"], "cmd": ["sh"]})
        mp.setenv("KUBECONFIG", str(c.kubeconfig))
        # the kubernetes client reads $KUBECONFIG once, at import (long before this fixture):
        # without this, kopf's login_via_client finds ~/.kube/config or nothing
        from kubernetes.config import kube_config
        mp.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(c.kubeconfig))
        if not oscrypto_works():
            from kopf._kits import webhooks
            mp.setattr(webhooks.ClusterDetector, "guess_host", staticmethod(guess_host))
            mp.setattr(webhooks.WebhookServer, "build_certificate", staticmethod(build_certificate))
        yield c
    finally:
        mp.undo()
        stop_cluster(c)


@pytest.fixture(autouse=True)
def kopf_checkout_root(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if (HERE / "tests") in request.path.parents:
        monkeypatch.chdir(HERE)
