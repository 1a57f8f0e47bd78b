"""POST /api/batch/process-step: QStash callback; runs one step of a batch and re-enqueues."""

from lib.routes import process_step as app  # noqa: F401
