"""The celestia-node handler: all 72 methods, removed and admin modules, writes, long polls,
cache, channels, health and header policy."""

from __future__ import annotations

import orjson
import pytest

from rollups import Call, Heights, MethodClass, ProbeAnswer, RetryMode, handler_for, parse_spec
from rollups.catalogue import catalogue
from rollups.celestia import METHODS, P2P_METHODS, Permission
from rollups.errors import MethodDeniedError, MethodNotFoundError, SpecError, WritesDisabledError
from rollups.handler import HealthStatus
from tests.support.specs import overrides_spec

SPEC = catalogue()["celestia-mocha"]
H = handler_for("celestia")

R, W, L, S, D = "read", "write", "long_poll", "subscription", "denied"
# RPC-TYPES.md's 72 methods: (method, class, permission)
TABLE: list[tuple[str, str, str]] = [
    *[
        (f"header.{m}", R, "read")
        for m in (
            "LocalHead",
            "GetByHash",
            "GetByHeight",
            "GetRangeByHeight",
            "SyncState",
            "NetworkHead",
            "Tail",
        )
    ],
    ("header.WaitForHeight", L, "read"),
    ("header.SyncWait", L, "read"),
    ("header.Subscribe", S, "read"),
    ("blob.Submit", W, "write"),
    *[
        (f"blob.{m}", R, "read")
        for m in ("Get", "GetAll", "GetProof", "Included", "GetCommitmentProof")
    ],
    ("blob.Subscribe", S, "read"),
    *[
        (f"share.{m}", R, "read")
        for m in (
            "SharesAvailable",
            "GetShare",
            "GetSamples",
            "GetEDS",
            "GetRow",
            "GetNamespaceData",
            "GetRange",
        )
    ],
    *[
        (f"state.{m}", R, "read")
        for m in (
            "AccountAddress",
            "Balance",
            "BalanceForAddress",
            "QueryDelegation",
            "QueryDelegationRewards",
            "QueryUnbonding",
            "QueryRedelegations",
        )
    ],
    *[
        (f"state.{m}", W, "write")
        for m in (
            "Transfer",
            "SubmitPayForBlob",
            "Delegate",
            "Undelegate",
            "BeginRedelegate",
            "CancelUnbondingDelegation",
            "WithdrawDelegatorReward",
            "GrantFee",
            "RevokeGrantFee",
        )
    ],
    ("das.SamplingStats", R, "read"),
    ("das.WaitCatchUp", L, "read"),
    ("blobstream.GetDataRootTupleRoot", R, "read"),
    ("blobstream.GetDataRootTupleInclusionProof", R, "read"),
    ("node.Ready", R, "read"),
    *[
        (f"node.{m}", D, "admin")
        for m in ("Info", "LogLevelSet", "AuthVerify", "AuthNew", "AuthNewWithExpiry")
    ],
    *[(m, D, "admin") for m in P2P_METHODS],
]


def call(method: str, params: list[object] | None = None) -> Call:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
    return H.parse_relay(orjson.dumps(body))


def test_the_table_has_the_72_methods() -> None:
    assert len(TABLE) == 72 == len(METHODS) == len({m for m, _, _ in TABLE})
    assert len(P2P_METHODS) == 22
    assert {m for m, _, _ in TABLE} == set(METHODS)


@pytest.mark.parametrize(("method", "cls", "perm"), TABLE)
def test_method_policy(method: str, cls: str, perm: str) -> None:
    assert METHODS[method].permission is Permission(perm)
    policy = H.method_policy(SPEC, method)
    assert policy.method_class is MethodClass(cls) and policy.known
    c = call(method)
    if cls == D:
        with pytest.raises(MethodDeniedError, match="admin method"):
            H.plan(SPEC, c, allow_writes=True)
        return
    if cls == W:
        with pytest.raises(WritesDisabledError, match="node operator's wallet"):
            H.plan(SPEC, c)  # the catalogue spec turns writes off
        with pytest.raises(WritesDisabledError):
            H.plan(SPEC, c, allow_writes=False)
        plan = H.plan(SPEC, c, allow_writes=True)  # the operator allows writes
        assert plan.retry.mode is RetryMode.UNSENT_ONLY and not plan.retry.hedge
        return
    plan = H.plan(SPEC, c)
    if cls == L:
        assert not plan.retry.hedge and plan.retry.timeout == SPEC.timeouts.long_poll
        assert plan.retry.timeout > SPEC.timeouts.default
    if cls == S:
        assert plan.subscription is not None and plan.subscription.subscribe
    if cls == R:
        assert plan.retry.hedge and plan.retry.timeout == SPEC.timeouts.default
    assert plan.compute_units == SPEC.compute_units.price(method)


@pytest.mark.parametrize("method", ["da.Get", "da.Submit", "da.GetIDs", "foo.Bar", "eth_call"])
def test_removed_and_unknown_methods_are_not_found(method: str) -> None:
    assert not H.method_policy(SPEC, method).known
    with pytest.raises(MethodNotFoundError, match="not found"):
        H.plan(SPEC, call(method))


def test_unknown_p2p_names_are_denied_not_relayed() -> None:
    with pytest.raises(MethodDeniedError):
        H.plan(SPEC, call("p2p.SomethingNew"))


