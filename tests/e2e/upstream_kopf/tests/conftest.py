# kybern: the fixtures of kopf's tests/conftest.py that its e2e tests use, copied verbatim
# (kopf 1.45.2); the rest of that file mocks the API for kopf's unit tests and needs
# kopf's test-only dependencies (freezegun, kmock, looptime), so it is not vendored.
import kopf
from kopf._cogs.configs.configuration import OperatorSettings
from kopf._core.intents.registries import OperatorRegistry

import pytest


@pytest.fixture()
def settings():
    return OperatorSettings()


@pytest.fixture
def registry_factory():
    # For most tests: not SmartOperatorRegistry, but the empty one!
    # For e2e tests: overridden to SmartOperatorRegistry.
    return OperatorRegistry


@pytest.fixture(autouse=True)
def registry(registry_factory):
    """
    Ensure that the tests have a fresh new global (not re-used) registry.
    """
    old_registry = kopf.get_default_registry()
    new_registry = registry_factory()
    kopf.set_default_registry(new_registry)
    yield new_registry
    kopf.set_default_registry(old_registry)


@pytest.fixture(autouse=True)
def clean_kubernetes_client():
    try:
        import kubernetes
    except ImportError:
        pass  # absent client is already "clean" (or not "dirty" at least).
    else:
        kubernetes.client.configuration.Configuration.set_default(None)
