"""Python = Vyper = the known answers for §3.1's parameter rules and §3.2's ``signer_ok``.

``params``: every case of the KAT file and of a fresh ``relaynet dev vectors`` file gets the same
verdict, and the same reason, from ``protocol.settlement.params_error`` and from the contracts'
validator (``relaymath.params_error`` through ``MathHarness``, the function ``Sessions`` runs on
the whole set at deployment and on every ``set_econ_params``); the KAT cases also go through the
real ``Sessions`` constructor. ``delegations``: the operations of fresh cases replayed on the real
``Apps`` contract give every ``signer_ok(app, g, n)`` the file states.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from web3 import Web3

from ledger.anvil import DEV_ACCOUNTS, AnvilProcess
from ledger.artifacts import load_artifact
from ledger.deploy import DeployParams
from ledger.econ import econ_tuple
from protocol import settlement as ps
from protocol.errors import ProtocolError
from relaynet import vectors as vec
from tests.support.chain import Chain, Raw, sid

pytestmark = pytest.mark.slow  # starts processes (anvil)

SEED = int.from_bytes(os.urandom(4), "big")
DEV0 = Web3.to_checksum_address(DEV_ACCOUNTS[0][0])


@pytest.fixture(scope="module")
def node() -> Iterator[AnvilProcess]:
    with AnvilProcess() as anvil:
        yield anvil


@pytest.fixture(scope="module")
def fresh() -> dict[str, Any]:
    print(f"vectors seed {SEED}")
    return vec.generate(SEED)


def _econ(case: dict[str, Any]) -> tuple[int, ...]:
    """The contracts' EconParams of a params case (fields the case leaves out: devnet)."""
    p = DeployParams(
        unbonding_sessions=case["unbonding_sessions"],
        proof_probability_bps=case["proof_probability_bps"],
        slash_multiplier_bps=case["slash_multiplier_bps"],
        settle_bounty_bps=case["settle_bounty_bps"],
        mint_shares=tuple(case["mint_shares"]),
    )
    return econ_tuple(p.economic_params())


def _shape(case: dict[str, Any]) -> list[int]:
    return [case[k] for k in ("L", "G", "CO", "CW", "PO", "PW")] + [6]


def _vyper_reason(raw: Raw, harness: str, case: dict[str, Any]) -> str | None:
    reason = raw.call("MathHarness", harness, "params_error", *_shape(case), _econ(case))
    return reason or None


def test_params_kat_python_and_vyper(node: AnvilProcess, kat: dict[str, Any]) -> None:
    raw = Raw(node)
    harness = raw.deploy(DEV0, "MathHarness")
    cases = kat["params"]
    assert len(cases) >= 20
    for case in cases:
        python = ps.params_error(vec.param_set(case))
        assert (python is None) == case["valid"], (case["note"], python)
        assert _vyper_reason(raw, harness, case) == python, case["note"]
        # the real constructor checks the whole set at once, with the same reason
        art = load_artifact("Sessions")
        types = ["address", "address"] + ["uint256"] * 7 + ["(" + ",".join(["uint256"] * 16) + ")"]
        data = (
            "0x"
            + (art.bytecode + abi_encode(types, [DEV0, DEV0, *_shape(case), _econ(case)])).hex()
        )
        try:
            raw.rpc("eth_call", [{"from": DEV0, "data": data, "gas": hex(15_000_000)}])
            deployed = None
        except AssertionError as exc:
            deployed = str(exc)
        if case["valid"]:
            assert deployed is None, (case["note"], deployed)
        else:
            assert deployed is not None and str(python) in deployed, (case["note"], deployed)


