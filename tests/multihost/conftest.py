"""The multi-host network, shared by the module's tests (one set-up, ~40 s)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.multihost.net import Net
from tests.support.netns import Lab, usable


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    why = usable()
    if why is not None:
        pytest.fail(f"the multi-host tests need network namespaces: {why}")
    tmp: Path = tmp_path_factory.mktemp("multihost")
    tmp.chmod(0o755)
    with Lab(tmp) as lab:
        yield Net(lab, tmp).build()
