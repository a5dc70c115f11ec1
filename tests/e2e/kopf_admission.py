"""A kopf operator with admission handlers for tests/e2e/test_admission_kopf.py:
kopf's own WebhookServer (the certificate the test made, from its env) and a
managed configuration, which kopf creates and keeps in the cluster."""

import os

import kopf

GROUP = "admission.e2e.kybern.dev"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: object) -> None:
    settings.posting.enabled = False
    settings.watching.server_timeout = 10
    settings.admission.server = kopf.WebhookServer(
        addr="127.0.0.1", port=int(os.environ["WEBHOOK_PORT"]), host="127.0.0.1",
        certfile=os.environ["WEBHOOK_CERT"], pkeyfile=os.environ["WEBHOOK_KEY"], cafile=os.environ["WEBHOOK_CA"])
    settings.admission.managed = f"gadgets.{GROUP}"


@kopf.on.validate(GROUP, "v1", "gadgets")
def check_size(spec: dict, warnings: list, **_: object) -> None:
    if spec.get("size") == "huge":
        raise kopf.AdmissionError("huge gadgets do not fit", code=422)
    if spec.get("size") == "large":
        warnings.append("large gadgets are heavy")


@kopf.on.mutate(GROUP, "v1", "gadgets")
def default_color(spec: dict, patch: kopf.Patch, **_: object) -> None:
    if "color" not in spec:
        patch.spec["color"] = "blue"
