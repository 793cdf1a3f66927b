"""Radio backends behind one interface: ``bluez`` (real), ``bumble`` (virtual HCI), ``sim``.

Import a backend's module explicitly (``from phe_trace.agent.radio.sim import SimRadio``);
``bluez`` and ``bumble`` need the ``device`` extra, ``sim`` needs nothing.
"""

from .base import DEFAULT_ADVERTISING_INTERVAL_MS, Radio, RadioSighting, check_payload

__all__ = ["DEFAULT_ADVERTISING_INTERVAL_MS", "Radio", "RadioSighting", "check_payload"]
