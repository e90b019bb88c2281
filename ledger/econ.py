"""The contracts' ``EconParams`` struct, both ways: the one home of its field order.

``Sessions`` takes and returns the economic parameters as a 16-field struct; deployment
(:mod:`ledger.deploy`), the client (``set_econ_params`` / ``econ_params``) and the follower
(``EconParamsSet`` events) all go through these two functions.
"""

from __future__ import annotations

from collections.abc import Sequence

from session.snapshot import EconomicParams

__all__ = ["econ_params_from_values", "econ_tuple"]


def econ_tuple(p: EconomicParams) -> tuple[int, ...]:
    """An :class:`EconomicParams` as the contracts' ``EconParams`` struct, field order exact."""
    s, o, t = p.mint_shares
    return (
        p.min_stake_supplier,
        p.min_stake_app,
        p.min_stake_gateway,
        p.unbonding_sessions,
        p.max_delegations,
        p.max_services_per_supplier,
        p.proof_probability_bps,
        p.proof_threshold,
        p.slash_multiplier_bps,
        p.settle_bounty_bps,
        p.cu_price,
        p.service_registration_fee,
        s,
        o,
        t,
        p.max_stream_relays,
    )


def econ_params_from_values(v: Sequence[int]) -> EconomicParams:
    """Build :class:`EconomicParams` from the struct's 16 values, in the contract's order."""
    return EconomicParams(
        min_stake_supplier=int(v[0]),
        min_stake_app=int(v[1]),
        min_stake_gateway=int(v[2]),
        unbonding_sessions=int(v[3]),
        max_delegations=int(v[4]),
        max_services_per_supplier=int(v[5]),
        proof_probability_bps=int(v[6]),
        proof_threshold=int(v[7]),
        slash_multiplier_bps=int(v[8]),
        settle_bounty_bps=int(v[9]),
        cu_price=int(v[10]),
        service_registration_fee=int(v[11]),
        mint_shares=(int(v[12]), int(v[13]), int(v[14])),
        max_stream_relays=int(v[15]),
    )
