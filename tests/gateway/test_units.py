"""Unit tests of the gateway's own parts: JSON-RPC framing, failsafe state machines,
selection, endpoint guard, config, errors."""

from __future__ import annotations

import random
import socket
from typing import Any

import orjson
import pytest

from gateway.endpoints import (
    EndpointRefused,
    EndpointRefusedOSError,
    GuardedResolver,
    check_literal,
    forbidden_ip,
)
from gateway.errors import CLIENT_ERRORS, BadRequest, ClientReason
from gateway.failsafe import Breaker, BreakerState, Hedger, Outcome, RetryState
from gateway.jsonrpc import id_template, member_span, parse_body, split_array, value_end
from gateway.relay_client import classify_code
from gateway.selection import Qos
from protocol.errors import ErrorCode
from relaynet.config import ConfigProblem
from relaynet.config import parse_gateway as parse_config

# -- JSON-RPC framing ---------------------------------------------------------------------


def test_split_array_keeps_raw_bytes() -> None:
    body = b' [ {"id": 1.50 ,"a":"x]\\"y"} , 7,"s",[1,[2]] ,null] '
    assert split_array(body) == [b'{"id": 1.50 ,"a":"x]\\"y"}', b"7", b'"s"', b"[1,[2]]", b"null"]
    assert split_array(b"[]") == []
    with pytest.raises(ValueError):
        split_array(b"[1,")


def test_value_end_and_member_span() -> None:
    data = b'{"a":{"id":9},"id" : "q\\"", "z":[]}'
    span = member_span(data, b"id")
    assert span is not None and data[span[0] : span[1]] == b'"q\\""'
    assert value_end(b"  -1.5e3,", 0) == 8
    assert member_span(b"[1]", b"id") is None


def test_id_template_rebuilds_another_id() -> None:
    answer = b'{"jsonrpc":"2.0","id":1,"result":"0x10"}'
    parts = id_template(answer)
    assert parts is not None
    assert parts[0] + b'"abc"' + parts[1] == b'{"jsonrpc":"2.0","id":"abc","result":"0x10"}'


def test_parse_body_single_batch_and_errors() -> None:
    single = parse_body(b'{"jsonrpc":"2.0","method":"eth_chainId","id":"a"}')
    assert not single.is_batch and single.calls[0].raw_id == b'"a"'
    assert single.calls[0].method == "eth_chainId" and not single.calls[0].invalid
    note = parse_body(b'{"jsonrpc":"2.0","method":"eth_chainId"}')
    assert note.calls[0].is_notification
    batch = parse_body(
        b'[{"jsonrpc":"2.0","method":"m","id":1},1,{"method":"m","id":2},'
        b'{"jsonrpc":"2.0","method":"m","id":true}]'
    )
    assert [c.invalid for c in batch.calls] == [False, True, True, True]
    assert [c.raw_id for c in batch.calls] == [b"1", b"null", b"2", b"null"]
    for bad, reason in ((b"{", ClientReason.PARSE_ERROR), (b"[]", ClientReason.INVALID_REQUEST)):
        with pytest.raises(BadRequest) as info:
            parse_body(bad)
        assert info.value.reason is reason
    with pytest.raises(BadRequest) as info:
        parse_body(b"[" + b",".join([b"1"] * 5) + b"]", max_batch=4)
    assert info.value.reason is ClientReason.BATCH_TOO_LARGE


def test_client_errors_are_never_5xx() -> None:
    client_mistakes = {
        ClientReason.PARSE_ERROR,
        ClientReason.INVALID_REQUEST,
        ClientReason.UNAUTHORIZED,
        ClientReason.RATE_LIMITED,
        ClientReason.QUOTA_EXCEEDED,
        ClientReason.UNKNOWN_SERVICE,
        ClientReason.SERVICE_NOT_ALLOWED,
        ClientReason.PAYLOAD_TOO_LARGE,
        ClientReason.BATCH_TOO_LARGE,
        ClientReason.METHOD_DENIED,
        ClientReason.ORIGIN_NOT_ALLOWED,
    }
    for reason in client_mistakes:
        assert CLIENT_ERRORS[reason].http_status < 500, reason
    assert CLIENT_ERRORS[ClientReason.PARSE_ERROR].jsonrpc_code == -32700
    assert CLIENT_ERRORS[ClientReason.INVALID_REQUEST].jsonrpc_code == -32600
    assert CLIENT_ERRORS[ClientReason.UNAUTHORIZED].http_status == 401
    assert CLIENT_ERRORS[ClientReason.RATE_LIMITED].http_status == 429
    assert CLIENT_ERRORS[ClientReason.UNKNOWN_SERVICE].http_status == 404


