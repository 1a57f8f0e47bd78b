"""POST /api/batch/upload-url {fileName, size, contentType}: a presigned form post straight to object storage."""

from lib.routes import upload_url as app  # noqa: F401
