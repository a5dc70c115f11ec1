"""`kybern token create|list|delete`: bootstrap tokens for joining nodes, as
`kubeadm token`. A token is a `bootstrap.kubernetes.io/token` Secret in kube-system
(docs/rbac.md); its extra group `system:bootstrappers:kybern:default-node-token` may
ask for node client certificates, which the csrapproving controller approves, so
`kybern agent --token <id>.<secret>` joins with it and then runs as its own
`system:node:<name>`. The commands talk to the cluster of `--data-dir` as its admin
(the data dir's kubeconfig)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import secrets
import string
from pathlib import Path
from typing import Any

import click

from kybern.api.bootstrap_token import NODE_GROUP, SECRET_PREFIX, SECRET_TYPE, TOKEN, decoded, expiration

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_ALPHABET = string.ascii_lowercase + string.digits


def is_bootstrap_token(value: str) -> bool:
    return TOKEN.match(value) is not None


def parse_ttl(value: str) -> dt.timedelta:
    """A Go-style duration of hours, minutes and seconds ("24h", "1h30m", "0": never expires)."""
    m = _DURATION.match(value.strip())
    if value.strip() == "0":
        return dt.timedelta(0)
    if not value.strip() or m is None:
        raise click.BadParameter(f"invalid duration {value!r} (e.g. 24h, 90m, 0 for no expiry)")
    h, mi, s = (int(x or 0) for x in m.groups())
    return dt.timedelta(hours=h, minutes=mi, seconds=s)


def new_token() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(6)) + "." + \
        "".join(secrets.choice(_ALPHABET) for _ in range(16))


def token_secret(token: str, ttl: dt.timedelta, description: str, now: dt.datetime | None = None) -> dict[str, Any]:
    token_id, token_value = token.split(".")
    data = {"token-id": token_id, "token-secret": token_value, "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true", "auth-extra-groups": NODE_GROUP}
    if description:
        data["description"] = description
    if ttl:
        data["expiration"] = ((now or dt.datetime.now(dt.UTC)) + ttl).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
            "metadata": {"name": SECRET_PREFIX + token_id, "namespace": "kube-system"}, "stringData": data}


def _client(data_dir: Path) -> Any:
    import yaml

    from kybern.client.http import Client

    path = data_dir / "kubeconfig"
    if not path.exists():
        raise click.ClickException(f"no cluster in {data_dir} (no {path}); give the data dir of `kybern up` "
                                   "or `kybern server` with --data-dir")
    cfg = yaml.safe_load(path.read_text())
    return Client(cfg["clusters"][0]["cluster"]["server"], token=cfg["users"][0]["user"]["token"],
                  ca_file=str(data_dir / "pki" / "ca.crt"))


DATA_DIR_OPT: dict[str, Any] = {"type": click.Path(file_okay=False, path_type=Path), "show_default": True,
                                "help": "The data dir of the cluster's `kybern up` or `kybern server`."}


@click.group("token")
def token() -> None:
    """Bootstrap tokens that join nodes (as `kubeadm token`)."""


def _default_data() -> Path:
    from kybern.cli.main import DEFAULT_DATA

    return Path(DEFAULT_DATA)


@token.command("create")
@click.option("--ttl", default="24h", show_default=True,
              help="How long the token authenticates (e.g. 24h, 90m; 0: it never expires).")
@click.option("--description", default="", help="A note kept with the token.")
@click.option("--print-join-command", is_flag=True, help="Print the `kybern agent` command that joins with it.")
@click.option("--data-dir", default=None, **DATA_DIR_OPT)
def token_create(ttl: str, description: str, print_join_command: bool, data_dir: Path | None) -> None:
    """Create a bootstrap token and print it (<id>.<secret>)."""
    from kybern.client.resources import SECRETS

    data_dir = data_dir or _default_data()
    life = parse_ttl(ttl)
    tok = new_token()

    async def run() -> str:
        c = _client(data_dir)
        try:
            await c.create(SECRETS, token_secret(tok, life, description), "kube-system")
            return c.server
        finally:
            await c.close()
    server = asyncio.run(run())
    if print_join_command:  # as kubeadm's: the CA is discovered, pinned by its hash
        from kybern.node.discovery import ca_hash

        pin = ca_hash((data_dir / "pki" / "ca.crt").read_bytes())
        click.echo(f"kybern agent --server {server} --token {tok} --discovery-token-ca-cert-hash {pin} --name NAME")
    else:
        click.echo(tok)


@token.command("list")
@click.option("--data-dir", default=None, **DATA_DIR_OPT)
def token_list(data_dir: Path | None) -> None:
    """List the bootstrap tokens, as `kubeadm token list`."""
    from kybern.client.resources import SECRETS

    data_dir = data_dir or _default_data()

    async def run() -> list[dict[str, Any]]:
        c = _client(data_dir)
        try:
            return (await c.list(SECRETS, "kube-system", field_selector=f"type={SECRET_TYPE}"))["items"]
        finally:
            await c.close()
    rows = [("TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS")]
    now = dt.datetime.now(dt.UTC)
    for s in asyncio.run(run()):
        d = decoded(s)
        if not TOKEN.match(f"{d.get('token-id', '')}.{d.get('token-secret', '')}"):
            continue
        when = expiration(d)
        left = "<forever>" if when is None else _human(when - now)
        usages = ",".join(u[len("usage-bootstrap-"):] for u in sorted(d) if u.startswith("usage-bootstrap-")
                          and d[u] == "true")
        rows.append((f"{d['token-id']}.{d['token-secret']}", left,
                     "<never>" if when is None else when.strftime("%Y-%m-%dT%H:%M:%SZ"), usages,
                     d.get("description") or "<none>", d.get("auth-extra-groups") or "<none>"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("   ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


@token.command("delete")
@click.argument("tokens", nargs=-1, required=True)
@click.option("--data-dir", default=None, **DATA_DIR_OPT)
def token_delete(tokens: tuple[str, ...], data_dir: Path | None) -> None:
    """Delete bootstrap tokens, named by <id> or <id>.<secret>."""
    from kybern.client.resources import SECRETS
    from kybern.machinery import errors

    data_dir = data_dir or _default_data()
    ids = [t.split(".")[0] for t in tokens]
    bad = [i for i in ids if not re.fullmatch(r"[a-z0-9]{6}", i)]
    if bad:
        raise click.BadParameter(f"{bad[0]!r} is not a token id ([a-z0-9]{{6}})")

    async def run() -> None:
        c = _client(data_dir)
        try:
            for i in ids:
                try:
                    await c.delete(SECRETS, SECRET_PREFIX + i, "kube-system")
                except errors.StatusError as e:
                    raise click.ClickException(f"bootstrap token {i!r}: {e.message}") from None
                click.echo(f"bootstrap token {i!r} deleted")
        finally:
            await c.close()
    asyncio.run(run())


def _human(d: dt.timedelta) -> str:
    """kubeadm's TTL column: the time left, rounded as Go's duration.ShortHumanDuration."""
    s = int(d.total_seconds())
    if s <= 0:
        return "<invalid>"
    if s < 120:
        return f"{s}s"
    if s < 2 * 3600:
        return f"{s // 60}m"
    if s < 48 * 3600:
        return f"{s // 3600}h"
    return f"{s // 86400}d"
