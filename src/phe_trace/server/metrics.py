"""A tiny Prometheus registry: counters, gauges and histograms in the text format 0.0.4.

No dependency: the server needs a handful of series (publishes, rejects by code, keys
stored, export durations), served at ``GET /metrics``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

__all__ = ["Counter", "Gauge", "Histogram", "Registry", "ServerMetrics"]

_Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt_labels(labels: _Labels, extra: _Labels = ()) -> str:
    items = labels + extra
    if not items:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items) + "}"


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help_text: str) -> None:
        self.name, self.help = name, help_text
        self._lock = threading.Lock()

    def samples(self) -> list[str]:
        raise NotImplementedError

    def render(self) -> str:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        return "\n".join(lines + self.samples())


class Counter(_Metric):
    """A monotonically increasing count per label set."""

    kind = "counter"

    def __init__(self, name: str, help_text: str) -> None:
        super().__init__(name, help_text)
        self._values: dict[_Labels, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        """Add ``amount`` to the series named by ``labels``."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        """Current value of one series (0 if never incremented)."""
        return self._values.get(tuple(sorted(labels.items())), 0.0)

    def samples(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_fmt_labels(k)} {_fmt(v)}" for k, v in items]


class Gauge(_Metric):
    """A value that is read when scraped (from a callback) or set."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, read: Callable[[], float] | None = None) -> None:
        super().__init__(name, help_text)
        self._read = read
        self._value = 0.0

    def set(self, value: float) -> None:
        """Set the gauge."""
        self._value = value

    def samples(self) -> list[str]:
        value = self._value
        if self._read is not None:
            try:
                value = self._read()
            except Exception:  # a failing read must not break the scrape
                return []
        return [f"{self.name} {_fmt(value)}"]


class Histogram(_Metric):
    """Observations counted into cumulative buckets, with sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        super().__init__(name, help_text)
        self._bounds = (*tuple(sorted(buckets)), math.inf)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0

    def observe(self, value: float) -> None:
        """Record one observation."""
        with self._lock:
            self._sum += value
            for i, bound in enumerate(self._bounds):
                if value <= bound:
                    self._counts[i] += 1
                    break

    def samples(self) -> list[str]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        lines, running = [], 0
        for bound, count in zip(self._bounds, counts, strict=True):
            running += count
            le = _fmt_labels((("le", _fmt(bound)),))
            lines.append(f"{self.name}_bucket{le} {running}")
        lines += [f"{self.name}_sum {_fmt(total)}", f"{self.name}_count {running}"]
        return lines


class Registry:
    """An ordered set of metrics rendered together."""

    def __init__(self) -> None:
        self._metrics: list[_Metric] = []
        self._included: list[Callable[[], str]] = []

    def include(self, render: Callable[[], str]) -> None:
        """Append the text of another registry (a service mounted in the same app)."""
        self._included.append(render)

    def add(self, metric: _Metric) -> None:
        """Register ``metric`` (names must be unique)."""
        if any(m.name == metric.name for m in self._metrics):
            raise ValueError(f"metric {metric.name} is already registered")
        self._metrics.append(metric)

    def render(self) -> str:
        """The whole registry in the Prometheus text exposition format."""
        own = "\n".join(m.render() for m in self._metrics) + "\n"
        return own + "".join(render() for render in self._included)


class ServerMetrics:
    """The key server's series."""

    def __init__(self, keys_stored: Callable[[], float] | None = None) -> None:
        self.registry = Registry()
        self.publishes = Counter("phe_trace_publish_total", "Publish requests that stored keys.")
        self.rejects = Counter("phe_trace_publish_rejected_total", "Refused publishes by code.")
        self.keys_inserted = Counter("phe_trace_keys_inserted_total", "Keys stored by publish.")
        self.keys_dropped = Counter("phe_trace_keys_dropped_total", "Keys dropped with a warning.")
        self.chaff = Counter("phe_trace_chaff_total", "Chaff publish requests answered.")
        self.keys_stored = Gauge("phe_trace_keys_stored", "Keys currently stored.", keys_stored)
        self.export_seconds = Histogram(
            "phe_trace_export_batch_seconds",
            "Time to write and sign one export batch.",
            (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.export_files = Counter("phe_trace_export_files_total", "Export files written.")
        self.publish_seconds = Histogram(
            "phe_trace_publish_seconds",
            "Server time of publish requests.",
            (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
        )
        for metric in (
            self.publishes,
            self.rejects,
            self.keys_inserted,
            self.keys_dropped,
            self.chaff,
            self.keys_stored,
            self.export_seconds,
            self.export_files,
            self.publish_seconds,
        ):
            self.registry.add(metric)
