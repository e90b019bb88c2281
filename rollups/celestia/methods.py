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

from rollups.handler import MethodClass

__all__ = [
    "ADMIN_PREFIXES",
    "METHODS",
    "P2P_METHODS",
    "REMOVED_MODULES",
    "CacheRule",
    "MethodInfo",
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


class CacheRule(StrEnum):
    NEVER = "never"
    HEIGHT = "height"  # about the block at the height argument: final once finalized
    FINAL = "final"  # addressed by hash: final once found
    HEAD = "head"  # about the node's head: head_ttl at most


@dataclass(frozen=True, slots=True)
class MethodInfo:
    name: str
    permission: Permission
    method_class: MethodClass
    cache: CacheRule = CacheRule.NEVER
    arg: int | None = None


_R, _W, _L, _S, _D = (
    MethodClass.READ,
    MethodClass.WRITE,
    MethodClass.LONG_POLL,
    MethodClass.SUBSCRIPTION,
    MethodClass.DENIED,
)
_READ, _WRITE, _ADMIN = Permission.READ, Permission.WRITE, Permission.ADMIN
_H, _F, _HD = CacheRule.HEIGHT, CacheRule.FINAL, CacheRule.HEAD

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

_TABLE: tuple[MethodInfo, ...] = (
    # header (read)
    MethodInfo("header.LocalHead", _READ, _R, _HD),
    MethodInfo("header.GetByHash", _READ, _R, _F),
    MethodInfo("header.GetByHeight", _READ, _R, _H, 0),
    MethodInfo("header.GetRangeByHeight", _READ, _R, _H, 1),
    MethodInfo("header.WaitForHeight", _READ, _L),
    MethodInfo("header.SyncState", _READ, _R),
    MethodInfo("header.SyncWait", _READ, _L),
    MethodInfo("header.NetworkHead", _READ, _R, _HD),
    MethodInfo("header.Tail", _READ, _R, _HD),
    MethodInfo("header.Subscribe", _READ, _S),
    # blob
    MethodInfo("blob.Submit", _WRITE, _W),
    MethodInfo("blob.Get", _READ, _R, _H, 0),
    MethodInfo("blob.GetAll", _READ, _R, _H, 0),
    MethodInfo("blob.GetProof", _READ, _R, _H, 0),
    MethodInfo("blob.Included", _READ, _R, _H, 0),
    MethodInfo("blob.GetCommitmentProof", _READ, _R, _H, 0),
    MethodInfo("blob.Subscribe", _READ, _S),
    # share (read)
    MethodInfo("share.SharesAvailable", _READ, _R),
    MethodInfo("share.GetShare", _READ, _R, _H, 0),
    MethodInfo("share.GetSamples", _READ, _R),
    MethodInfo("share.GetEDS", _READ, _R, _H, 0),
    MethodInfo("share.GetRow", _READ, _R, _H, 0),
    MethodInfo("share.GetNamespaceData", _READ, _R, _H, 0),
    MethodInfo("share.GetRange", _READ, _R, _H, 0),
    # state: reads
    MethodInfo("state.AccountAddress", _READ, _R),
    MethodInfo("state.Balance", _READ, _R, _HD),
    MethodInfo("state.BalanceForAddress", _READ, _R, _HD),
    MethodInfo("state.QueryDelegation", _READ, _R, _HD),
    MethodInfo("state.QueryDelegationRewards", _READ, _R, _HD),
    MethodInfo("state.QueryUnbonding", _READ, _R, _HD),
    MethodInfo("state.QueryRedelegations", _READ, _R, _HD),
    # state: writes (the node operator's wallet)
    MethodInfo("state.Transfer", _WRITE, _W),
    MethodInfo("state.SubmitPayForBlob", _WRITE, _W),
    MethodInfo("state.Delegate", _WRITE, _W),
    MethodInfo("state.Undelegate", _WRITE, _W),
    MethodInfo("state.BeginRedelegate", _WRITE, _W),
    MethodInfo("state.CancelUnbondingDelegation", _WRITE, _W),
    MethodInfo("state.WithdrawDelegatorReward", _WRITE, _W),
    MethodInfo("state.GrantFee", _WRITE, _W),
    MethodInfo("state.RevokeGrantFee", _WRITE, _W),
    # das, blobstream (read)
    MethodInfo("das.SamplingStats", _READ, _R),
    MethodInfo("das.WaitCatchUp", _READ, _L),
    MethodInfo("blobstream.GetDataRootTupleRoot", _READ, _R, _H, 1),
    MethodInfo("blobstream.GetDataRootTupleInclusionProof", _READ, _R, _H, 2),
    # node
    MethodInfo("node.Ready", _READ, _R),
    MethodInfo("node.Info", _ADMIN, _D),
    MethodInfo("node.LogLevelSet", _ADMIN, _D),
    MethodInfo("node.AuthVerify", _ADMIN, _D),
    MethodInfo("node.AuthNew", _ADMIN, _D),
    MethodInfo("node.AuthNewWithExpiry", _ADMIN, _D),
    *(MethodInfo(name, _ADMIN, _D) for name in P2P_METHODS),
)

#: Every method of celestia-node by name (72).
METHODS: dict[str, MethodInfo] = {m.name: m for m in _TABLE}

#: Prefixes that are node administration: denied whatever the name after them.
ADMIN_PREFIXES: tuple[str, ...] = ("p2p.",)

#: Modules celestia-node no longer has: "method not found", and no spec may add them.
REMOVED_MODULES: tuple[str, ...] = ("da.",)
