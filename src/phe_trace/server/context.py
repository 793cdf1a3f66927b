"""Everything a running key server holds: settings, clock, database, keys, store, metrics.

Built by :meth:`ServerContext.open` from settings — never at import time. The app, the
export worker and the CLI share one context per process; the city simulator builds one
with its own clock.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from phe_trace.clock import UnixClock, system_clock
from phe_trace.storage import init_lock

from .authorities import HealthAuthorityDirectory
from .chaff import LatencyTracker
from .exportstore import DirectoryExportStore, ExportStore
from .metrics import ServerMetrics
from .revision import RevisionKeyRing
from .settings import ServerSettings
from .signing import ensure_signing_key, load_signing_keys
from .storage import create_engine_for, migrate
from .storage.database import WalCheckpointer
from .storage.queries import count_exposures
from .validation import PublishRules

__all__ = [
    "PUBLISH_THREADS_POSTGRESQL",
    "Clock",
    "ServerContext",
    "open_export_store",
    "system_clock",
]

#: A clock returns the current unix time in seconds (:data:`phe_trace.clock.UnixClock`).
Clock = UnixClock


#: Publishes checked and stored at once on PostgreSQL (SQLite: one, it has one writer).
PUBLISH_THREADS_POSTGRESQL = 8


def _publish_executor(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="publish")


def open_export_store(settings: ServerSettings) -> ExportStore:
    """The S3 store when a bucket is configured, else the directory store (PUB-36)."""
    if settings.export_s3_bucket:
        from .exportstore_s3 import S3ExportStore  # boto3 only where it is used

        return S3ExportStore.from_settings(settings)
    return DirectoryExportStore(settings.effective_export_dir)


@dataclass
class ServerContext:
    """The key server's process-wide state."""

    settings: ServerSettings
    engine: Engine
    clock: Clock
    directory: HealthAuthorityDirectory
    revision: RevisionKeyRing
    store: ExportStore
    metrics: ServerMetrics
    rules: PublishRules
    latency: LatencyTracker
    write_lock: contextlib.AbstractContextManager[object] = field(
        default_factory=contextlib.nullcontext
    )
    #: Where publishes are checked and stored, first come first served: a few threads
    #: rather than one per waiting request, so that queued requests do not contend for
    #: the interpreter lock and the database, and wait in arrival order.
    publish_executor: Executor = field(default_factory=lambda: _publish_executor(1))
    #: SQLite only: checkpoints the WAL in the background, off the publish path.
    checkpointer: WalCheckpointer | None = None

    @classmethod
    def open(
        cls,
        settings: ServerSettings,
        *,
        clock: Clock | None = None,
        store: ExportStore | None = None,
        engine: Engine | None = None,
    ) -> ServerContext:
        """Create directories, migrate the database, create missing keys (idempotent)."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = engine or create_engine_for(settings.effective_database_url)
        with init_lock(engine):  # several workers may start at once
            migrate(engine)
            ensure_signing_key(settings.signing_key_dir)
        # A damaged or unreadable key stops the start here, with one line (PUB-36).
        load_signing_keys(settings.signing_key_dir, settings.signing_key_id)
        revision = RevisionKeyRing.from_settings_or_file(
            settings.revision_token_keys,
            settings.data_dir / "revision-token.keys",
            settings.revision_token_aad,
        )

        def stored() -> float:
            with engine.connect() as conn:
                return float(count_exposures(conn))

        sqlite = engine.dialect.name == "sqlite"
        checkpointer = WalCheckpointer(engine) if sqlite else None
        if checkpointer is not None:
            checkpointer.start()
        return cls(
            settings=settings,
            engine=engine,
            clock=clock or system_clock,
            directory=HealthAuthorityDirectory(
                engine, jwks_cache_seconds=settings.jwks_cache_seconds
            ),
            revision=revision,
            store=store or open_export_store(settings),
            metrics=ServerMetrics(keys_stored=stored),
            rules=PublishRules.from_settings(settings),
            latency=LatencyTracker(),
            # SQLite has one writer at a time: queue writers here instead of in SQLite's
            # busy handler, which sleeps in steps of up to 100 ms.
            write_lock=threading.Lock() if sqlite else contextlib.nullcontext(),
            publish_executor=_publish_executor(1 if sqlite else PUBLISH_THREADS_POSTGRESQL),
            checkpointer=checkpointer,
        )

    def now(self) -> float:
        """The context's current time (unix seconds)."""
        return self.clock()

    def close(self) -> None:
        """Stop the publish and checkpoint threads and release database connections."""
        self.publish_executor.shutdown(wait=True)
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.engine.dispose()
