"""HTTP plumbing every phe-trace service shares (layer 1, ``ARCHITECTURE.md``).

- :mod:`.errors` — how a refused request is answered: one JSON shape
  ``{"error": message, "code": code}``, one map from framework statuses to codes, one
  installer of the exception handlers every service uses, and one 503 answer for a
  database that is down;
- :mod:`.bodylimit` — request-body limits enforced before the app reads a byte;
- :mod:`.query` — query parameters given once and integers written in decimal digits.
"""
