"""Amounts as operators read them: token base units as RLY, wei as ETH (exact, no floats)."""

from __future__ import annotations

__all__ = ["DECIMALS", "eth", "rly"]

DECIMALS = 18  # the RLY token's (Token.vy: decimals = 18), and ETH's


def _exact(amount: int) -> str:
    sign, amount = ("-", -amount) if amount < 0 else ("", amount)
    whole, frac = divmod(int(amount), 10**DECIMALS)
    return sign + f"{whole:,}" + (f".{frac:018d}".rstrip("0") if frac else "")


def rly(amount: int) -> str:
    """Token base units as ``1,234.5 RLY`` (exact)."""
    return f"{_exact(amount)} RLY"


def eth(wei: int) -> str:
    """Wei as ``0.0012 ETH`` (exact)."""
    return f"{_exact(wei)} ETH"
