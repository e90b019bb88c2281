"""Everything chain-specific: chain specs and one handler per RPC type.

Owns: method classes, compute units per method, cache policy, health probe, height and
identity extraction, response checks and header policy, and the chain catalogue. The
gateway and the relayer dispatch to it and never know chains themselves.
"""
