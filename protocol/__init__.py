"""relaynet's shared language — pure, I/O-free, typed.

Owns: keys (as bytes), the relay header and its EIP-712 digest, request signing and
recovery, receipts, leaves and relay keys, mining, the Merkle sum trie and its weighted
proofs, settlement arithmetic (budgets, value, shares, slash), and the relay error-code
table (DESIGN §3). Imports nothing else of the project.
"""

__all__ = ["encoding", "errors", "keys", "payload", "relay", "settlement", "trie"]
