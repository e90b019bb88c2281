"""Session arithmetic — pure functions over a registry snapshot.

Owns: heights and windows, the seed, positions with history (reading and writing them),
slots, and session hydration over a :class:`RegistrySnapshot` that ``ledger/`` implements
(DESIGN §3.2). Does no network I/O.
"""
