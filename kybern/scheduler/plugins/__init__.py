"""The in-tree plugins, one per file, and the default set in upstream's order."""

from __future__ import annotations

from typing import Any

from kybern.scheduler.plugins.interpodaffinity import InterPodAffinity
from kybern.scheduler.plugins.nodeaffinity import NodeAffinity
from kybern.scheduler.plugins.nodename import NodeName
from kybern.scheduler.plugins.nodeports import NodePorts
from kybern.scheduler.plugins.noderesources import BalancedAllocation, NodeResourcesFit
from kybern.scheduler.plugins.nodeunschedulable import NodeUnschedulable
from kybern.scheduler.plugins.podtopologyspread import PodTopologySpread
from kybern.scheduler.plugins.tainttoleration import TaintToleration
from kybern.scheduler.plugins.volumezone import VolumeZone


def default_plugins() -> list[Any]:
    """Filters run in this order (cheap, decisive ones first, as upstream)."""
    return [NodeUnschedulable(), NodeName(), TaintToleration(), NodeAffinity(), NodePorts(),
            NodeResourcesFit(), VolumeZone(), PodTopologySpread(), InterPodAffinity(),
            BalancedAllocation()]