# -- failsafe -----------------------------------------------------------------------------


def test_breaker_opens_half_opens_and_closes() -> None:
    now = [0.0]
    b = Breaker(failures=3, cooldown=10.0, clock=lambda: now[0])
    for _ in range(2):
        b.record_failure()
    assert b.state is BreakerState.CLOSED and b.allow()
    b.record_failure()
    assert b.state is BreakerState.OPEN and not b.allow()
    now[0] = 9.9
    assert not b.allow()
    now[0] = 10.0
    assert b.allow() and b.state is BreakerState.HALF_OPEN
    assert not b.allow()  # one probe at a time
    b.record_failure()  # the probe failed: open again
    assert b.state is BreakerState.OPEN
    now[0] = 20.0
    assert b.allow()
    b.record_success()
    assert b.state is BreakerState.CLOSED and b.allow() and b.allow()


def test_retry_rules_for_reads_and_writes() -> None:
    read = RetryState(max_attempts=3, idempotent=True)
    assert read.after(Outcome.MAYBE_SENT) and read.after(Outcome.RETRYABLE)
    assert not read.after(Outcome.UNSENT)  # attempts used up
    write = RetryState(max_attempts=3, idempotent=False)
    assert not write.after(Outcome.MAYBE_SENT)  # may have reached a backend: never again
    assert not write.after(Outcome.RETRYABLE)
    assert write.after(Outcome.UNSENT)  # provably never sent: safe
    assert not RetryState(max_attempts=3, idempotent=True).after(Outcome.FATAL)
    pinned = RetryState(max_attempts=3, idempotent=True, allowed=False)
    assert not pinned.after(Outcome.UNSENT)


def test_relay_codes_map_to_retry_outcomes() -> None:
    assert classify_code(ErrorCode.SESSION_NOT_STARTED) is Outcome.UNSENT
    assert classify_code(ErrorCode.APP_OVER_BUDGET) is Outcome.UNSENT
    assert classify_code(ErrorCode.RATE_LIMITED) is Outcome.UNSENT
    assert classify_code(ErrorCode.BACKEND_TIMEOUT) is Outcome.RETRYABLE
    assert classify_code(ErrorCode.BACKEND_UNAVAILABLE) is Outcome.RETRYABLE
    # supplier-specific (DESIGN §3.3): refused before forwarding, retried elsewhere
    assert classify_code(ErrorCode.METHOD_DENIED) is Outcome.UNSENT
    assert classify_code(ErrorCode.BAD_COMPUTE_UNITS) is Outcome.UNSENT
    # a lie may hide a forwarded payload: reads go again, writes never
    assert classify_code(ErrorCode.BAD_SIGNATURE) is Outcome.MAYBE_SENT
    assert classify_code(None) is Outcome.MAYBE_SENT


def test_hedger_follows_latency_with_a_floor() -> None:
    h = Hedger(floor=0.05, factor=2.0, alpha=1.0)
    assert h.delay() == 0.05
    h.observe(0.001)
    assert h.delay() == 0.05
    h.observe(0.2)
    assert h.delay() == pytest.approx(0.4)


# -- selection ----------------------------------------------------------------------------

A, B, C, D = (bytes([i]) * 20 for i in (1, 2, 3, 4))


def test_height_lag_is_against_the_median() -> None:
    q = Qos(max_height_lag=2)
    # one supplier far ahead must not make the others look lagging: median, not max
    for s, h in ((A, 100), (B, 100), (C, 1000)):
        q.observe_height("eth", s, h)
    assert q.median_height("eth", [A, B, C]) == 100
    assert set(q.eligible("eth", [A, B, C])) == {A, B, C}
    q.observe_height("eth", D, 90)
    assert D not in q.eligible("eth", [A, B, C, D])


