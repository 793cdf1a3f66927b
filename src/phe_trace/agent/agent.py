"""The device agent: keys, rotation, scanning, the encrypted store, sync and report.

``protocol_spec/SPEC.md`` §14. Everything is driven by the ``now`` it is given (unix
seconds), so tests and the simulator run days in seconds.

In-process step API (what the simulator and tests use; all synchronous)::

    agent = Agent.open(config, radio=radio, now=t0)   # purges on start (AGENT-9)
    agent.tick(now)          # new day's key, rotation, ingest of queued sightings, purge
    agent.ingest(sightings)  # store radio sightings (the path real scan windows take)
    agent.sync(now, client=httpx.Client(...))   # download, verify, match, score, notify
    agent.report(code, now, client=...)         # verify → certificate → publish 14 keys
    agent.revise(code, now, client=...)         # re-publish with the kept revision token
    agent.status(now)        # risk level, last exposure day, last check
    agent.close()

``AgentConfig(data_dir=None)`` keeps the store in memory (sealed all the same under a
key that lives only in the process). ``client`` may be any ``httpx.Client`` — e.g. one
with an in-process transport; the URLs come from ``config.key_server_url``,
``config.export_base_url`` and ``config.verification_url``. Without a client the agent
makes its own.

``tick`` talks to a radio only if it has the synchronous in-process methods of
:class:`~phe_trace.agent.radio.sim.SimRadio` (``set_payload``/``drain``). For real
radios the asynchronous :meth:`Agent.step` (one tick plus the radio calls it implies)
and :meth:`Agent.run` (the daemon loop on the wall clock) drive the radio.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phe_trace.crypto import Metadata, new_temporary_exposure_key
from phe_trace.errors import PheTraceError
from phe_trace.protocol.advertisement import SERVICE_DATA_LENGTH

from .config import ENV_PREFIX, AgentConfig
from .errors import RadioError, StoreCorruptError
from .radio.base import Radio, RadioSighting
from .records import SightingRecord, StoredKey
from .retention import Cutoff, utc_day, warning_items
from .schedule import ActiveKey, RotationPlan, ScanPlan, tek_day
from .state import Matches, StepState, SyncState, WarningItem, Warnings
from .store import AgentStore

if TYPE_CHECKING:
    import httpx

    from phe_trace.exposure import ExposureConfig

    from .report import ReportResult
    from .sync import SyncResult

__all__ = ["Agent", "TickResult"]

log = logging.getLogger("phe_trace.agent")

_TEK_PERIOD = 144


@dataclass(slots=True)
class TickResult:
    """What one :meth:`Agent.tick` did."""

    payload: bytes
    rotated: bool
    scan_due: bool
    ingested: int = 0
    purged: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class Agent:
    """One device's agent. Build with :meth:`open`."""

    def __init__(
        self,
        config: AgentConfig,
        store: AgentStore,
        radio: Radio | None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.radio = radio
        self._rng = rng or random.SystemRandom()
        self._metadata = Metadata(tx_power_dbm=config.tx_power_dbm)
        self._rotation = RotationPlan(config.rotation_min_s, config.rotation_max_s, self._rng)
        self._scan = ScanPlan(config.scan_period_s, config.scan_jitter_s, self._rng)
        self._key: ActiveKey | None = None
        self._payload: bytes | None = None
        self._last_now: float | None = store.load(StepState).last_now
        self._purge_day: int | None = None
        self.warnings: list[str] = []
        self._exposure_config: ExposureConfig | None = None

    @property
    def rng(self) -> random.Random:
        """The agent's randomness (rotation, scan jitter, report times)."""
        return self._rng

    @property
    def exposure_config(self) -> ExposureConfig:
        """The scoring configuration (loaded once from ``config.exposure_config``)."""
        if self._exposure_config is None:
            from .risk import load_exposure_config

            self._exposure_config = load_exposure_config(self.config)
        return self._exposure_config

    def _scoring(self) -> ExposureConfig:
        return self.exposure_config

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        config: AgentConfig,
        *,
        now: float,
        radio: Radio | None = None,
        rng: random.Random | None = None,
        recover_corrupt: bool = False,
    ) -> Agent:
        """Open the agent's store (creating it) and purge expired records (AGENT-9).

        A damaged database raises :class:`StoreCorruptError`; with
        ``recover_corrupt=True`` the damaged file is renamed aside (never deleted) and a
        new, empty store is started, with a warning naming the kept file.
        """
        moved: Path | None = None
        try:
            store = AgentStore.open(config.data_dir)
        except StoreCorruptError:
            if not recover_corrupt or config.data_dir is None:
                raise
            moved = AgentStore.move_aside(config.data_dir, str(int(now)))
            store = AgentStore.open(config.data_dir)
        agent = cls(config, store, radio, rng=rng)
        if moved is not None:
            agent._warn(
                f"the local store was damaged; it was kept as {moved}; a new one started", now
            )
        agent._purge(now)
        agent._recover(now)
        return agent

    def close(self) -> None:
        self._save_state()
        self.store.close()

    # -- the step API ------------------------------------------------------------------------

    def tick(self, now: float) -> TickResult:
        """Advance the agent to ``now``: key, rotation, purge and (sim radio) ingest."""
        warnings = self._check_clock(now)
        purged = self._daily(now)
        day = tek_day(now)
        key = self._active_key(day)
        rotated = False
        if self._rotation.due(now, day) or self._payload is None:
            self._payload = key.payload(now, self._metadata)
            self._rotation.rotated(now, day)
            rotated = True
            set_payload = getattr(self.radio, "set_payload", None)
            if callable(set_payload):
                set_payload(self._payload)
        ingested = 0
        drain = getattr(self.radio, "drain", None)
        if callable(drain):
            ingested = self.ingest(drain())
        self._last_now = now if self._last_now is None else max(self._last_now, now)
        if warnings:
            self._last_now = now
        return TickResult(self._payload, rotated, self._scan.due(now), ingested, purged, warnings)

    def ingest(self, sightings: Iterable[RadioSighting]) -> int:
        """Aggregate sightings per identifier per scan window and store them (AGENT-6).

        Sightings are grouped by service data and by ``scan_period_s``-long time
        bucket; malformed payloads are dropped. Returns the number of records stored.
        """
        groups: dict[tuple[bytes, int], list[RadioSighting]] = {}
        bucket_s = self.config.scan_period_s
        for s in sightings:
            if len(s.service_data) != SERVICE_DATA_LENGTH:
                continue
            if self._payload is not None and s.service_data == self._payload:
                continue  # our own advertisement reflected back
            groups.setdefault((s.service_data, int(s.unix_time // bucket_s)), []).append(s)
        records = [_aggregate(data, group) for (data, _), group in groups.items()]
        if records:
            self.store.add_sightings(records)
        return len(records)

    def sync(self, now: float, client: httpx.Client | None = None) -> SyncResult:
        """Download new exports, verify, match, score, store and notify (AGENT-13…16)."""
        from .sync import run_sync

        self._check_clock(now)
        self._daily(now)
        self.store.get_meta("matches")  # an unreadable record is found before the check
        self.store.get_meta("sync")
        self._recover(now)
        return run_sync(self.config, self.store, now, client, exposure=self._scoring)

    def report(self, code: str, now: float, client: httpx.Client | None = None) -> ReportResult:
        """Verify ``code``, obtain a certificate and publish 14 days of keys (AGENT-17, 18)."""
        from .report import run_report

        self.tick(now)
        return run_report(self.config, self.store, code, now, client)

    def revise(self, code: str, now: float, client: httpx.Client | None = None) -> ReportResult:
        """Publish again under a new ``code`` with the kept revision token (AGENT-19)."""
        from .report import run_revise

        self.tick(now)
        return run_revise(self.config, self.store, code, now, client)

    def analytics_step(self, now: float, client: httpx.Client | None = None) -> Any:
        """Prepare and upload what is due of the aggregate statistics (SPEC AGG-28)."""
        from .analytics import run_step

        return run_step([self], now, client)

    def status(self, now: float) -> dict[str, Any]:
        """Risk level, most recent exposure day, last check, what is stored (AGENT-16)."""
        from .sync import status_summary

        return status_summary(self.config, self.store, now, exposure=self._scoring)

    # -- the asynchronous radio loop -------------------------------------------------------

    async def step(self, now: float) -> TickResult:
        """One tick plus the radio calls it implies: rotate, and scan one window if due."""
        radio = self.radio
        had_payload = self._payload is not None and radio is not None and radio.advertising
        result = self.tick(now)
        if radio is None:
            return result
        if not hasattr(radio, "set_payload"):
            if result.rotated and had_payload:
                await radio.rotate(result.payload)
            elif not radio.advertising:
                await radio.start_advertising(result.payload)
        if result.scan_due:
            heard = await radio.scan(self.config.scan_duration_s, now)
            result.ingested += self.ingest(heard)
            self._scan.scanned(now)
            self._save_state()
        return result

    async def run(
        self,
        clock: Callable[[], float] = time.time,
        stop: asyncio.Event | None = None,
        *,
        sync_every_s: float = 6 * 3600,
        client: httpx.Client | None = None,
        isolate_sync: bool = False,
    ) -> None:
        """The daemon loop: step until ``stop``; check for exposures every ``sync_every_s``.

        With ``isolate_sync`` each check runs as a child process (``phe-trace agent
        sync`` on the same store) while the radio work goes on: the daemon never loads
        the matcher, so it stays small, and scan windows are not delayed. Otherwise the
        check runs in this thread (the store's connection is not shared across threads).
        """
        stop = stop or asyncio.Event()
        next_sync = clock() + 60.0
        check: asyncio.Task[None] | None = None
        try:
            while not stop.is_set():
                try:
                    await self.step(clock())
                except RadioError as exc:
                    if not stop.is_set():
                        raise
                    # Asked to stop while a step waited on a controller that is gone:
                    # stopping was the request, so the radio's failure is only noted.
                    log.warning("the radio stopped answering while stopping: %s", exc)
                    break
                due = self.config.key_server_url and clock() >= next_sync
                if due and (check is None or check.done()):
                    next_sync = clock() + sync_every_s
                    if isolate_sync and self.config.data_dir is not None:
                        check = asyncio.create_task(self._sync_in_child())
                    else:
                        try:
                            self.sync(clock(), client)
                        except (PheTraceError, OSError) as exc:  # keep broadcasting
                            log.error("check for exposures failed: %s", exc)
                if self.config.key_server_url:
                    self._analytics_quietly(clock(), client)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self._sleep_for(clock()))
                except TimeoutError:
                    pass
        finally:
            if check is not None and not check.done():
                check.cancel()
            if self.radio is not None:
                try:
                    await self.radio.stop_advertising()
                except RadioError as exc:  # stopping must not hang on a radio that is gone
                    log.warning("the radio could not stop advertising: %s", exc)
            self._save_state()

    def _analytics_quietly(self, now: float, client: httpx.Client | None) -> None:
        """One analytics step; a failure is logged and kept for ``status``, never fatal."""
        try:
            self.analytics_step(now, client)
        except (PheTraceError, OSError) as exc:
            log.error("aggregate statistics step failed: %s", exc)

    async def _sync_in_child(self) -> None:
        """``phe-trace agent sync`` on this store, configured like this agent."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        for name, value in self.config.model_dump(mode="json", exclude_none=True).items():
            text = json.dumps(value) if isinstance(value, list | dict) else str(value)
            env[ENV_PREFIX + name.upper()] = text
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "phe_trace.cli",
            "agent",
            "sync",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, err = await proc.communicate()
        except asyncio.CancelledError:
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode:
            lines = err.decode("utf-8", "replace").strip().splitlines()
            log.error("check for exposures failed: %s", lines[-1] if lines else proc.returncode)

    def _sleep_for(self, now: float) -> float:
        nexts = [t for t in (self._rotation.next_at, self._scan.next_at) if t is not None]
        return max(0.05, min(30.0, *(t - now for t in nexts))) if nexts else 1.0

    # -- internals ---------------------------------------------------------------------------

    def _active_key(self, day: int) -> ActiveKey:
        if self._key is not None and self._key.day == day:
            return self._key
        stored = self.store.get_tek(day)
        if stored is None:
            stored = StoredKey(new_temporary_exposure_key(), day * _TEK_PERIOD, _TEK_PERIOD)
            self.store.put_tek(day, stored)
        self._key = ActiveKey.derive(day, stored.key_data)
        return self._key

    def _check_clock(self, now: float) -> list[str]:
        last = self._last_now
        if last is None or now >= last - self.config.clock_skew_tolerance_s:
            return []
        message = (
            f"the clock went back by {last - now:.0f} s; all keys and sightings are kept "
            "and identifiers rotate now"
        )
        self._warn(message, now)
        self._rotation.next_at = None
        self._scan.next_at = None
        return [message]

    def _warn(self, message: str, now: float) -> None:
        """Log ``message`` and keep it, dated ``now``, for ``status`` (the last 20)."""
        log.warning("%s", message)
        self.warnings.append(message)
        items = warning_items(self.store.load(Warnings), now)
        self.store.save(Warnings([*items, WarningItem(now, message)][-20:]))

    def _recover(self, now: float) -> None:
        """Rebuild the exposure results when their sealed record failed to open (AGENT-20).

        The kept matches and the list of processed export files are state records; if
        either cannot be opened (a damaged or tampered row), both start again empty, so
        the next check downloads every published file still listed and matches it
        against the sightings the store still holds: what those files can show is found
        again. The person is told, in ``status`` and the log.
        """
        lost = self.store.unreadable_meta & {"matches", "sync"}
        if not lost:
            return
        self.store.save(Matches())
        self.store.save(SyncState())
        self.store.unreadable_meta -= {"matches", "sync"}
        self._warn(
            "stored exposure results could not be read (a damaged record); the next check "
            "downloads the published keys again and matches them against the stored "
            "sightings, so results are rebuilt",
            now,
        )

    def _purge(self, now: float) -> dict[str, int]:
        """The retention rule over everything stored (:mod:`.retention`, AGENT-9)."""
        counts = self.store.purge(now, self.config.retention_days)
        if self._last_now is not None and not Cutoff.at(now, self.config.retention_days).keeps(
            self._last_now
        ):
            self._last_now = None  # what close() would write back
        self._purge_day = utc_day(now)
        if any(counts.values()):
            log.info("retention purge removed %s", counts)
        return counts

    def _daily(self, now: float) -> dict[str, int]:
        """The purge, once per UTC day."""
        return self._purge(now) if self._purge_day != utc_day(now) else {}

    def _save_state(self) -> None:
        if self._last_now is not None:
            self.store.save(StepState(self._last_now))


def _aggregate(service_data: bytes, group: list[RadioSighting]) -> SightingRecord:
    if len(group) == 1:  # heard once in the window (the usual case)
        [s] = group
        return SightingRecord(
            service_data[:16], service_data[16:], s.unix_time, 0.0, s.rssi, s.rssi, 1
        )
    first = min(s.unix_time for s in group)
    last = max(s.unix_time for s in group)
    rssis = [s.rssi for s in group]
    return SightingRecord(
        rpi=service_data[:16],
        aem=service_data[16:],
        unix_time=first,
        duration_s=last - first,
        rssi_max=max(rssis),
        rssi_mean=round(sum(rssis) / len(rssis)),
        count=len(group),
    )
