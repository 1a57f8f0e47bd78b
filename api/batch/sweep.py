"""GET /api/batch/sweep: Vercel cron; re-kicks batches whose steps have gone quiet."""

from lib.routes import sweep_batches as app  # noqa: F401
