"""Smoke of the multi-host network (about a minute): set-up across eight hosts, reads through
both gateways, then one relayer's link cut under load with zero failed reads."""

from __future__ import annotations

import pytest

from tests.multihost.faults import healthy_others, phase, ready
from tests.multihost.net import Net

pytestmark = pytest.mark.slow


def test_a_relayers_link_cut_loses_no_read(net: Net) -> None:
    first = healthy_others(net, "r1")
    r1 = net.hosts["r1"]
    result, failed = phase(net, "baseline", lambda: None, lambda: None, seconds=2)
    assert failed == [] and result.reads == 40
    result, failed = phase(
        net,
        "r1 link down",
        lambda: r1.link(up=False),
        lambda: r1.link(up=True),
        seconds=8,
        recovered=ready(net, "r1", 8081),
        first=1000,
    )
    assert failed == [], failed[:5]
    assert result.reads == 160
    healthy_others(net, "r1", first)  # r1 and another were in every session the cut spanned
