"""The settlement chain: Vyper contracts, their Python client, the registry follower.

Owns: ``ledger/contracts/*.vy`` with compiled ABI and bytecode beside them, a typed web3.py
client, a follower that keeps the registry snapshot current from events, and the anvil
launcher used by the devnet and the tests. Knows nothing about HTTP serving.
"""
