"""``relaynet devnet fund``: tokens and gas money for any account on a running devnet.

Tokens come from the deployer (anvil's dev account 0, which holds the initial supply), gas money
from ``anvil_setBalance`` on the settlement chain — the devnet's faucet, for the journeys of the
README (a new node runner, app or rollup team needs both before staking or registering).
"""

from __future__ import annotations

from ledger.bootstrap import dev_account
from ledger.client import LedgerClient
from ledger.deploy import Deployment
from ledger.errors import LedgerError, translate_errors
from relaynet.devnet.state import DevnetError, DevnetState, Layout

__all__ = ["fund_account"]


async def fund_account(
    state: DevnetState, layout: Layout, address: bytes, *, tokens: int, wei: int
) -> tuple[int, int]:
    """Send ``tokens`` (base units) and set ``wei`` of gas money; returns the new balances."""
    try:
        deployment = Deployment.from_json(layout.deployment.read_text())
    except OSError as exc:
        raise DevnetError(f"no deployment in {layout.root}: is the devnet up?") from exc
    client = LedgerClient(state.settlement.rpc_url, deployment, dev_account(0))
    try:
        if wei:
            with translate_errors("anvil_setBalance"):
                await client.w3.provider.make_request(
                    "anvil_setBalance",  # type: ignore[arg-type]
                    ["0x" + address.hex(), hex(wei)],
                )
        if tokens:
            await client.transfer(address, tokens)
        return await client.balance(address), await client.eth_balance(address)
    except LedgerError as exc:
        raise DevnetError(f"funding failed: {exc}") from exc
    finally:
        await client.close()
