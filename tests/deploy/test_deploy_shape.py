"""deploy/ is what production needs: the image runs as a numeric uid and builds the trie
accelerator through build.sh; `relaynet network deploy` runs once before any relayer or gateway
(compose and Kubernetes); workloads run as non-root numeric uids with fsGroup-mounted keys that
the key loader accepts; the parameters file passes the protocol's validator."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ledger.deploy import DeployParams
from ledger.network import check_params
from protocol.keys import ReceiptKey
from relayer.keyfiles import KeyFileError, read_receipt_key, write_receipt_key
from relaynet.commands.network import parse_params

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose" / "docker-compose.yml"
K8S = DEPLOY / "kubernetes"
OUT = "/etc/relaynet/deployment/deployment.json"


def _compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


def _k8s() -> dict[tuple[str, str], dict[str, Any]]:
    docs: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and "kind" in doc and "metadata" in doc:
                docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs


def test_dockerfile_runs_build_sh_and_a_numeric_uid() -> None:
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert re.search(r"^COPY deploy/docker/build.sh (\S+)$", text, re.M)
    run = re.search(r"^RUN .*relaynet-build /src /opt/relaynet$", text, re.M)
    assert run, "the image's build steps are build.sh's"
    assert re.search(r"apt-get install .*\bgcc\b", text), "a compiler for the accelerator"
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", users[-1]), users
    assert "useradd" not in text  # a name is what Kubernetes' runAsNonRoot cannot verify
    build = (DEPLOY / "docker" / "build.sh").read_text()
    assert "import protocol._trie_accel" in build and "accelerated()" in build


def test_compose_deploys_once_before_relayers_and_gateways() -> None:
    services = _compose()["services"]
    deploy = services["deploy"]
    assert deploy["restart"] == "no"
    command = deploy["command"]
    assert command[:2] == ["network", "deploy"]
    assert command[command.index("--out") + 1] == OUT
    assert "--rpc-url" in command and "--params" in command
    assert "deployment:/etc/relaynet/deployment" in deploy["volumes"]
    ran_after = [n for n in services if n.startswith(("relayer-", "gateway-"))]
    assert len(ran_after) == 4
    for name in ran_after:
        svc = services[name]
        assert svc["depends_on"]["deploy"] == {"condition": "service_completed_successfully"}
        assert "deployment:/etc/relaynet/deployment:ro" in svc["volumes"], name
    assert "deployment" in _compose()["volumes"]
    for config in ("relayer.toml", "gateway.toml"):
        assert f'deployment = "{OUT}"' in (DEPLOY / "config" / config).read_text()


def test_kubernetes_runs_the_deploy_job_first_and_as_non_root() -> None:
    docs = _k8s()
    job = docs[("Job", "network-deploy")]
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["network", "deploy"] and args[args.index("--out") + 1] == OUT
    workloads = [docs[("Job", "network-deploy")], docs[("Deployment", "gateway")],
                 docs[("StatefulSet", "relayer")]]  # fmt: skip
    for doc in workloads:
        spec = doc["spec"]["template"]["spec"]
        ctx = spec["securityContext"]
        assert ctx["runAsNonRoot"] is True
        assert isinstance(ctx["runAsUser"], int) and ctx["runAsUser"] > 0
        assert ctx["fsGroup"] == ctx["runAsGroup"]  # keys' group is the process's group
        for c in [*spec.get("initContainers", []), *spec["containers"]]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, c["name"]
        for volume in spec["volumes"]:
            if "secret" in volume:
                assert volume["secret"]["defaultMode"] == 0o440, volume  # no world bit
        if doc["kind"] != "Job":
            init = spec["initContainers"][0]
            assert init["args"][:2] == ["network", "show"]
            assert init["args"][init["args"].index("--deployment") + 1] == OUT
            claim = next(v for v in spec["volumes"] if v["name"] == "deployment")
            assert claim["persistentVolumeClaim"]["claimName"] == "relaynet-deployment"
    assert "network-deploy.yaml" in (K8S / "kustomization.yaml").read_text()


@pytest.mark.slow  # runs kubectl
def test_kustomize_renders_every_manifest() -> None:
    # `kubectl apply --dry-run=client` needs an API server for discovery (none offline), so the
    # client-only check is rendering the kustomization; the structure is checked above.
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing"
    rendered = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, check=False, timeout=60
    )
    assert rendered.returncode == 0, rendered.stderr
    kinds = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(rendered.stdout) if d}
    assert set(_k8s()) - {("Kustomization", "")} <= kinds | {("Namespace", "relaynet")}
    assert ("Job", "network-deploy") in kinds


def test_the_parameters_file_passes_the_validator() -> None:
    params = parse_params(DEPLOY / "config" / "params.toml", base=DeployParams())
    check_params(params)
    assert params.L == 60 and params.min_stake_supplier == 100 * 10**18


# -- the key loader and fsGroup ---------------------------------------------------------------


def _key(tmp: Path, mode: int, gid: int) -> Path:
    path = tmp / "receipt.key"
    write_receipt_key(path, ReceiptKey.generate(), overwrite=True)
    os.chown(path, -1, gid)
    os.chmod(path, mode)
    return path


def _other_gid() -> int:
    mine = {os.getegid(), *os.getgroups()}
    return next(g for g in range(4000, 65000) if g not in mine)


@pytest.mark.parametrize("mode", [0o440, 0o640, 0o400, 0o600])
def test_group_read_of_our_own_group_is_accepted(tmp_path: Path, mode: int) -> None:
    read_receipt_key(_key(tmp_path, mode, os.getegid()))


@pytest.mark.parametrize(
    ("mode", "why"),
    [(0o444, "readable by others"), (0o404, "readable by others"),
     (0o460, "writable by its group"), (0o470, "writable by its group")],
)  # fmt: skip
def test_world_bits_or_group_write_are_refused(tmp_path: Path, mode: int, why: str) -> None:
    with pytest.raises(KeyFileError, match=why):
        read_receipt_key(_key(tmp_path, mode, os.getegid()))


def test_group_read_of_another_group_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("needs root to give the file a group this process is not in")
    with pytest.raises(KeyFileError, match="readable by others"):
        read_receipt_key(_key(tmp_path, 0o440, _other_gid()))
