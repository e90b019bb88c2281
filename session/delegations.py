"""Gateway stake records, delegations and ``signer_ok`` (DESIGN §3.2).

Each gateway has an epoch counter, 0 before its first stake; staking while unstaked increments
it (a top-up does not). Staking or unstaking while session ``m`` is current writes the gateway's
record ``(from_session = m + 1, staked, epoch)``, never erased. Delegating in ``m`` to a gateway
whose latest record is staked writes the app's record ``(m + 1, active, epoch)`` with that
record's epoch; undelegating writes ``(m + 1, inactive, 0)``. Then::

    signer_ok(app, g, n) = g == app
                           or (delegation(app, g, n).active and staked(g, n)
                               and epoch(g, n) == delegation(app, g, n).epoch)

so a gateway that unstakes stops spending its apps' budgets from the next session, and an old
delegation never revives when the same key stakes again:

>>> app, gw = b"\\x0a" * 20, b"\\x0b" * 20
>>> book = DelegationBook()
>>> book.stake_gateway(gw, current_session=0), book.delegate(app, gw, current_session=0)
(1, 1)
>>> book.unstake_gateway(gw, current_session=2)
>>> book.stake_gateway(gw, current_session=5)
2
>>> [book.signer_ok(app, gw, n) for n in (0, 1, 2, 3, 6)], book.signer_ok(app, app, 0)
([False, True, True, False, False], True)

The follower fills a book from the contracts' events (``GatewayStakeSet``, ``Delegated``,
``Undelegated``) with :meth:`set_gateway_stake` and :meth:`set_delegation`; the contract rules
(:meth:`stake_gateway`, :meth:`delegate`, …) are for tests and the known answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from session.errors import InvalidSessionInput
from session.history import History

__all__ = ["DelegationBook", "DelegationRecord", "GatewayStake"]

Address = bytes


@dataclass(frozen=True, slots=True)
class GatewayStake:
    """A gateway's stake record: whether it is staked, and under which epoch."""

    staked: bool
    epoch: int


@dataclass(frozen=True, slots=True)
class DelegationRecord:
    """An app's delegation record for one gateway: active, and the gateway's epoch then."""

    active: bool
    epoch: int


class DelegationBook:
    """Gateway stake records and delegation records with history, and ``signer_ok``."""

    __slots__ = ("_delegations", "_gateways", "_gateways_of")

    def __init__(self) -> None:
        self._gateways: dict[Address, History[GatewayStake]] = {}
        self._delegations: dict[tuple[Address, Address], History[DelegationRecord]] = {}
        self._gateways_of: dict[Address, list[Address]] = {}

    # -- reads ---------------------------------------------------------------------------------

    def gateway_stake(self, gateway: Address, n: int) -> GatewayStake:
        """``(staked(g, n), epoch(g, n))``; a gateway never staked is ``(False, 0)``."""
        history = self._gateways.get(gateway)
        record = None if history is None else history.at(n)
        return GatewayStake(False, 0) if record is None else record

    def delegation(self, app: Address, gateway: Address, n: int) -> DelegationRecord:
        """The app's delegation record for ``gateway`` in session ``n`` (inactive if none)."""
        history = self._delegations.get((app, gateway))
        record = None if history is None else history.at(n)
        return DelegationRecord(False, 0) if record is None else record

    def signer_ok(self, app: Address, signer: Address, n: int) -> bool:
        """Whether ``signer`` may sign relays of ``app`` in session ``n`` (see the module)."""
        if signer == app:
            return True
        d = self.delegation(app, signer, n)
        if not d.active:
            return False
        g = self.gateway_stake(signer, n)
        return g.staked and g.epoch == d.epoch

    def gateways_of(self, app: Address) -> list[Address]:
        """Every gateway ``app`` ever delegated to, in the order first delegated."""
        return list(self._gateways_of.get(app, ()))

    def gateway_records(self, gateway: Address) -> list[tuple[int, GatewayStake]]:
        history = self._gateways.get(gateway)
        return [] if history is None else history.records()

    # -- event writers -------------------------------------------------------------------------

    def set_gateway_stake(
        self, gateway: Address, from_session: int, staked: bool, epoch: int
    ) -> None:
        """Apply ``GatewayStakeSet(gateway, staked, epoch, from_session)``."""
        self._gateways.setdefault(_address(gateway), History()).set(
            from_session, GatewayStake(staked, epoch)
        )

    def set_delegation(
        self, app: Address, gateway: Address, from_session: int, active: bool, epoch: int
    ) -> None:
        """Apply ``Delegated(app, gateway, epoch, from_session)`` (active) or
        ``Undelegated(app, gateway, from_session)`` (inactive, epoch 0)."""
        key = (_address(app), _address(gateway))
        history = self._delegations.get(key)
        if history is None:
            history = self._delegations[key] = History()
            self._gateways_of.setdefault(app, []).append(gateway)
        history.set(from_session, DelegationRecord(active, epoch if active else 0))

    # -- contract rules ------------------------------------------------------------------------

    def _latest(self, gateway: Address) -> GatewayStake:
        history = self._gateways.get(gateway)
        record = None if history is None else history.latest()
        return GatewayStake(False, 0) if record is None else record

    def stake_gateway(self, gateway: Address, current_session: int) -> int:
        """The gateway stakes while ``current_session`` is current; returns its new epoch."""
        latest = self._latest(gateway)
        if latest.staked:
            raise InvalidSessionInput("gateway: already staked")
        self.set_gateway_stake(gateway, current_session + 1, True, latest.epoch + 1)
        return latest.epoch + 1

    def unstake_gateway(self, gateway: Address, current_session: int) -> None:
        latest = self._latest(gateway)
        if not latest.staked:
            raise InvalidSessionInput("gateway: not staked")
        self.set_gateway_stake(gateway, current_session + 1, False, latest.epoch)

    def delegate(self, app: Address, gateway: Address, current_session: int) -> int:
        """Delegate from the next session under the gateway's latest epoch; returns it."""
        latest = self._latest(gateway)
        if not latest.staked:
            raise InvalidSessionInput("delegation: gateway not staked")
        self.set_delegation(app, gateway, current_session + 1, True, latest.epoch)
        return latest.epoch

    def undelegate(self, app: Address, gateway: Address, current_session: int) -> None:
        self.set_delegation(app, gateway, current_session + 1, False, 0)


def _address(value: bytes) -> bytes:
    if not isinstance(value, bytes) or len(value) != 20:
        raise InvalidSessionInput("an address is 20 bytes")
    return value
