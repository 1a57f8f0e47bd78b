"""POST /api/batch/create: upload a CSV or XLSX of questions; 202 with the batch id."""

from lib.routes import create_batch as app  # noqa: F401
