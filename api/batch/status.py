"""GET /api/batch/status?batchId=: progress of one batch."""

from lib.routes import batch_status as app  # noqa: F401
