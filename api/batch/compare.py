"""GET /api/batch/compare: a batch's rows beside a baseline batch's (JSON, CSV or XLSX)."""

from lib.routes import batch_compare as app  # noqa: F401
