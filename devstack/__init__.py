"""The local stack (dev and tests only, never deployed): QStash dev server, app server, launcher."""
