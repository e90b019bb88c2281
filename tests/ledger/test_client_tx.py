"""TxSender against a real anvil: nonces in a row, replacement of stuck transactions,
resynchronisation, and chain errors translated at the edge."""

from __future__ import annotations

import asyncio

import pytest
from web3 import AsyncHTTPProvider, AsyncWeb3

from ledger.anvil import DEV_ACCOUNTS, AnvilProcess, free_port
from ledger.errors import ChainUnavailable, TransactionTimeout
from ledger.tx import TxSender
from protocol.encoding import hex_to_bytes
from protocol.keys import AccountKey

KEY = AccountKey(hex_to_bytes(DEV_ACCOUNTS[5][1]))
TO = DEV_ACCOUNTS[6][0]


def _w3(url: str) -> AsyncWeb3:
    return AsyncWeb3(AsyncHTTPProvider(url, exception_retry_configuration=None))


async def test_twenty_transactions_in_a_row_all_land(anvil: AnvilProcess) -> None:
    w3 = _w3(anvil.url)
    sender = TxSender(w3, KEY)
    before = await w3.eth.get_balance(AsyncWeb3.to_checksum_address(TO))
    receipts = await asyncio.gather(
        *(sender.send(TO, b"", value=1000 + i, gas=21_000) for i in range(20))
    )
    assert len({r.tx_hash for r in receipts}) == 20
    nonces = [
        (await w3.eth.get_transaction(r.tx_hash))["nonce"]  # type: ignore[arg-type]
        for r in receipts
    ]
    assert sorted(nonces) == list(range(20))
    after = await w3.eth.get_balance(AsyncWeb3.to_checksum_address(TO))
    assert after - before == sum(1000 + i for i in range(20))
    assert await w3.eth.get_transaction_count(AsyncWeb3.to_checksum_address(KEY.address)) == 20


async def test_stuck_transaction_is_replaced_with_a_higher_fee(anvil: AnvilProcess) -> None:
    w3 = _w3(anvil.url)
    anvil.rpc("evm_setAutomine", [False])
    sender = TxSender(w3, KEY, replace_after=0.2, poll_interval=0.02)
    task = asyncio.create_task(sender.send(TO, b"", value=7, gas=21_000))
    while len(sender.sent_hashes) < 2:  # the first version stayed unmined: replaced
        await asyncio.sleep(0.05)
    anvil.mine(1)
    receipt = await task
    assert receipt.replacements >= 1
    assert receipt.tx_hash in list(sender.sent_hashes)[1:]
    mined = await w3.eth.get_transaction(receipt.tx_hash)  # type: ignore[arg-type]
    first = sender.sent_hashes[0]
    assert mined["nonce"] == 0
    # the replacement pays strictly more than the original did
    block = await w3.eth.get_block(receipt.block_number, full_transactions=True)
    assert [bytes(t["hash"]) for t in block["transactions"]] == [receipt.tx_hash]  # type: ignore[index]
    assert receipt.tx_hash != first


async def test_nonce_resynchronises_after_an_outside_transaction(anvil: AnvilProcess) -> None:
    w3 = _w3(anvil.url)
    sender = TxSender(w3, KEY)
    await sender.send(TO, b"", value=1, gas=21_000)
    # the same account sends behind the sender's back (anvil signs for its dev accounts)
    anvil.rpc("eth_sendTransaction", [{"from": DEV_ACCOUNTS[5][0], "to": TO, "value": "0x1"}])
    receipt = await sender.send(TO, b"", value=2, gas=21_000)
    mined = await w3.eth.get_transaction(receipt.tx_hash)  # type: ignore[arg-type]
    assert mined["nonce"] == 2


async def test_unreachable_chain_is_a_ledger_error() -> None:
    sender = TxSender(_w3(f"http://127.0.0.1:{free_port()}"), KEY)
    with pytest.raises(ChainUnavailable, match="unreachable"):
        await sender.send(TO, b"", value=1, gas=21_000)


async def test_no_receipt_before_the_deadline_times_out(anvil: AnvilProcess) -> None:
    anvil.rpc("evm_setAutomine", [False])
    sender = TxSender(_w3(anvil.url), KEY, receipt_timeout=0.3, replace_after=10)
    with pytest.raises(TransactionTimeout) as info:
        await sender.send(TO, b"", value=1, gas=21_000)
    assert info.value.tx_hash == sender.sent_hashes[0]
