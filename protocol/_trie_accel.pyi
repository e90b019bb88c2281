"""Types of the C accelerator of ``SumTrie.build`` (protocol/_trie_accel.c)."""

from collections.abc import Iterable

SHA256_IMPL: str

def build(
    items: Iterable[tuple[bytes, bytes, int] | tuple[bytes, bytes, int, int]],
    error: type[Exception],
    /,
) -> tuple[int, bytearray, bytes | None, bytes, bytes, bytearray, bytes, int, int, int]: ...
def sha256(data: bytes, portable: bool = False, /) -> bytes: ...