def test_params_fresh_python_and_vyper(node: AnvilProcess, fresh: dict[str, Any]) -> None:
    raw = Raw(node)
    harness = raw.deploy(DEV0, "MathHarness")
    assert vec.check({"params": fresh["params"]}) == []
    verdicts = set()
    for case in fresh["params"]:
        python = ps.params_error(vec.param_set(case))
        assert _vyper_reason(raw, harness, case) == python, case
        verdicts.add(case["valid"])
    assert verdicts == {True, False}
    # and random sets around every boundary
    rng = random.Random(SEED)
    for _ in range(40):
        case = {
            "L": rng.randint(0, 260),
            "G": rng.randint(0, 60),
            "CO": rng.randint(0, 60),
            "CW": rng.randint(0, 60),
            "PO": rng.randint(0, 60),
            "PW": rng.randint(0, 60),
            "proof_probability_bps": rng.randint(0, 10001),
            "slash_multiplier_bps": rng.randint(0, 1_000_001),
            "settle_bounty_bps": rng.randint(0, 5001),
            "unbonding_sessions": rng.randint(0, 10001),
            "mint_shares": [s := rng.randint(4990, 10000), 10000 - s, 0],
        }
        assert _vyper_reason(raw, harness, case) == ps.params_error(vec.param_set(case)), case


def test_validator_message_states_the_multiplier_cap() -> None:
    with pytest.raises(ProtocolError) as info:
        ps.validate_params(ps.ParamSet(proof_probability_bps=2500, slash_multiplier_bps=30000))
    assert "1000000" in str(info.value) and "p*m*(1-b)" in str(info.value)
    with pytest.raises(ProtocolError) as info:
        ps.validate_params(ps.ParamSet(slash_multiplier_bps=1_000_001))
    assert "1000000" in str(info.value)


# -- delegations ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deleg_chain(node: AnvilProcess) -> Chain:
    # P = 2 for this shape: the generated cases restake after unbonding_sessions = 2
    chain = Chain(
        node,
        DeployParams(
            L=40,
            G=2,
            CO=1,
            CW=5,
            PO=0,
            PW=5,
            unbonding_sessions=vec.DELEGATION_UNBONDING,
            min_stake_app=1,
            min_stake_gateway=1,
            service_registration_fee=0,
        ),
    )
    chain.tx("Services", "register_service", DEV0, sid("svc"), "svc", "evm", "", 1, 10, 0)
    return chain


def replay_delegations(chain: Chain, case: dict[str, Any]) -> dict[tuple[str, str, int], bool]:
    """Run a case's operations on Apps (op session s in chain session base + s) and read back
    ``signer_ok`` for every query."""
    snap = chain.snapshot()
    try:
        names = {op.get("app") for op in case["ops"]} | {op["gateway"] for op in case["ops"]}
        names |= {q["app"] for q in case["queries"]} | {q["gateway"] for q in case["queries"]}
        names.discard(None)
        acct = {name: chain.account(os.urandom(20)) for name in sorted(names)}
        apps = sorted({q["app"] for q in case["queries"]})
        for name in names:
            chain.fund(acct[name], 1000)
            chain.approve(acct[name], "Apps", 1000)
        for a in apps:
            chain.tx("Apps", "stake_app", acct[a], sid("svc"), 1)
        L, B0 = chain.shape.L, chain.B0
        base = chain.session() + 1
        unstaked: set[str] = set()
        for s in sorted({op["session"] for op in case["ops"]}):
            chain.mine_to(B0 + (base + s) * L)
            for op in (o for o in case["ops"] if o["session"] == s):
                g = acct[op["gateway"]]
                if op["op"] == "stake":
                    if op["gateway"] in unstaked:
                        chain.tx("Apps", "withdraw_gateway", g)
                    chain.tx("Apps", "stake_gateway", g, 1, "http://g")
                elif op["op"] == "unstake":
                    chain.tx("Apps", "unstake_gateway", g)
                    unstaked.add(op["gateway"])
                elif op["op"] == "delegate":
                    chain.tx("Apps", "delegate", acct[op["app"]], g)
                else:
                    chain.tx("Apps", "undelegate", acct[op["app"]], g)
            assert chain.session() == base + s
        return {
            (q["app"], q["gateway"], q["n"]): bool(
                chain.call("Apps", "signer_ok", acct[q["app"]], acct[q["gateway"]], base + q["n"])
            )
            for q in case["queries"]
        }
    finally:
        chain.revert_to(snap)


