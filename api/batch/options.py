"""GET /api/batch/options: the providers configured here, the upload defaults and limits."""

from lib.routes import batch_options as app  # noqa: F401
