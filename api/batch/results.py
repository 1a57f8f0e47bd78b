"""GET /api/batch/results?batchId=&format=json|csv|xlsx: every row in input order."""

from lib.routes import batch_results as app  # noqa: F401
