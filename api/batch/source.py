"""GET /api/batch/source?batchId=: a short-lived link to the file as it was uploaded."""

from lib.routes import batch_source as app  # noqa: F401
