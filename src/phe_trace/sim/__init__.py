"""A simulated city: many real agents on a simulated radio against a real server.

``phe-trace demo`` runs it (see :func:`run_demo`). The world, the radio physics, the
outbreak and the ground truth are simulated; the parts under test are phe-trace's own.
Production code never imports this package.
"""

from .config import RiskConfig, SimConfig
from .demo import DemoOutcome, make_backend, run_demo
from .errors import SimBackendError, SimConfigError, SimError
from .metrics import Confusion, Metrics, compute_metrics
from .runner import DayStats, SimResult, Simulation

__all__ = [
    "Confusion",
    "DayStats",
    "DemoOutcome",
    "Metrics",
    "RiskConfig",
    "SimBackendError",
    "SimConfig",
    "SimConfigError",
    "SimError",
    "SimResult",
    "Simulation",
    "compute_metrics",
    "make_backend",
    "run_demo",
]
