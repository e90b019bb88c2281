"""Fixtures of the stream tests: one staked network with a scripted liar, shared by the
package's modules (each starts the gateways it needs on it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gateway_streams.net import StreamNet, start_streamnet

# request id of a client's eth_subscribe -> what the liar does with that subscription's stream
SCRIPT: dict[object, str] = {
    1: "jump",
    2: "jump999",
    3: "repeat",
    4: "badreceipt",
    5: "early4000",
    6: "early4001",
    7: "lie4002",
    8: "invented4002",
    9: "drop",
    10: "nopong",
    11: "skip4002",
    12: "honest",
}


@pytest.fixture(scope="package")
def streamnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamNet]:
    with start_streamnet(tmp_path_factory.mktemp("streams"), SCRIPT) as net:
        yield net
