"""All built-in kinds, assembled into one Registry."""

from __future__ import annotations

from kybern.api import apps, core
from kybern.api.registry import Registry


def builtin_registry() -> Registry:
    reg = Registry()
    for info in core.RESOURCES + apps.RESOURCES:
        reg.add(info)
    return reg
