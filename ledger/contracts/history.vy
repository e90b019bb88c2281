# pragma version ~=0.4.3
"""
@title history
@notice Values with history by session (DESIGN §3.2): records (from_session, value) in increasing
        from_session order, one storage slot each (from_session in the top 64 bits, the value in
        the low 192). A change made while session m is current writes from_session = m + 1 and
        overwrites an existing m + 1 record. Reads are O(1) for the latest record (the common
        case) and a bounded binary search otherwise, so gas does not grow with history.
"""

VALUE_BITS: constant(uint256) = 192
VALUE_MASK: constant(uint256) = 2**192 - 1
MAX_FROM: constant(uint256) = 2**64 - 1
SEARCH_STEPS: constant(uint256) = 64

records: HashMap[bytes32, HashMap[uint256, uint256]]
counts: HashMap[bytes32, uint256]


@internal
@view
def count(key: bytes32) -> uint256:
    return self.counts[key]


@internal
@view
def record(key: bytes32, i: uint256) -> (uint256, uint256):
    rec: uint256 = self.records[key][i]
    return rec >> VALUE_BITS, rec & VALUE_MASK


@internal
@view
def at(key: bytes32, n: uint256) -> (bool, uint256):
    """The value of the latest record with from_session <= n (found flag, value)."""
    c: uint256 = self.counts[key]
    if c == 0:
        return False, 0
    last: uint256 = self.records[key][c - 1]
    if last >> VALUE_BITS <= n:
        return True, last & VALUE_MASK
    first: uint256 = self.records[key][0]
    if first >> VALUE_BITS > n:
        return False, 0
    # invariant: from(lo) <= n < from(hi)
    lo: uint256 = 0
    hi: uint256 = c - 1
    for _: uint256 in range(SEARCH_STEPS):
        if hi - lo <= 1:
            break
        mid: uint256 = (lo + hi) // 2
        if self.records[key][mid] >> VALUE_BITS <= n:
            lo = mid
        else:
            hi = mid
    return True, self.records[key][lo] & VALUE_MASK


@internal
@view
def latest(key: bytes32) -> (bool, uint256, uint256):
    """(found, from_session, value) of the latest record."""
    c: uint256 = self.counts[key]
    if c == 0:
        return False, 0, 0
    rec: uint256 = self.records[key][c - 1]
    return True, rec >> VALUE_BITS, rec & VALUE_MASK


@internal
def write(key: bytes32, from_session: uint256, val: uint256):
    assert val <= VALUE_MASK, "history: value too large"
    assert from_session <= MAX_FROM, "history: session too large"
    rec: uint256 = (from_session << VALUE_BITS) | val
    c: uint256 = self.counts[key]
    if c > 0:
        last_from: uint256 = self.records[key][c - 1] >> VALUE_BITS
        if last_from == from_session:
            self.records[key][c - 1] = rec
            return
        assert last_from < from_session, "history: record older than the latest"
    self.records[key][c] = rec
    self.counts[key] = c + 1
