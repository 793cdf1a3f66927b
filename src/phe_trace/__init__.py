"""phe-trace: privacy-preserving, decentralized exposure notification.

Wire-compatible with the Google/Apple Exposure Notification (GAEN) protocol where GAEN
defines the format. See ``protocol_spec/SPEC.md`` for the normative specification.
"""

__version__ = "0.1.0"