def test_delegations_python_vyper_and_fresh_vectors(
    deleg_chain: Chain, fresh: dict[str, Any]
) -> None:
    cases = fresh["delegations"]
    assert vec.check({"delegations": cases}) == []
    seen = set()
    for case in cases:
        got = replay_delegations(deleg_chain, case)
        for q in case["queries"]:
            assert got[(q["app"], q["gateway"], q["n"])] == q["signer_ok"], (q, case["ops"])
            seen.add(q["signer_ok"])
    assert seen == {True, False}


def test_withdrawn_gateway_keeps_its_records_and_restake_revives_nothing(
    deleg_chain: Chain,
) -> None:
    """The records are never erased (withdraw included); a delegation of epoch 1 stays dead
    once the same key stakes again under epoch 2, until the app delegates anew."""
    c = deleg_chain
    snap = c.snapshot()
    try:
        app, gw = c.account(os.urandom(20)), c.account(os.urandom(20))
        for who in (app, gw):
            c.fund(who, 100)
            c.approve(who, "Apps", 100)
        c.tx("Apps", "stake_app", app, sid("svc"), 1)
        c.tx("Apps", "stake_gateway", gw, 1, "http://g")
        c.tx("Apps", "delegate", app, gw)
        m = c.session()
        assert c.call("Apps", "signer_ok", app, gw, m + 1)
        c.mine_to(c.windows(m + 1)[0])
        c.tx("Apps", "unstake_gateway", gw)
        c.reverts(c.fn("Apps", "delegate", gw), app, "delegation: gateway not staked")
        c.mine_to(c.windows(m + 1 + vec.DELEGATION_UNBONDING)[0])
        c.tx("Apps", "withdraw_gateway", gw)
        c.tx("Apps", "stake_gateway", gw, 1, "http://g")
        now = c.session()
        assert c.call("Apps", "gateway_stake_at", gw, m + 1) == [True, 1]
        assert c.call("Apps", "gateway_stake_at", gw, m + 2) == [False, 1]
        assert c.call("Apps", "gateway_stake_at", gw, now + 1) == [True, 2]
        assert c.call("Apps", "delegated", app, gw, now + 1)  # the record is still active...
        assert not c.call("Apps", "signer_ok", app, gw, now + 1)  # ...under a dead epoch
        assert c.call("Apps", "signer_ok", app, gw, m + 1)  # history kept
        c.tx("Apps", "delegate", app, gw)  # re-delegating under the new epoch is allowed once
        c.reverts(c.fn("Apps", "delegate", gw), app, "delegation: already delegated")
        assert c.call("Apps", "signer_ok", app, gw, now + 1)
        assert c.call("Apps", "signer_ok", app, app, 0)
    finally:
        c.revert_to(snap)


def test_production_defaults_are_the_kat_defaults_and_valid(
    node: AnvilProcess, kat: dict[str, Any]
) -> None:
    d = DeployParams.production_defaults()
    assert d.slash_multiplier_bps == 40000
    (case,) = [c for c in kat["params"] if c["note"] == "defaults"]
    assert {k: getattr(d, k) for k in ("L", "G", "CO", "CW", "PO", "PW")} == {
        k: case[k] for k in ("L", "G", "CO", "CW", "PO", "PW")
    }
    assert (d.proof_probability_bps, d.slash_multiplier_bps, d.settle_bounty_bps) == (
        case["proof_probability_bps"],
        case["slash_multiplier_bps"],
        case["settle_bounty_bps"],
    )
    raw = Raw(node)
    harness = raw.deploy(DEV0, "MathHarness")
    shape = [d.L, d.G, d.CO, d.CW, d.PO, d.PW, d.S]
    assert raw.call("MathHarness", harness, "params_error", *shape, d.econ_tuple()) == ""
    assert d.P == 2 and ps.params_error(vec.param_set(case)) is None