def test_a_spec_cannot_allow_admin_p2p_or_da() -> None:
    base = overrides_spec("celestia", "mocha-4")
    for method, refusal in (
        ("p2p.*", "p2p"),
        ("da.Get", "no longer exists"),
        ("node.AuthNew", r"node\.AuthNew is an admin method"),
    ):
        with pytest.raises(SpecError, match=refusal):
            parse_spec(base + f'"{method}" = {{ class = "read" }}\n')
    denied = parse_spec(base + '"share.GetEDS" = { class = "denied" }\n')
    with pytest.raises(MethodDeniedError, match="denied by the chain spec"):
        H.plan(denied, call("share.GetEDS", [5]))


def test_cache_by_height() -> None:
    heights = Heights(latest=100, finalized=100)
    ns = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAMJ/xGlNMdE="
    final = H.cache_policy(SPEC, call("blob.GetAll", [50, [ns]]), heights)
    assert final.final
    assert not H.cache_policy(SPEC, call("blob.GetAll", [150, [ns]]), heights).cacheable
    head = H.cache_policy(SPEC, call("header.NetworkHead"), heights)
    assert head.cacheable and head.ttl == SPEC.cache.head_ttl
    assert H.cache_policy(SPEC, call("header.GetByHash", ["AB"]), heights).final
    assert not H.cache_policy(SPEC, call("das.SamplingStats"), heights).cacheable
    assert not H.cache_policy(SPEC, call("header.WaitForHeight", [5]), heights).cacheable
    null = b'{"jsonrpc":"2.0","id":1,"result":null}'
    assert not H.store_policy(SPEC, call("blob.GetAll", [50, [ns]]), null, heights).cacheable


def header_body(height: str, chain: str) -> bytes:
    return orjson.dumps(
        {"jsonrpc": "2.0", "id": 1, "result": {"header": {"height": height, "chain_id": chain}}}
    )


def test_health_reads_local_and_network_head() -> None:
    names = [p.name for p in H.probe_requests(SPEC)]
    assert names == ["local_head", "network_head"]
    ok = H.read_health(
        SPEC,
        {
            "local_head": ProbeAnswer(200, header_body("67374", "mocha-4")),
            "network_head": ProbeAnswer(200, header_body("67375", "mocha-4")),
        },
    )
    assert ok.ok and ok.height == 67374 and ok.chain_id == "mocha-4"
    wrong = H.read_health(SPEC, {"local_head": ProbeAnswer(200, header_body("5", "celestia"))})
    assert wrong.status is HealthStatus.WRONG_CHAIN
    lagging = H.read_health(
        SPEC,
        {
            "local_head": ProbeAnswer(200, header_body("10", "mocha-4")),
            "network_head": ProbeAnswer(200, header_body("500", "mocha-4")),
        },
    )
    assert lagging.status is HealthStatus.SYNCING
    denied = (
        b'{"jsonrpc":"2.0","id":1,"error":{"code":1,'
        b"\"message\":\"missing permission to invoke 'header.LocalHead' (need 'read')\"}}"
    )
    bad = H.read_health(SPEC, {"local_head": ProbeAnswer(200, denied)})
    assert bad.status is HealthStatus.BAD_ANSWER and "missing permission" in bad.reason
    assert H.read_health(SPEC, {}).status is HealthStatus.UNREACHABLE


def test_header_policy_needs_the_node_token_and_drops_the_clients() -> None:
    policy = H.header_policy(SPEC)
    assert policy.auth_required
    assert policy.client_headers({"Authorization": "Bearer client-jwt", "Content-Type": "x"}) == {
        "Content-Type": "x"
    }
    assert policy.backend_headers(token="node-jwt")["Authorization"] == "Bearer node-jwt"


def test_channels_are_rewritten_and_answers_checked() -> None:
    pushed = b'{"jsonrpc":"2.0","method":"xrpc.ch.val","params":[3,{"header":{}}]}'
    assert H.read_notification(pushed) == "3"
    assert orjson.loads(H.rewrite_notification(pushed, "17"))["params"][0] == 17
    assert H.read_notification(b'{"jsonrpc":"2.0","id":1,"result":3}') is None
    sub = H.subscription(call("blob.Subscribe", ["ns"]))
    assert sub is not None and sub.topic == "blob.Subscribe:ns"
    c = call("header.NetworkHead")
    denied = (
        b'{"jsonrpc":"2.0","id":1,"error":{"code":1,'
        b"\"message\":\"missing permission to invoke 'header.NetworkHead' (need 'read')\"}}"
    )
    check = H.check_answer(SPEC, c, 200, denied)
    assert check.error and check.retry_elsewhere  # the relayer's token is the problem
    assert H.check_answer(SPEC, c, 401, b"").retry_elsewhere
    assert H.check_answer(SPEC, c, 200, header_body("1", "mocha-4")).valid


def test_catalogue_entries() -> None:
    specs = catalogue()
    assert specs["celestia"].network == "celestia" and specs["celestia"].rpc_type == "celestia"
    assert specs["celestia-mocha"].network == "mocha-4"
    assert not specs["celestia"].methods.allow_writes
