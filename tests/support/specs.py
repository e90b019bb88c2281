"""Chain spec texts for the handler tests: the least a spec needs, then its overrides."""

from __future__ import annotations

__all__ = ["overrides_spec"]


def overrides_spec(rpc_type: str, network: str) -> str:
    """A minimal spec of ``rpc_type`` up to its ``[methods.overrides]`` table (append lines)."""
    head = f'service_id = "x"\nname = "x"\nrpc_type = "{rpc_type}"\nnetwork = "{network}"\n'
    return head + "finality_depth = 0\n[methods.overrides]\n"