def test_wrong_chain_and_open_breaker_are_never_chosen() -> None:
    q = Qos(breaker_failures=1, rng=random.Random(1))
    q.observe_chain("eth", A, False)
    q.record_failure("eth", B)
    picks = {q.choose("eth", [A, B, C]) for _ in range(50)}
    assert picks == {C}
    q.refuse("eth", C, "private address")
    # only an open breaker left: tried anyway rather than failing for sure
    assert q.choose("eth", [A, B, C]) == B
    assert q.choose("eth", [A, C]) is None


def test_weighted_random_spreads_and_prefers_fast() -> None:
    q = Qos(rng=random.Random(7))
    for _ in range(5):
        q.record_success("eth", A, 0.005)
        q.record_success("eth", B, 0.050)
    counts = {A: 0, B: 0}
    for _ in range(2000):
        pick = q.choose("eth", [A, B])
        assert pick is not None
        counts[pick] += 1
    assert counts[A] > counts[B] > 0  # the fast one gets more, the slow one still some


def test_choose_excludes_tried() -> None:
    q = Qos()
    assert q.choose("eth", [A, B], exclude=[A]) == B
    assert q.choose("eth", [A], exclude=[A]) is None


# -- endpoint guard -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("::ffff:127.0.0.1", "v4-mapped loopback (127.0.0.1)"),
        ("0.0.0.0", "unspecified"),
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
    ],
)
def test_forbidden_ip(ip: str, why: str | None) -> None:
    assert forbidden_ip(ip) == why


def test_endpoint_urls_must_be_http_or_ws() -> None:
    with pytest.raises(EndpointRefused):
        check_literal("ftp://example.com/")
    with pytest.raises(EndpointRefused):
        check_literal("http:///no-host")
    check_literal("http://127.0.0.1:8545/v1/relay")  # addresses: GuardedConnector checks
    check_literal("wss://relay.example.com/v1/relay")


async def test_resolver_checks_the_resolved_address() -> None:
    class Inner:
        def __init__(self, ip: str) -> None:
            self.ip = ip

        async def resolve(self, host: str, port: int = 0, family: Any = socket.AF_INET) -> Any:
            return [
                {
                    "hostname": host,
                    "host": self.ip,
                    "port": port,
                    "family": family,
                    "proto": 0,
                    "flags": 0,
                }
            ]

        async def close(self) -> None:
            return None

    evil = GuardedResolver(devnet=False, inner=Inner("127.0.0.1"))  # type: ignore[arg-type]
    with pytest.raises(EndpointRefusedOSError):
        await evil.resolve("looks-public.example", 80)
    dev = GuardedResolver(devnet=True, inner=Inner("127.0.0.1"))  # type: ignore[arg-type]
    assert (await dev.resolve("localhost", 80))[0]["host"] == "127.0.0.1"
    public = GuardedResolver(devnet=False, inner=Inner("93.184.216.34"))  # type: ignore[arg-type]
    assert (await public.resolve("example.com", 80))[0]["host"] == "93.184.216.34"


# -- config -------------------------------------------------------------------------------

CONFIG = """
[gateway]
listen = "127.0.0.1:8545"
private_key = "${GW_KEY}"
[settlement]
rpc_url = "http://127.0.0.1:1"
deployment = "deployment.json"
[keys]
file = "keys.json"
[services.devnet]
catalogue = "devnet"
"""


def test_config_expands_env_forbids_extras_and_hides_secrets(tmp_path: Any) -> None:
    key = "0x" + "11" * 32
    cfg = parse_config(CONFIG, base=tmp_path, env={"GW_KEY": key})
    assert cfg.gateway.key_bytes() == bytes.fromhex("11" * 32)
    assert key[2:] not in repr(cfg) and key[2:] not in str(cfg.model_dump())
    assert cfg.settlement.deployment == tmp_path / "deployment.json"
    with pytest.raises(ConfigProblem, match="max_batchh"):
        parse_config(CONFIG + "\n[limits]\nmax_batchh = 3\n", env={"GW_KEY": key})
    with pytest.raises(ConfigProblem, match="GW_KEY"):
        parse_config(CONFIG, env={})
    no_keys = CONFIG.replace('[keys]\nfile = "keys.json"\n', "")
    with pytest.raises(ConfigProblem, match="redis"):
        parse_config(no_keys, env={"GW_KEY": key})


