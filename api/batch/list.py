"""GET /api/batch/list: the caller's batches, newest first."""

from lib.routes import batch_list as app  # noqa: F401
