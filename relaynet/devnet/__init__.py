"""The devnet: a whole relaynet on one machine, started and stopped by one command.

Owns the orchestration behind ``relaynet devnet up/down/status``: the plan (services,
backends, accounts, ports — :mod:`~relaynet.devnet.plan`), the configs and keys it writes
(:mod:`~relaynet.devnet.configs`), the process supervisor with pid files
(:mod:`~relaynet.devnet.supervisor`), the step sequence (:mod:`~relaynet.devnet.up`), stopping
from any shell (:mod:`~relaynet.devnet.down`), ``state.json`` (:mod:`~relaynet.devnet.state`),
and status with a settlement progress display (:mod:`~relaynet.devnet.status`). The servers
themselves come from ``relayer/``, ``gateway/``, ``ledger/`` and ``rollups/``.
"""

from relaynet.devnet.down import stop_devnet
from relaynet.devnet.state import DEFAULT_STATE_FILE, DevnetError, DevnetState, Layout
from relaynet.devnet.up import Devnet, run_devnet, start_devnet

__all__ = [
    "DEFAULT_STATE_FILE",
    "Devnet",
    "DevnetError",
    "DevnetState",
    "Layout",
    "run_devnet",
    "start_devnet",
    "stop_devnet",
]
