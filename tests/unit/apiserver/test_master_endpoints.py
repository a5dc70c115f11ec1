"""What the apiserver keeps in place: the `kubernetes` Service and its Endpoints
(upstream's kubernetes-service controller, every EndpointInterval) and the system
namespaces (its systemnamespaces controller, every minute) come back when deleted."""

from __future__ import annotations

import asyncio
import contextlib

from kybern.apiserver import master_endpoints


async def test_deleted_kubernetes_service_and_endpoints_come_back(tmp_path):
    from kybern.apiserver.server import APIServer
    from kybern.storage.sqlite import SQLiteStore

    storage = SQLiteStore(str(tmp_path / "state.db"))
    api = APIServer(storage)
    try:
        await api.watch_cache.ready()
        await api.store("", "v1", "namespaces").create(None, {"metadata": {"name": "default"}})
        await master_endpoints.reconcile(api, "127.0.0.1", 6443)
        services = api.store("", "v1", "services")
        endpoints = api.store("", "v1", "endpoints")
        await services.delete("default", "kubernetes", {})
        await endpoints.delete("default", "kubernetes", {})
        task = asyncio.create_task(master_endpoints.run(api, "127.0.0.1", 6443, interval=0.01))
        try:
            for _ in range(200):
                await asyncio.sleep(0.01)
                with contextlib.suppress(Exception):
                    svc = await services.get("default", "kubernetes")
                    ep = await endpoints.get("default", "kubernetes")
                    break
            else:
                raise AssertionError("the kubernetes Service and Endpoints did not come back")
        finally:
            task.cancel()
        assert svc["spec"]["clusterIP"] == "10.96.0.1"
        assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]
        assert ep["subsets"][0]["addresses"][0]["ip"] == "127.0.0.1"
    finally:
        await api.watch_cache.stop()
        await storage.close()


async def test_deleted_system_namespace_comes_back(tmp_path):
    """kube-node-lease (the nodes' Leases) deleted comes back, as upstream's
    systemnamespaces controller re-creates it."""
    from kybern.apiserver.server import APIServer
    from kybern.storage.sqlite import SQLiteStore

    storage = SQLiteStore(str(tmp_path / "state.db"))
    api = APIServer(storage)
    try:
        await api.watch_cache.ready()
        await api.ensure_system_namespaces()
        namespaces = api.store("", "v1", "namespaces")
        await namespaces.delete(None, "kube-node-lease", {})
        # what the namespace controller does once it is empty: the finalizer goes, so does it
        with contextlib.suppress(Exception):
            await namespaces.update(None, "kube-node-lease", lambda cur: {**cur, "spec": {"finalizers": []}},
                                    subresource="finalize")
        task = asyncio.create_task(api.keep_system_namespaces(interval=0.01))
        try:
            for _ in range(200):
                await asyncio.sleep(0.01)
                with contextlib.suppress(Exception):
                    ns = await namespaces.get(None, "kube-node-lease")
                    if not ns["metadata"].get("deletionTimestamp"):
                        break
            else:
                raise AssertionError("kube-node-lease did not come back")
        finally:
            task.cancel()
    finally:
        await api.watch_cache.stop()
        await storage.close()
