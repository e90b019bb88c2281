"""Budget metering per (app, session) — DESIGN §3.6.

The relayer charges each relay its expected value, ``compute_units × cu_price`` (whatever the
mining difficulty), against ``budget(len(my_slots), stake(app, n), S, P)`` and refuses relays
past it with ``APP_OVER_BUDGET`` so the gateway moves to another supplier. A relay is charged
when it passes verification and refunded when it is not recorded (only recorded relays count)
— both through :class:`relayer.interfaces.SessionContext` (``reserve`` / ``release``); after a
restart the verifier restores the meter (:meth:`BudgetMeter.restore`) from what the session's
log holds, before the session's budget is first used.
"""

from __future__ import annotations

from protocol.errors import ErrorCode
from relayer.errors import RelayRefused
from relayer.relaylog import SessionKey

__all__ = ["BudgetMeter", "SessionBudget"]


class SessionBudget:
    """The running total of one (service, app, session) against its limit."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int, used: int = 0) -> None:
        self.limit = limit
        self.used = used

    def charge(self, cost: int) -> None:
        """Add ``cost``; refuse with ``APP_OVER_BUDGET`` (charging nothing) past the limit."""
        if self.used + cost > self.limit:
            raise RelayRefused(
                ErrorCode.APP_OVER_BUDGET,
                f"app budget for this session exhausted ({self.used}/{self.limit})",
            )
        self.used += cost

    def refund(self, cost: int) -> None:
        self.used -= cost

    @property
    def remaining(self) -> int:
        return self.limit - self.used


class BudgetMeter:
    """Every session's :class:`SessionBudget`, created on first use."""

    def __init__(self) -> None:
        self._budgets: dict[SessionKey, SessionBudget] = {}
        self._restored: dict[SessionKey, int] = {}

    def account(self, key: SessionKey, limit: int) -> SessionBudget:
        """The budget of ``key`` (``limit`` applies when it is first created)."""
        budget = self._budgets.get(key)
        if budget is None:
            budget = SessionBudget(limit, self._restored.pop(key, 0))
            self._budgets[key] = budget
        return budget

    def restore(self, key: SessionKey, used: int) -> None:
        """Start ``key`` at ``used`` (value already recorded in its log before a restart)."""
        budget = self._budgets.get(key)
        if budget is not None:
            budget.used = used
        else:
            self._restored[key] = used

    def used(self, key: SessionKey) -> int:
        budget = self._budgets.get(key)
        return budget.used if budget is not None else self._restored.get(key, 0)

    def forget(self, key: SessionKey) -> None:
        self._budgets.pop(key, None)
        self._restored.pop(key, None)
