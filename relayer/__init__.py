"""The node runner's server (to be built, issue "Relayer").

Will own: verifying relays, forwarding to the backend, signing receipts, recording every
relay durably, building tries, submitting claims and proofs, settling.
"""
