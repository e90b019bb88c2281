"""Verifying a gateway's answer against the chain (DESIGN §4; README, "Verifying an answer").

Owns: splitting an exchange (request, answer, ``Relay-*`` headers) into the relayed answers it
holds, reading the settlement chain with plain ``eth_call``s, and the verification algorithm —
request digest under session n's domain, signature, ``signer_ok``, compute units, ``max_index``,
``response_hash``, the receipt under the supplier's key at n, and the supplier's slot in n.
Imports only ``protocol/`` and ``session/`` (and the standard library), so it can ship alone.
"""

from verify.chain import ChainReader, ChainRevert, ServiceLimits, UrllibTransport
from verify.errors import ChainError, CheckFailed, ExchangeError, VerifyError
from verify.exchange import AnswerObject, Exchange, Leg, answer_objects, array_segments
from verify.verifier import CHECKS, LegResult, Proven, Report, verify_exchange, verify_leg

__all__ = [
    "CHECKS",
    "AnswerObject",
    "ChainError",
    "ChainReader",
    "ChainRevert",
    "CheckFailed",
    "Exchange",
    "ExchangeError",
    "Leg",
    "LegResult",
    "Proven",
    "Report",
    "ServiceLimits",
    "UrllibTransport",
    "VerifyError",
    "answer_objects",
    "array_segments",
    "verify_exchange",
    "verify_leg",
]
