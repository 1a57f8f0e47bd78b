"""POST /api/chat/message: one chat message through the pipeline."""

from lib.routes import chat_message as app  # noqa: F401
