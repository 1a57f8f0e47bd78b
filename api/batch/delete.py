"""POST /api/batch/delete: delete a finished batch, its rows, interactions, chats and files."""

from lib.routes import delete_batch as app  # noqa: F401
