"""The celestia-node JSON-RPC methods (72 on current main): permission, class, cache rule.

Permissions are celestia-node's own (``perm:"…"`` tags; cumulative public ⊂ read ⊂ write ⊂
admin). The relayer's node token decides what a node answers; this table decides what relaynet
relays at all:

* ``read`` methods are reads; ``header.WaitForHeight``, ``header.SyncWait`` and
  ``das.WaitCatchUp`` are long polls (own timeout, never hedged); ``header.Subscribe`` and
  ``blob.Subscribe`` are subscriptions (WebSocket, sticky);
* ``write`` methods (``blob.Submit``, the ``state.*`` writes) spend the node operator's wallet:
  writes, refused unless the operator allows writes, never retried or hedged;
* ``admin`` methods (``node.Info`` …, every ``p2p.*``) are always denied;
* the ``da.*`` module was removed from celestia-node: its methods are unknown ("method not
  found"), like any other name not listed here.

``arg`` is the position of the height argument (cache by finality), ``None`` when there is none.
The 22 ``p2p.*`` names: the 18 of celestia-node's ``p2p.Module`` as the public clients list them
plus ``PubSubTopics``, ``Ping``, ``ConnectionState`` and ``ConnectionInfo`` (added later; the
exact set of these last ones is our best knowledge — every ``p2p.*`` name is denied anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rollups.methods import CacheRule, MethodClass, MethodInfo

__all__ = [
    "ADMIN_PREFIXES",
    "METHODS",
    "P2P_METHODS",
    "REMOVED_MODULES",
    "TABLE",
    "NodeMethod",
    "Permission",
]


class Permission(StrEnum):
    """celestia-node's permission levels, cumulative in this order."""

    PUBLIC = "public"
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: Permission) -> bool:
        return self.rank >= needed.rank

    def granted(self) -> tuple[Permission, ...]:
        """Every level this one includes (what a token of this level lists in ``Allow``)."""
        return tuple(p for p in Permission if p.rank <= self.rank)


_RANK = {Permission.PUBLIC: 0, Permission.READ: 1, Permission.WRITE: 2, Permission.ADMIN: 3}


@dataclass(frozen=True, slots=True)
class NodeMethod:
    """One celestia-node method: its name, the permission a node token needs, and how relaynet
    treats it (``info``, the one method-table shape of :mod:`rollups.methods`)."""

    name: str
    permission: Permission
    info: MethodInfo


def _m(
    name: str,
    permission: Permission,
    cls: MethodClass,
    cache: CacheRule = CacheRule.NEVER,
    arg: int | None = None,
) -> NodeMethod:
    reason = "admin method" if cls is MethodClass.DENIED else ""
    return NodeMethod(name, permission, MethodInfo(cls, cache, arg, reason))


_R, _W, _L, _S, _D = (
    MethodClass.READ,
    MethodClass.WRITE,
    MethodClass.LONG_POLL,
    MethodClass.SUBSCRIPTION,
    MethodClass.DENIED,
)
_READ, _WRITE, _ADMIN = Permission.READ, Permission.WRITE, Permission.ADMIN
_H, _F, _HD = CacheRule.BLOCK, CacheRule.FINAL, CacheRule.HEAD

P2P_METHODS: tuple[str, ...] = tuple(
    "p2p." + name
    for name in (
        "Info",
        "Peers",
        "PeerInfo",
        "Connect",
        "ClosePeer",
        "Connectedness",
        "NATStatus",
        "BlockPeer",
        "UnblockPeer",
        "ListBlockedPeers",
        "Protect",
        "Unprotect",
        "IsProtected",
        "BandwidthStats",
        "BandwidthForPeer",
        "BandwidthForProtocol",
        "ResourceState",
        "PubSubPeers",
        "PubSubTopics",
        "Ping",
        "ConnectionState",
        "ConnectionInfo",
    )
)

