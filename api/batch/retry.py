"""POST /api/batch/retry: run a finished batch's failed (or cancelled) rows again, in place."""

from lib.routes import retry_batch as app  # noqa: F401
