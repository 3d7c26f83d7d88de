"""The uvicorn server with a drain before its graceful shutdown (see ``services/shared/drain.py``).

SIGTERM (what Kubernetes sends first) does not stop the server at once: the node turns unready
(``/readyz`` 503) and keeps serving for ``drain_s``, long enough for the endpoints, the router's DNS
polling and the ingest nodes' announcement fan-out to drop it. Then uvicorn's own graceful shutdown
runs: the listener closes, requests in flight finish (up to ``timeout_graceful_shutdown``), the
lifespan shutdown closes the store. A second SIGTERM, or SIGINT, skips what is left of the drain.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import uvicorn

from services.shared.drain import Drain

log = logging.getLogger("headwater")


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, *, drain: Drain, drain_s: float) -> None:
        super().__init__(config)
        self._drain = drain
        self._drain_s = drain_s

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self._drain_s > 0 and not self._drain.draining:
            self._drain.begin()
            log.info("SIGTERM: draining for %.1f s (/readyz answers 503), then shutting down", self._drain_s)
            timer = threading.Timer(self._drain_s, super().handle_exit, args=(sig, frame))
            timer.daemon = True
            timer.start()
            return
        super().handle_exit(sig, frame)