_TABLE: tuple[NodeMethod, ...] = (
    # header (read)
    _m("header.LocalHead", _READ, _R, _HD),
    _m("header.GetByHash", _READ, _R, _F),
    _m("header.GetByHeight", _READ, _R, _H, 0),
    _m("header.GetRangeByHeight", _READ, _R, _H, 1),
    _m("header.WaitForHeight", _READ, _L),
    _m("header.SyncState", _READ, _R),
    _m("header.SyncWait", _READ, _L),
    _m("header.NetworkHead", _READ, _R, _HD),
    _m("header.Tail", _READ, _R, _HD),
    _m("header.Subscribe", _READ, _S),
    # blob
    _m("blob.Submit", _WRITE, _W),
    _m("blob.Get", _READ, _R, _H, 0),
    _m("blob.GetAll", _READ, _R, _H, 0),
    _m("blob.GetProof", _READ, _R, _H, 0),
    _m("blob.Included", _READ, _R, _H, 0),
    _m("blob.GetCommitmentProof", _READ, _R, _H, 0),
    _m("blob.Subscribe", _READ, _S),
    # share (read)
    _m("share.SharesAvailable", _READ, _R),
    _m("share.GetShare", _READ, _R, _H, 0),
    _m("share.GetSamples", _READ, _R),
    _m("share.GetEDS", _READ, _R, _H, 0),
    _m("share.GetRow", _READ, _R, _H, 0),
    _m("share.GetNamespaceData", _READ, _R, _H, 0),
    _m("share.GetRange", _READ, _R, _H, 0),
    # state: reads
    _m("state.AccountAddress", _READ, _R),
    _m("state.Balance", _READ, _R, _HD),
    _m("state.BalanceForAddress", _READ, _R, _HD),
    _m("state.QueryDelegation", _READ, _R, _HD),
    _m("state.QueryDelegationRewards", _READ, _R, _HD),
    _m("state.QueryUnbonding", _READ, _R, _HD),
    _m("state.QueryRedelegations", _READ, _R, _HD),
    # state: writes (the node operator's wallet)
    _m("state.Transfer", _WRITE, _W),
    _m("state.SubmitPayForBlob", _WRITE, _W),
    _m("state.Delegate", _WRITE, _W),
    _m("state.Undelegate", _WRITE, _W),
    _m("state.BeginRedelegate", _WRITE, _W),
    _m("state.CancelUnbondingDelegation", _WRITE, _W),
    _m("state.WithdrawDelegatorReward", _WRITE, _W),
    _m("state.GrantFee", _WRITE, _W),
    _m("state.RevokeGrantFee", _WRITE, _W),
    # das, blobstream (read)
    _m("das.SamplingStats", _READ, _R),
    _m("das.WaitCatchUp", _READ, _L),
    _m("blobstream.GetDataRootTupleRoot", _READ, _R, _H, 1),
    _m("blobstream.GetDataRootTupleInclusionProof", _READ, _R, _H, 2),
    # node
    _m("node.Ready", _READ, _R),
    _m("node.Info", _ADMIN, _D),
    _m("node.LogLevelSet", _ADMIN, _D),
    _m("node.AuthVerify", _ADMIN, _D),
    _m("node.AuthNew", _ADMIN, _D),
    _m("node.AuthNewWithExpiry", _ADMIN, _D),
    *(_m(name, _ADMIN, _D) for name in P2P_METHODS),
)

#: Every method of celestia-node by name (72).
METHODS: dict[str, NodeMethod] = {m.name: m for m in _TABLE}

#: The handler's method table.
TABLE: dict[str, MethodInfo] = {m.name: m.info for m in _TABLE}

#: Prefixes that are node administration: denied whatever the name after them.
ADMIN_PREFIXES: tuple[str, ...] = ("p2p.",)

#: Modules celestia-node no longer has: "method not found", and no spec may add them.
REMOVED_MODULES: tuple[str, ...] = ("da.",)
