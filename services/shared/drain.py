"""A node's graceful shutdown, the part that is state: once SIGTERM arrives the node is *draining*.

While draining, ``/readyz`` answers 503, so Kubernetes takes the pod out of its Services' endpoints
and out of the headless Services' DNS answers: the router drops it from its upstreams and the ingest
nodes from their announcement fan-out (both re-resolve every few seconds). Everything else is served
as before, blocking playlist reloads included, until the drain time is over; then the server closes
its listener, finishes the requests in flight and exits (``services.cli.serve`` owns that sequence).
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(slots=True)
class Drain:
    started_at: float | None = None  # time.monotonic() of the first SIGTERM

    def begin(self) -> None:
        if self.started_at is None:
            self.started_at = time.monotonic()

    @property
    def draining(self) -> bool:
        return self.started_at is not None
