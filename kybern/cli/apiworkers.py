"""Several apiserver processes on one listening socket (`--api-workers N`).

One Python process tops out at about one core of request handling (TLS, HTTP,
JSON, validation). Upstream scales the apiserver by running several instances
on one etcd; kybern does the same on one machine: the first process binds the
port, bootstraps and runs the controllers; N-1 workers bind the same port with
SO_REUSEPORT (the kernel spreads new connections over the sockets by a hash of
their addresses, so a few long-lived client connections are shared out evenly,
which one inherited socket that whoever wakes first accepts from does not do)
and each runs a full apiserver with its own watch cache on the same store.

Every apiserver is a separate store client: on SQLite the processes share the
file and its write lock, and each one's watch cache follows the rows the others
write (`SQLiteStore.poll_interval`, lowered to a few ms here); on etcd each has
its own etcd watch, as upstream's apiservers do.

A worker that exits is started again; workers die with the first process
(PR_SET_PDEATHSIG), so a killed `kybern up` leaves none behind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from kybern.cli import gc_tuning

if TYPE_CHECKING:
    from kybern.apiserver.audit import AuditFlags
from kybern.cli.children import Child

log = logging.getLogger("kybern.apiworkers")

# how often an apiserver looks for rows another process wrote to a shared SQLite file
SHARED_POLL_INTERVAL = 0.003
# on stop, how long requests in flight may finish before they are cancelled; a watch
# whose client is gone notices only at its next bookmark, and would hold the stop that long
SHUTDOWN_GRACE = 2.0


def listen(address: str, port: int, *, shared: bool) -> socket.socket:
    """The API's listening socket; `shared` lets the other apiserver processes bind the port too."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return socket.create_server((address, port), family=family, backlog=1024, reuse_port=shared)


def share_store(store: Any) -> None:
    """Make a store notice other processes' writes promptly (SQLite only; an
    etcd watch is pushed to every client anyway)."""
    if hasattr(store, "poll_interval"):
        store.poll_interval = SHARED_POLL_INTERVAL


def worker(index: int, address: str, port: int, data_dir: Path, datastore: str,
           admission_config: Path | None = None, authorization_mode: str = "Node,RBAC",
           audit: AuditFlags | None = None, anonymous_auth: bool = True) -> Child:
    """Worker `index`, to be run (and restarted if it exits) by the first process."""
    extra = ["--admission-control-config-file", str(admission_config)] if admission_config else []
    extra += ["--authorization-mode", authorization_mode, "--anonymous-auth", str(anonymous_auth).lower(),
              *(audit.args() if audit else [])]
    return Child(f"apiserver worker {index}", [
        "api-worker", "--data-dir", str(data_dir), "--address", address, "--port", str(port),
        "--datastore", datastore, "--index", str(index), *extra], own_session=True)


async def serve_worker(data_dir: Path, address: str, port: int, datastore: str,
                       admission_config: Path | None = None, authorization_mode: str = "Node,RBAC",
                       audit: AuditFlags | None = None, anonymous_auth: bool = True) -> None:
    """One worker: an apiserver on the shared port until SIGTERM."""
    from kybern.apiserver import pki
    from kybern.apiserver.server import APIServer, ssl_context
    from kybern.storage.registry import open_store

    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    sock = listen(address, port, shared=True)
    admin_token = pki.ensure_token(data_dir / "admin.token")
    node_token = pki.ensure_token(data_dir / "node.token")
    crt, key = data_dir / "pki" / "apiserver.crt", data_dir / "pki" / "apiserver.key"  # the first process's
    store = open_store(datastore)
    share_store(store)
    host, port = sock.getsockname()[:2]
    api = APIServer(store, tokens={admin_token, node_token}, node_token=node_token, advertise=f"{host}:{port}",
                    authorization_modes=authorization_mode, anonymous_auth=anonymous_auth)
    api.auditor = audit.auditor() if audit else None
    if admission_config is not None:
        from kybern.apiserver import podsecurity

        api.pod_security.configure(podsecurity.load_config(admission_config))
    await api.serve_crds()
    runner = web.AppRunner(api.app(), access_log=None, handle_signals=False,
                               shutdown_timeout=SHUTDOWN_GRACE)
    await runner.setup()  # the watch cache fills from storage here
    gc_tuning.freeze_for_serving()  # before any connection: shorter GC pauses (gc_tuning.py)
    api.client_ca = True
    api.kubelet_client = (str(data_dir / "pki" / "apiserver-kubelet-client.crt"),  # the first process's
                          str(data_dir / "pki" / "apiserver-kubelet-client.key"))
    await web.SockSite(runner, sock, ssl_context=ssl_context(str(crt), str(key),
                                                             str(data_dir / "pki" / "ca.crt"))).start()
    try:
        await done.wait()
    finally:
        await runner.cleanup()
        await store.close()
        os._exit(0)  # nothing left to flush: every write was committed before it was answered