def test_error_bodies_are_jsonrpc() -> None:
    from gateway.errors import jsonrpc_error_body

    body = jsonrpc_error_body(BadRequest("nope", reason=ClientReason.UNAUTHORIZED), b'"x"')
    assert orjson.loads(body) == {
        "jsonrpc": "2.0",
        "id": "x",
        "error": {"code": -32001, "message": "nope"},
    }


# -- metrics: suppliers that leave --------------------------------------------------------


def _samples(metrics: Any, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for fam in metrics.registry.collect()
        for s in fam.samples
        if s.name == name
    }


def test_service_cells_count_into_the_series_and_keep_no_client_method_text() -> None:
    """A service's request cells are memoised per label and fold into the same series as
    ``child``; a method outside the table counts as ``unknown`` and is never kept."""
    from gateway.metrics import GatewayMetrics

    m = GatewayMetrics()
    cells = m.service_cells("eth")
    assert m.service_cells("eth") is cells and m.service_cells("unknown") is not cells
    for i in range(50):
        assert cells.method(f"no_such_{i}") is None
        cells.learn(f"no_such_{i}", False).inc()
    for _ in range(3):
        (cells.method("getBlock") or cells.learn("getBlock", True)).inc()
        cells.requests("read", "relayed").inc()
    cells.requests("none", "rate_limited").inc()
    cells.seconds.observe(0.002)
    calls = _samples(m, "relaynet_gateway_method_calls_total")
    assert calls == {
        (("method", "unknown"), ("service", "eth")): 50.0,
        (("method", "getBlock"), ("service", "eth")): 3.0,
    }
    assert len(cells._by_method) == 2  # "unknown" and the table's method: bounded
    requests = _samples(m, "relaynet_gateway_requests_total")
    assert requests[(("method_class", "read"), ("outcome", "relayed"), ("service", "eth"))] == 3
    assert requests[(("method_class", "none"), ("outcome", "rate_limited"), ("service", "eth"))]
    assert _samples(m, "relaynet_gateway_request_seconds_count")[(("service", "eth"),)] == 1.0


def test_a_supplier_that_leaves_loses_its_series_and_cached_children() -> None:
    from gateway.metrics import GatewayMetrics

    m = GatewayMetrics()
    m.child(m.relays, "eth", "0xaa", "success").inc()
    m.child(m.circuit, "eth", "0xaa").set(2)  # open: the alert that never stopped firing
    m.child(m.relays, "eth", "0xbb", "success").inc()
    m.supplier_cells("eth", "0xaa").selected.inc()
    m.supplier_height.labels("eth", "0xaa").set(10)
    m.forget_supplier("eth", "0xaa")
    text = m.render().decode()
    assert "0xaa" not in text and '"0xbb"' in text
    # a cached child (or an attempt's cell bundle) would keep counting into a series no
    # longer exported
    m.child(m.relays, "eth", "0xaa", "success").inc()
    m.supplier_cells("eth", "0xaa").success.inc()
    m.supplier_cells("eth", "0xaa").selected.inc()
    relays = _samples(m, "relaynet_gateway_relays_total")
    assert relays[(("outcome", "success"), ("service", "eth"), ("supplier", "0xaa"))] == 2.0
    selected = _samples(m, "relaynet_gateway_selected_total")
    assert selected[(("service", "eth"), ("supplier", "0xaa"))] == 1.0


def test_a_key_reloaded_without_a_service_is_refused_it_at_once() -> None:
    """Client contexts are kept per key record: a reloaded record (a new object) is judged
    again, so a service taken off a key is 403 from the next request on."""
    from types import SimpleNamespace

    from gateway.keys import ApiKey
    from gateway.server import client_context

    app = "0x" + "aa" * 20
    before = ApiKey("h" * 64, "k", {"eth": app})
    records = {"key": before}
    svc = SimpleNamespace(service_id="eth")
    gw: Any = SimpleNamespace(
        keys=SimpleNamespace(lookup=lambda presented: records[presented]),
        contexts={},
        services=SimpleNamespace(get=lambda sid: svc),
        sessions=SimpleNamespace(snapshot=SimpleNamespace(service=lambda sid: object())),
        ready=lambda: True,
    )
    request: Any = SimpleNamespace(match_info={"service": "eth", "key": "key"}, headers={})
    ctx, record = client_context(gw, request)
    assert record is before and ctx.app == bytes.fromhex("aa" * 20)
    assert client_context(gw, request)[0] is ctx  # built once per record
    records["key"] = ApiKey("h" * 64, "k", {"other": app})  # reloaded: eth taken off
    with pytest.raises(BadRequest) as refused:
        client_context(gw, request)
    assert refused.value.reason is ClientReason.SERVICE_NOT_ALLOWED


