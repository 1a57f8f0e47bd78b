"""GET /api/batch/summary: a batch's counts, pass rates, latency, tokens, cost, stability and drift."""

from lib.routes import batch_summary as app  # noqa: F401
