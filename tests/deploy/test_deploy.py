"""deploy/ parses and agrees with the code: configs validate against the servers' models, ports
match across compose, Kubernetes, Prometheus and the configs, every metric named in alert rules
and the dashboard is one we export (with labels it has), every command exists in the CLI, and
promtool accepts and unit-tests the rules."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from prometheus_client.metrics import MetricWrapperBase

from gateway.config import parse_listen
from gateway.metrics import GatewayMetrics
from relayer.metrics import RelayerMetrics
from relaynet.cli import app as cli_app
from relaynet.config import load_gateway, load_relayer

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose" / "docker-compose.yml"
RULES = DEPLOY / "prometheus" / "rules" / "relaynet.yml"
RULES_TEST = DEPLOY / "prometheus" / "rules" / "relaynet_test.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "relaynet.json"
K8S = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd" / "relaynet-relayer.service"
ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
ENV = {
    "RELAYER_PASSPHRASE": "x",
    "SETTLEMENT_RPC_URL": "http://chain:8545",
    "ETH_NODE_URL": "http://eth-node:8545",
    "ETH_NODE_WS_URL": "ws://eth-node:8545",
    "REDIS_URL": "redis://redis:6379/0",
}


def _yaml_docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _env_vars(path: Path) -> set[str]:
    return set(ENV_VAR.findall(path.read_text()))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def k8s() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in _yaml_docs(path):
            out[(doc["kind"], doc["metadata"].get("name", ""))] = doc
    return out


def test_every_file_parses() -> None:
    files = [p for p in DEPLOY.rglob("*") if p.is_file()]
    assert files
    for path in files:
        if path.suffix in (".yml", ".yaml"):
            assert _yaml_docs(path), path
        elif path.suffix == ".json":
            json.loads(path.read_text())
    code = [p for p in files if p.suffix in (".py", ".sh")]
    assert code == [DEPLOY / "docker" / "build.sh"], "deploy/ holds no code but the image build"


def test_configs_validate_against_the_servers_models() -> None:
    relayer = load_relayer(DEPLOY / "config" / "relayer.toml", env=ENV, check_files=False)
    assert relayer.server.host == "0.0.0.0" and relayer.metrics.host == "0.0.0.0"
    gateway = load_gateway(DEPLOY / "config" / "gateway.toml", env=ENV, check_files=False)
    assert gateway.redis is not None and not gateway.gateway.devnet


def _container_port(mapping: str) -> int:
    return int(str(mapping).rsplit(":", 1)[-1])


def test_ports_agree_across_compose_kubernetes_prometheus_and_configs(
    compose: dict[str, Any], k8s: dict[tuple[str, str], dict[str, Any]]
) -> None:
    relayer = load_relayer(DEPLOY / "config" / "relayer.toml", env=ENV, check_files=False)
    gateway = load_gateway(DEPLOY / "config" / "gateway.toml", env=ENV, check_files=False)
    gw_port = parse_listen(gateway.gateway.listen)[1]
    assert gateway.gateway.metrics_listen is not None
    gw_metrics = parse_listen(gateway.gateway.metrics_listen)[1]
    services = compose["services"]
    gateways = [n for n in services if n.startswith("gateway-")]
    relayers = [n for n in services if n.startswith("relayer-")]
    assert len(gateways) == 2 and len(relayers) >= 2
    assert {"redis", "chain", "prometheus", "grafana"} <= set(services)
    for name in gateways:
        assert [_container_port(p) for p in services[name]["ports"]] == [gw_port]
    for name in relayers:
        assert [_container_port(p) for p in services[name]["ports"]] == [relayer.server.port]

    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prometheus["scrape_configs"]}
    gw_targets = jobs["relaynet-gateway"]["static_configs"][0]["targets"]
    rl_targets = jobs["relaynet-relayer"]["static_configs"][0]["targets"]
    assert sorted(gw_targets) == sorted(f"{n}:{gw_metrics}" for n in gateways)
    assert sorted(rl_targets) == sorted(f"{n}:{relayer.metrics.port}" for n in relayers)

    def ports(kind: str, name: str) -> tuple[dict[str, int], dict[str, str]]:
        pod = k8s[(kind, name)]["spec"]["template"]
        container = pod["spec"]["containers"][0]
        return {p["name"]: p["containerPort"] for p in container["ports"]}, pod["metadata"][
            "annotations"
        ]

    gw_ports, gw_ann = ports("Deployment", "gateway")
    assert gw_ports == {"http": gw_port, "metrics": gw_metrics}
    assert gw_ann["prometheus.io/port"] == str(gw_metrics)
    assert k8s[("Deployment", "gateway")]["spec"]["replicas"] == 2
    rl_ports, rl_ann = ports("StatefulSet", "relayer")
    assert rl_ports == {"relay": relayer.server.port, "metrics": relayer.metrics.port}
    assert rl_ann["prometheus.io/port"] == str(relayer.metrics.port)
    assert set(k8s) >= {("StatefulSet", "redis"), ("Service", "redis"), ("Namespace", "relaynet")}
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"
    )


def test_every_config_variable_is_provided(
    compose: dict[str, Any], k8s: dict[tuple[str, str], dict[str, Any]]
) -> None:
    relayer_vars = _env_vars(DEPLOY / "config" / "relayer.toml")
    gateway_vars = _env_vars(DEPLOY / "config" / "gateway.toml")
    assert relayer_vars and gateway_vars
    for name, svc in compose["services"].items():
        env = set(svc.get("environment") or {})
        if name.startswith("relayer-"):
            assert relayer_vars <= env, name
        if name.startswith("gateway-"):
            assert gateway_vars <= env, name
    for kind, name, wanted in (
        ("Deployment", "gateway", gateway_vars),
        ("StatefulSet", "relayer", relayer_vars),
    ):
        container = k8s[(kind, name)]["spec"]["template"]["spec"]["containers"][0]
        assert wanted <= {e["name"] for e in container["env"]}, name
    unit = SYSTEMD.read_text()
    provided = set(re.findall(r"^Environment=([A-Z_]+)=", unit, re.M))
    assert relayer_vars - {"RELAYER_PASSPHRASE"} <= provided
    assert "EnvironmentFile=" in unit  # the passphrase


# --- metrics -----------------------------------------------------------------------------------


def _exported() -> dict[str, set[str]]:
    """Every sample name we export → its label names."""
    out: dict[str, set[str]] = {}
    for metrics in (RelayerMetrics(), GatewayMetrics()):
        for value in vars(metrics).values():
            if not isinstance(value, MetricWrapperBase):
                continue
            name, kind = value._name, str(value._type)  # prometheus_client has no public API
            labels = set(value._labelnames)
            suffixes = {
                "counter": ["_total"],
                "histogram": ["_bucket", "_sum", "_count"],
                "gauge": [""],
            }[kind]
            for suffix in suffixes:
                out[name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return out


def _exprs() -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            yield f"rule {rule['alert']}", rule["expr"]
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']}", target["expr"]


SELECTOR = re.compile(r"(relaynet_[a-z_]+)(\{[^}]*\})?")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
LABEL_MATCH = re.compile(r"([a-z_]+)\s*(?:=~|!~|!=|=)")
SCRAPE_LABELS = {"instance", "job"}
PROCESS = re.compile(r"\bprocess_(cpu_seconds_total|resident_memory_bytes)\b")


def test_both_servers_export_process_cpu_and_memory() -> None:
    from prometheus_client import generate_latest

    for metrics in (RelayerMetrics(), GatewayMetrics()):
        text = generate_latest(metrics.registry).decode()
        assert "process_cpu_seconds_total" in text and "process_resident_memory_bytes" in text


def test_rules_and_dashboard_use_only_exported_metrics_and_their_labels() -> None:
    exported = _exported()
    used: set[str] = set()
    for where, expr in _exprs():
        selectors = SELECTOR.findall(expr)
        assert selectors or "up{" in expr or PROCESS.search(expr), f"{where}: no metric: {expr!r}"
        labels_in_expr: set[str] = set()
        for name, braces in selectors:
            assert name in exported, f"{where}: {name} is not exported"
            used.add(name)
            for label in LABEL_MATCH.findall(braces):
                assert label in exported[name] | SCRAPE_LABELS, f"{where}: {name} has no {label}"
            labels_in_expr |= exported[name]
        for group in GROUPING.findall(expr):
            for label in (g.strip() for g in group.split(",")):
                if label and selectors:
                    assert label in labels_in_expr | SCRAPE_LABELS, f"{where}: no label {label}"
    # the dashboard shows every family we export
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in exported}
    shown = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in used}
    assert families == shown, f"not on the dashboard: {sorted(families - shown)}"


COUNTER_SAMPLE = re.compile(
    r"(?:relaynet_[a-z_]+|process_cpu_seconds)_(?:total|bucket|sum|count)\b"
)
OVER_A_WINDOW = re.compile(r"\b(?:rate|irate|increase)\(\s*$")


def test_counters_are_read_through_rate_or_increase_so_a_restart_drops_nothing() -> None:
    """A counter restarts at zero with its process: a panel or rule showing its raw value
    drops with it. ``rate``/``increase`` handle the reset."""
    for where, expr in _exprs():
        for match in COUNTER_SAMPLE.finditer(expr):
            before = expr[: match.start()]
            assert OVER_A_WINDOW.search(before), (
                f"{where}: {match.group(0)} read raw (use rate or increase): {expr!r}"
            )


def test_dashboard_panels_have_distinct_ids_and_do_not_overlap() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]


def test_grafana_provisioning_matches_the_compose_mounts(compose: dict[str, Any]) -> None:
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "relaynet.yml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"../grafana/dashboards:{path}:ro" in mounts
    datasource = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert datasource["datasources"][0]["url"].endswith(":9090")
    assert json.loads(DASHBOARD.read_text())["uid"] == "relaynet"


# --- commands ----------------------------------------------------------------------------------


def _check_command(argv: list[str], where: str) -> None:
    """``argv`` (after ``relaynet``) names a real subcommand and only options it has."""
    command: Any = typer.main.get_command(cli_app)
    args = list(argv)
    while hasattr(command, "get_command") and args and not args[0].startswith("-"):
        name = args.pop(0)
        sub = command.get_command(None, name)  # groups load lazily (relaynet.cli.LazyGroup)
        assert sub is not None, f"{where}: no command {name!r} in `relaynet {' '.join(argv)}`"
        command = sub
    assert not hasattr(command, "get_command"), f"{where}: {argv} names a group"
    options = {opt for p in command.params for opt in getattr(p, "opts", [])}
    for arg in args:
        if arg.startswith("--"):
            assert arg.split("=")[0] in options, f"{where}: {arg} not an option of {argv}"


def test_every_command_exists(
    compose: dict[str, Any], k8s: dict[tuple[str, str], dict[str, Any]]
) -> None:
    checked = 0
    for name, svc in compose["services"].items():
        if svc.get("image", "").startswith("relaynet"):
            _check_command(svc["command"], f"compose {name}")
            checked += 1
    for (kind, name), doc in k8s.items():
        if kind in ("Deployment", "StatefulSet"):
            container = doc["spec"]["template"]["spec"]["containers"][0]
            if container["image"].startswith("relaynet"):
                _check_command(container["args"], f"kubernetes {name}")
                checked += 1
        if kind in ("Deployment", "StatefulSet", "Job"):
            spec = doc["spec"]["template"]["spec"]
            for container in [*spec.get("initContainers", []), *spec["containers"]]:
                if container["image"].startswith("relaynet"):
                    _check_command(container["args"], f"kubernetes {name}/{container['name']}")
    exec_start = re.search(r"^ExecStart=(.+)$", SYSTEMD.read_text(), re.M)
    assert exec_start is not None
    argv = shlex.split(exec_start.group(1))
    assert argv[0].endswith("/relaynet")
    _check_command(argv[1:], "systemd")
    assert checked == 7  # deploy, 2 relayers, 2 gateways in compose, 2 workloads in Kubernetes
    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.M):
        if line.startswith("--from="):
            continue  # from the build stage
        for src in line.split()[:-1]:
            assert (REPO / src).exists(), f"Dockerfile copies missing {src}"


# --- promtool ----------------------------------------------------------------------------------


def _promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: `make setup` installs Debian's prometheus package"
    return found


@pytest.mark.slow  # runs promtool
def test_promtool_checks_and_unit_tests_the_rules() -> None:
    promtool = _promtool()
    check = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run(
        [promtool, "test", "rules", str(RULES_TEST)], capture_output=True, text=True, check=False
    )
    assert test.returncode == 0, test.stdout + test.stderr
    config = subprocess.run(
        [
            promtool,
            "check",
            "config",
            "--syntax-only",
            str(DEPLOY / "prometheus" / "prometheus.yml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert config.returncode == 0, config.stdout + config.stderr


def test_confirmations_are_set_within_grace_and_redis_keeps_its_data(
    compose: dict[str, Any], k8s: dict[tuple[str, str], dict[str, Any]]
) -> None:
    from ledger.deploy import DeployParams
    from relaynet.commands.network import parse_params

    params = parse_params(DEPLOY / "config" / "params.toml", base=DeployParams())
    relayer = load_relayer(DEPLOY / "config" / "relayer.toml", env=ENV, check_files=False)
    gateway = load_gateway(DEPLOY / "config" / "gateway.toml", env=ENV, check_files=False)
    for text in ((DEPLOY / "config" / n).read_text() for n in ("relayer.toml", "gateway.toml")):
        assert re.search(r"^confirmations = [1-9]", text, re.M)  # set, not the default 0
    for d in (relayer.chain.confirmations, gateway.settlement.confirmations):
        assert d >= 1
        assert d <= params.G  # what the servers check at start (check_confirmations)
    # Redis: the API keys survive a restart (append-only file, fsynced)
    container = k8s[("StatefulSet", "redis")]["spec"]["template"]["spec"]["containers"][0]
    for argv in (compose["services"]["redis"]["command"], container["args"]):
        assert argv[0] == "redis-server"
        options = dict(zip(argv[1::2], argv[2::2], strict=True))
        assert options["--appendonly"] == "yes"
        assert options["--appendfsync"] in ("always", "everysec")