async def test_the_prober_forgets_suppliers_no_session_in_use_has() -> None:
    from gateway.health import Prober
    from gateway.metrics import GatewayMetrics
    from gateway.store.memory import MemoryStore

    class NoSessions:  # every session in use is gone (e.g. the app unstaked)
        def upcoming(self) -> list[Any]:
            return []

    m = GatewayMetrics()
    m.child(m.circuit, "eth", "0xaa").set(2)
    store = MemoryStore()
    prober = Prober(
        sessions=NoSessions(),  # type: ignore[arg-type]
        services=None,  # type: ignore[arg-type]
        client=None,  # type: ignore[arg-type]
        qos=Qos(),
        store=store,
        metrics=m,
        interval=1.0,
        timeout=1.0,
    )
    prober._in_use = {("eth", "0xaa")}
    await prober.round()
    assert "0xaa" not in m.render().decode()
    await store.close()


def test_sighup_applies_limits_ws_and_access_log_and_names_the_rest(tmp_path: Any) -> None:
    from gateway.app import reloaded

    env = {"GW_KEY": "0x" + "11" * 32}
    old = parse_config(CONFIG + "[limits]\nmax_batch = 2\n", base=tmp_path, env=env)
    new = parse_config(
        CONFIG.replace("127.0.0.1:8545", "127.0.0.1:9999")
        + "[limits]\nmax_batch = 7\nmax_body_bytes = 1000\n",
        base=tmp_path,
        env=env,
    )
    applied, fixed = reloaded(old, new)
    assert applied.limits.max_batch == 7
    assert applied.limits.max_body_bytes == old.limits.max_body_bytes  # the listener's
    assert applied.gateway.listen == "127.0.0.1:8545"
    assert sorted(fixed) == ["gateway.listen", "limits.max_body_bytes"]


def test_metric_cells_count_without_locks_and_show_at_collection() -> None:
    """The request path's cells reach Prometheus at the next collection, exactly as direct
    updates would: counters, gauges and every histogram bucket."""
    from gateway.metrics import GatewayMetrics

    m, direct = GatewayMetrics(), GatewayMetrics()
    for metrics, update in ((m, m.child), (direct, lambda metric, *labels: metric.labels(*labels))):
        update(metrics.requests, "eth", "read", "relayed").inc()
        update(metrics.requests, "eth", "read", "relayed").inc(2)
        update(metrics.circuit, "eth", "0xaa").set(1)
        update(metrics.circuit, "eth", "0xaa").set(2)
        for seconds in (0.0005, 0.001, 0.003, 0.2, 9.0):
            update(metrics.request_seconds, "eth").observe(seconds)
    assert m.requests.labels("eth", "read", "relayed")._value.get() == 0  # not folded in yet
    names = (
        "relaynet_gateway_requests_total",
        "relaynet_gateway_circuit_state",
        "relaynet_gateway_request_seconds_bucket",
        "relaynet_gateway_request_seconds_sum",
        "relaynet_gateway_request_seconds_count",
    )
    for name in names:
        assert _samples(m, name) == _samples(direct, name), name
    assert (
        _samples(m, "relaynet_gateway_requests_total")[
            (("method_class", "read"), ("outcome", "relayed"), ("service", "eth"))
        ]
        == 3
    )
    m.child(m.requests, "eth", "read", "relayed").inc()
    assert b'outcome="relayed",service="eth"} 4.0' in m.render()


def test_sighup_applies_the_log_format_and_level(tmp_path: Any) -> None:
    from gateway.app import reloaded

    env = {"GW_KEY": "0x" + "11" * 32}
    old = parse_config(CONFIG, base=tmp_path, env=env)
    new = parse_config(
        CONFIG.replace("[gateway]\n", '[gateway]\nlog_format = "json"\nlog_level = "debug"\n'),
        base=tmp_path,
        env=env,
    )
    assert new.gateway.log_format == "json"
    applied, fixed = reloaded(old, new)
    assert (applied.gateway.log_format, applied.gateway.log_level) == ("json", "debug")
    assert fixed == []
