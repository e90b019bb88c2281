"""Shared test helpers and launchers — the one home for them (tests import from here).

- ``redis_server``: a real redis-server on a free port.
- ``relayer_proc`` / ``gateway_proc``: ``relaynet relayer run`` / ``relaynet gateway run`` as
  real subprocesses, with their files.
- ``relayer_net``: settlement anvil + backend anvil + staked network + relayer subprocess.
- ``gateway_net``: a whole staked network with N relayers and a gateway.
- ``gateway_corpus``: the JSON-RPC transparency corpus built from a chain's state.
- ``chain``: one contract deployment on an anvil, driven with web3.py (``Chain``, ``Raw``).
- ``cli_chain``: one anvil + network per CLI test module (``chain_env``) and CliRunner helpers.
- ``relay_client``: a client's side of the relay protocol (sign requests, check receipts).

Fixtures (anvil chains, redis, seeds) live in ``tests/conftest.py``.
"""
