"""A tiny kopf operator for tests/e2e/test_crd_kopf.py: on create of a
Widget it patches the object's status (kopf writes the handler's return value
under status.<handler id>, and `patch.status` directly)."""

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: object) -> None:
    settings.posting.enabled = False  # keep the test quiet: no k8s Events for handler progress
    settings.watching.server_timeout = 10


@kopf.on.create("kopf.e2e.kybern.dev", "v1", "widgets")
def greet(spec: dict, name: str, patch: kopf.Patch, **_: object) -> dict:
    patch.status["message"] = f"hello {name}, size {spec.get('size')}"
    return {"handled": True}
