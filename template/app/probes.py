"""The paths that are answered but never traced, counted in the request
metrics or written to the access log: the probes (app/health.py) and
/metrics (app/metrics.py).

Defined here once: the observability and security middleware, the metrics,
the sampling gate and the FastAPI instrumentation's exclusions all read it.
"""

from __future__ import annotations

import re

UNTRACED_PATHS = frozenset({"/live", "/ready", "/health", "/metrics"})


def excluded_urls() -> str:
    """UNTRACED_PATHS as the FastAPI instrumentation's `excluded_urls`: one
    regular expression, searched in each request's full URL."""
    paths = "|".join(re.escape(path) for path in sorted(UNTRACED_PATHS))
    return rf"^[a-z]+://[^/]+(?:{paths})$"
