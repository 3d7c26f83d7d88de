"""The Cassandra driver behind an asyncio face: connect, prepare, execute; driver errors translated.

The driver runs its own I/O threads (libev). ``execute`` starts a request with ``execute_async`` and
bridges the driver's callbacks into the event loop with ``call_soon_threadsafe``, so the loop never
blocks on Cassandra; paged results are fetched page by page in the driver's thread and handed over
whole. Only the blocking setup calls (``connect``, ``prepare``, ``shutdown``) run in a worker thread.

Errors: every exception that comes out of the driver is translated here, once, into the store's
error tree: ``StoreUnavailable`` when the cluster cannot take the request now (no host, not enough
replicas, timeouts, broken connections: the caller may retry later), ``StoreError`` for the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from cassandra import (
    ConsistencyLevel,
    OperationTimedOut,
    ProtocolVersion,
    ReadTimeout,
    Unavailable,
    WriteTimeout,
)
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.connection import ConnectionException
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    RoundRobinPolicy,
    TokenAwarePolicy,
)
from cassandra.query import dict_factory, tuple_factory

from services.shared.errors import StoreError, StoreUnavailable

T = TypeVar("T")
Row = tuple[Any, ...]

#: Execution profile for lightweight transactions: rows as dicts, to read ``[applied]`` by name.
LWT_PROFILE = "lwt"
#: Execution profile for schema changes: they wait for every node to agree, which takes a while.
DDL_PROFILE = "ddl"
DDL_TIMEOUT_S = 30.0

_UNAVAILABLE = (
    NoHostAvailable,
    Unavailable,
    WriteTimeout,
    ReadTimeout,
    OperationTimedOut,
    ConnectionException,
)


def translate(exc: BaseException) -> StoreError:
    """The store error for a driver exception (see the module docstring)."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailable(f"cassandra unavailable: {type(exc).__name__}: {exc}")
    return StoreError(f"cassandra error: {type(exc).__name__}: {exc}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CqlSettings:
    contact_points: tuple[str, ...]
    port: int = 9042
    consistency: str = "LOCAL_QUORUM"  # a ConsistencyLevel name
    request_timeout_s: float = 2.0
    connect_timeout_s: float = 5.0
    #: The data center to route to (multi-DC clusters); None: round robin over every node.
    local_dc: str | None = None


class Cql:
    """One driver ``Cluster`` and ``Session``; awaitable statements."""

    def __init__(self, settings: CqlSettings) -> None:
        if settings.consistency not in ConsistencyLevel.name_to_value:
            raise ValueError(f"unknown consistency level {settings.consistency!r}")
        self._settings = settings
        self._cluster: Any = None
        self._session: Session | None = None

    async def connect(self) -> None:
        cluster = _cluster(self._settings)
        try:
            session = await asyncio.to_thread(cluster.connect)
        except Exception as exc:
            await asyncio.to_thread(cluster.shutdown)
            raise translate(exc) from exc
        self._cluster, self._session = cluster, session

    async def close(self) -> None:
        cluster, self._cluster, self._session = self._cluster, None, None
        if cluster is not None:
            await asyncio.to_thread(cluster.shutdown)

    async def prepare(
        self, statements: Mapping[str, str], *, not_idempotent: Iterable[str] = ()
    ) -> dict[str, Any]:
        """Prepare every statement; all are marked idempotent (safe to retry) except those named."""
        session = self._live_session()
        keep_off = set(not_idempotent)

        def prepare_all() -> dict[str, Any]:
            prepared = {name: session.prepare(cql) for name, cql in statements.items()}
            for name, statement in prepared.items():
                statement.is_idempotent = name not in keep_off
            return prepared

        return await self._guard(asyncio.to_thread(prepare_all))

    async def execute(
        self, statement: Any, params: Sequence[object] = (), *, profile: object = EXEC_PROFILE_DEFAULT
    ) -> list[Any]:
        """Run one statement; every page of its result, as rows (tuples; dicts for ``LWT_PROFILE``)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Any]] = loop.create_future()
        session = self._live_session()
        try:
            response = session.execute_async(statement, params, execution_profile=profile)
        except Exception as exc:
            raise translate(exc) from exc
        _Pager(response, loop, done)
        return await self._guard(done)

    def _live_session(self) -> Session:
        if self._session is None:
            raise StoreUnavailable("cassandra store is not open")
        return self._session

    @staticmethod
    async def _guard(pending: Awaitable[T]) -> T:
        try:
            return await pending
        except StoreError:
            raise
        except Exception as exc:
            raise translate(exc) from exc


async def bounded_gather(calls: Iterable[Callable[[], Awaitable[T]]], *, limit: int) -> list[T]:
    """Run the calls with at most ``limit`` in flight; results in order; the first error wins."""
    gate = asyncio.Semaphore(limit)

    async def run(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    try:
        async with asyncio.TaskGroup() as group:  # a failure cancels the calls still running
            tasks = [group.create_task(run(call)) for call in calls]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


class _Pager:
    """Collects every page of one driver response, then settles ``done`` on the event loop."""

    __slots__ = ("_done", "_loop", "_response", "_rows")

    def __init__(
        self, response: Any, loop: asyncio.AbstractEventLoop, done: asyncio.Future[list[Any]]
    ) -> None:
        self._response, self._loop, self._done = response, loop, done
        self._rows: list[Any] = []
        response.add_callbacks(self._on_page, self._on_error)

    def _on_page(self, rows: Any) -> None:  # driver thread (or the loop, if already complete)
        try:
            if rows:
                self._rows.extend(rows)
            if self._response.has_more_pages:
                self._response.start_fetching_next_page()
                return
        except Exception as exc:
            self._settle(None, exc)
            return
        self._settle(self._rows, None)

    def _on_error(self, exc: BaseException) -> None:
        self._settle(None, exc)

    def _settle(self, rows: list[Any] | None, exc: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            self._loop.call_soon_threadsafe(_resolve, self._done, rows, exc)


def _resolve(done: asyncio.Future[list[Any]], rows: list[Any] | None, exc: BaseException | None) -> None:
    if done.done():  # the waiter was cancelled
        return
    if exc is not None:
        done.set_exception(exc)
    else:
        done.set_result(rows or [])


def _cluster(settings: CqlSettings) -> Any:
    """A driver Cluster configured so it logs no warnings: explicit load balancing and protocol V5."""
    profiles = {
        EXEC_PROFILE_DEFAULT: _profile(settings, tuple_factory),
        LWT_PROFILE: _profile(settings, dict_factory),
        DDL_PROFILE: _profile(
            settings, tuple_factory, timeout_s=max(DDL_TIMEOUT_S, settings.request_timeout_s)
        ),
    }
    return Cluster(
        contact_points=list(settings.contact_points),
        port=settings.port,
        protocol_version=ProtocolVersion.V5,
        execution_profiles=profiles,
        connect_timeout=settings.connect_timeout_s,
        # Media bytes do not compress: spare the CPU on both ends.
        compression=False,
        # Without TCP_NODELAY a request of some tens of KB waits for the peer's delayed ACK (Nagle):
        # 64 KiB inserts took 48 ms instead of 4 ms here.
        sockopts=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        # Back within seconds after a node restart, not the default's minutes of back-off.
        reconnection_policy=ExponentialReconnectionPolicy(base_delay=0.5, max_delay=5.0, max_attempts=None),
    )


def _profile(settings: CqlSettings, row_factory: Any, *, timeout_s: float | None = None) -> ExecutionProfile:
    if settings.local_dc is None:
        child: Any = RoundRobinPolicy()
    else:
        child = DCAwareRoundRobinPolicy(local_dc=settings.local_dc)
    return ExecutionProfile(
        # Token aware: each statement goes straight to a replica of its partition.
        load_balancing_policy=TokenAwarePolicy(child),
        consistency_level=ConsistencyLevel.name_to_value[settings.consistency],
        serial_consistency_level=ConsistencyLevel.LOCAL_SERIAL,
        request_timeout=settings.request_timeout_s if timeout_s is None else timeout_s,
        row_factory=row_factory,
    )
