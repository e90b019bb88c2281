"""Health probes of session suppliers: height, chain id, syncing — feeding selection.

Every ``probe_interval`` the prober relays the ``rollups/`` handler's probe requests to each
supplier of the sessions in use (and of the next ones, hydrated ahead of rollover), then reads
them with the handler: a wrong chain trips the supplier's breaker; heights feed the median-lag
rule. Replicas publish what they learnt to the shared store so that all of them agree.
"""

from __future__ import annotations

import asyncio

import orjson

from gateway.metrics import GatewayMetrics
from gateway.relay_client import RelayClient, RelayError, Target
from gateway.selection import Qos
from gateway.services import ServiceTable
from gateway.sessions import SessionBook
from gateway.store.base import Store, StoreUnavailable
from rollups.errors import RequestError
from rollups.handler import HealthStatus, ProbeAnswer

__all__ = ["Prober"]


class Prober:
    def __init__(
        self,
        *,
        sessions: SessionBook,
        services: ServiceTable,
        client: RelayClient,
        qos: Qos,
        store: Store,
        metrics: GatewayMetrics,
        interval: float,
        timeout: float,
    ) -> None:
        self.sessions = sessions
        self.services = services
        self.client = client
        self.qos = qos
        self.store = store
        self.metrics = metrics
        self.interval = interval
        self.timeout = timeout
        self._probed: set[tuple[str, bytes, int]] = set()
        self._in_use: set[tuple[str, str]] = set()  # (service, 0xsupplier) of the last round

    async def probe(self, target: Target) -> None:
        """Probe one supplier once (every probe request of its service's handler)."""
        svc = self.services.get(target.service_id)
        answers: dict[str, ProbeAnswer | None] = {}
        for req in svc.handler.probe_requests(svc.spec):
            if req.http_method != "POST" or req.path:
                continue
            try:
                call = svc.handler.parse_relay(req.body)
                cu = svc.handler.compute_units(svc.spec, call)
                ans = await self.client.relay(target, req.body, cu, attempt_timeout=self.timeout)
            except RelayError as exc:
                if exc.refused:
                    self.qos.refuse(target.service_id, target.supplier, exc.message)
                answers[req.name] = None
                continue
            except RequestError:
                continue
            answers[req.name] = ProbeAnswer(ans.status, ans.body)
        health = svc.handler.read_health(svc.spec, answers)
        sid, sup = target.service_id, target.supplier
        if health.status is HealthStatus.WRONG_CHAIN:
            self.qos.observe_chain(sid, sup, False)
        elif health.chain_id is not None:
            self.qos.observe_chain(sid, sup, True)
        if health.status is HealthStatus.UNREACHABLE:
            self.qos.record_failure(sid, sup)
        if health.height is not None:
            self.qos.observe_height(sid, sup, health.height)
            self.metrics.supplier_height.labels(sid, "0x" + sup.hex()).set(health.height)

    async def round(self) -> None:
        """Probe the suppliers of every session in use and of the next ones."""
        views = self.sessions.upcoming()
        targets: dict[tuple[str, bytes], Target] = {}
        for view in views:
            for t in view.targets:
                targets.setdefault((t.service_id, t.supplier), t)
        if targets:
            await asyncio.gather(*(self.probe(t) for t in targets.values()))
        in_use = {(sid, "0x" + sup.hex()) for sid, sup in targets}
        for sid, supplier in self._in_use - in_use:  # left every session in use
            self.metrics.forget_supplier(sid, supplier)
        self._in_use = in_use
        await self._share({sid for sid, _ in targets})

    async def _share(self, service_ids: set[str]) -> None:
        """Publish our heights and read the other replicas' (max wins)."""
        try:
            for (sid, sup), st in list(self.qos.all_stats().items()):
                if sid in service_ids and st.height is not None:
                    await self.store.qos_publish(
                        f"h:{sid}", sup.hex(), orjson.dumps(st.height), self.interval * 5
                    )
            for sid in service_ids:
                for member, raw in (await self.store.qos_read(f"h:{sid}")).items():
                    height = orjson.loads(raw)
                    if isinstance(height, int):
                        self.qos.observe_height(sid, bytes.fromhex(member), height)
        except (StoreUnavailable, ValueError, orjson.JSONDecodeError):
            return

    async def run(self) -> None:
        while True:
            await self.round()
            await asyncio.sleep(self.interval)
