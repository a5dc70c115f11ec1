"""What a pod spec names: the objects the Node authorizer lets a node read."""

from kybern.api import podrefs

POD = {
    "metadata": {"name": "web"},
    "spec": {
        "imagePullSecrets": [{"name": "pull"}],
        "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-env"}}]}],
        "containers": [{"name": "c", "env": [
            {"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}},
            {"name": "C", "value": "plain"}],
            "envFrom": [{"configMapRef": {"name": "all-cm"}}]}],
        "ephemeralContainers": [{"name": "debug", "envFrom": [{"secretRef": {"name": "debug-env"}}]}],
        "volumes": [
            {"name": "s", "secret": {"secretName": "vol-secret"}},
            {"name": "m", "configMap": {"name": "vol-cm"}},
            {"name": "csi", "csi": {"driver": "x", "nodePublishSecretRef": {"name": "csi-secret"}}},
            {"name": "p", "projected": {"sources": [{"secret": {"name": "proj-secret"}},
                                                    {"configMap": {"name": "proj-cm"}},
                                                    {"serviceAccountToken": {"path": "t"}}]}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "data-claim"}},
            {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
        ],
    },
}


def test_every_place_a_pod_names_a_secret_or_config_map_is_found() -> None:
    assert podrefs.secret_names(POD["spec"]) == {"pull", "init-env", "env-secret", "debug-env", "vol-secret",
                                                 "csi-secret", "proj-secret"}
    assert podrefs.configmap_names(POD["spec"]) == {"env-cm", "all-cm", "vol-cm", "proj-cm"}
    assert podrefs.references_secrets(POD["spec"]) and podrefs.references_configmaps(POD["spec"])
    assert not podrefs.references_secrets({"containers": [{"name": "c"}]})


def test_claims_include_an_ephemeral_volume_named_after_pod_and_volume() -> None:
    assert podrefs.claim_names(POD) == {"data-claim", "web-scratch"}
