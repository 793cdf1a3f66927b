"""``python -m phe_trace.cli``: the same as the ``phe-trace`` command."""

import sys

from phe_trace.cli import main

sys.exit(main())
