"""Built-in kinds' empty omitempty lists and maps (kybern/api/omitempty.py)."""

from __future__ import annotations

from kybern.api import omitempty

POD = "io.k8s.api.core.v1.Pod"


def test_omitempty_fields_go_at_any_depth_others_stay() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {}},
           "spec": {"nodeSelector": {}, "tolerations": [], "securityContext": {},
                    "volumes": [{"name": "v", "emptyDir": {}}],
                    "containers": [{"name": "c", "env": [], "args": [], "resources": {"requests": {}},
                                    "ports": [{"containerPort": 80}]}]},
           "status": {"conditions": [], "phase": "Pending"}}
    omitempty.drop_empty(POD, pod)
    assert pod == {"apiVersion": "v1", "kind": "Pod",
                   # top-level metadata is the store's (managedFields has its own rules)
                   "metadata": {"name": "p", "labels": {}},
                   # structs stay, even empty (Go never omits a struct)
                   "spec": {"securityContext": {}, "volumes": [{"name": "v", "emptyDir": {}}],
                            "containers": [{"name": "c", "resources": {}, "ports": [{"containerPort": 80}]}]},
                   "status": {"phase": "Pending"}}


def test_fields_without_omitempty_and_wrong_types_stay() -> None:
    role = {"metadata": {"name": "r"}, "rules": []}  # Role.rules is `json:"rules"`
    omitempty.drop_empty("io.k8s.api.rbac.v1.Role", role)
    assert role["rules"] == []
    vwc = {"metadata": {"name": "w"}, "webhooks": []}
    omitempty.drop_empty("io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration", vwc)
    assert "webhooks" not in vwc
    bad = {"spec": {"tolerations": {}, "nodeSelector": []}}  # for validation to refuse
    omitempty.drop_empty(POD, bad)
    assert bad == {"spec": {"tolerations": {}, "nodeSelector": []}}


def test_custom_resources_and_unknown_definitions_are_not_walked() -> None:
    assert omitempty.plan_for("com.example.v1.Widget") is None
    obj = {"spec": {"webhooks": []}, "webhooks": []}
    omitempty.drop_empty("io.k8s.storage.snapshot.v1.VolumeSnapshot", obj)  # a CRD in a k8s.io group
    assert obj == {"spec": {"webhooks": []}, "webhooks": []}
