# pragma version ~=0.4.3
"""
@title structs
@notice Structs shared by the contracts and their interfaces (DESIGN §3.1).
"""


struct EconParams:
    min_stake_supplier: uint256
    min_stake_app: uint256
    min_stake_gateway: uint256
    unbonding_sessions: uint256
    max_delegations: uint256
    max_services_per_supplier: uint256
    proof_probability_bps: uint256
    proof_threshold: uint256
    slash_multiplier_bps: uint256
    settle_bounty_bps: uint256
    cu_price: uint256
    service_registration_fee: uint256
    mint_supplier_bps: uint256
    mint_owner_bps: uint256
    mint_treasury_bps: uint256
    max_stream_relays: uint256


struct ServiceParams:
    cu_per_relay: uint256
    max_cu_per_relay: uint256
    difficulty_bits: uint256
