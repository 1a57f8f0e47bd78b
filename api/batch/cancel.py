"""POST /api/batch/cancel: cancel an active batch."""

from lib.routes import cancel_batch as app  # noqa: F401
