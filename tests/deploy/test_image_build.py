"""The image's build steps (deploy/docker/build.sh, what the Dockerfile runs) in a fresh venv
as the image's numeric non-root uid: relaynet installs, the trie accelerator is compiled and in
use, and the command runs. No container runtime here: ``setpriv`` drops to the uid."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UID = 10001  # the Dockerfile's USER


@pytest.mark.slow
def test_build_sh_as_a_numeric_non_root_uid() -> None:
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is missing"
    assert os.geteuid() == 0, "dropping to another uid needs root"
    home = Path(tempfile.mkdtemp(prefix="relaynet-build-"))  # pytest's tmp is root-only
    try:
        os.chown(home, UID, UID)
        _build(setpriv, home)
    finally:
        shutil.rmtree(home)


def _build(setpriv: str, home: Path) -> None:
    venv = home / "venv"
    env = {
        **{k: v for k, v in os.environ.items() if k.startswith("PIP_")},  # the package index
        "PATH": "/usr/local/bin:/usr/bin:/bin",  # the system's python3 (the uid cannot enter /root)
        "HOME": str(home),
        "PYTHON": "python3",
        "PIP_CACHE_DIR": str(home / "pip-cache"),
    }
    result = subprocess.run(
        [setpriv, f"--reuid={UID}", f"--regid={UID}", "--clear-groups",
         "sh", str(REPO / "deploy" / "docker" / "build.sh"), str(REPO), str(venv)],
        capture_output=True, text=True, timeout=600, env=env, cwd=home, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "build.sh: trie accelerator" in result.stdout
    assert "relaynet " in result.stdout.splitlines()[-1]
    accel = list(venv.glob("lib/python3*/site-packages/protocol/_trie_accel*.so"))
    assert accel and accel[0].stat().st_uid == UID  # built by the uid, into its venv
    assert not (venv / "lib").joinpath("python3.11/site-packages/__editable__").exists()
