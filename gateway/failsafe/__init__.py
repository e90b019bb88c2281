"""Failure handling state machines: circuit breaker, hedging delay, retry decisions.

Each owns only its state machine; the router classifies outcomes and reports them.
"""

from gateway.failsafe.breaker import Breaker, BreakerState
from gateway.failsafe.hedge import Hedger
from gateway.failsafe.retry import Outcome, RetryState, backoff

__all__ = ["Breaker", "BreakerState", "Hedger", "Outcome", "RetryState", "backoff"]
