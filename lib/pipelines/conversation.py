"""A conversation's state with a deployed AI Answers, kept on the batch items (ai-answers.md §6).

The deployment knows a conversation by its session (cookie `aianswers.sid`), the chat id
it issued into that session, and the `historySignature` its last result returned for the
history so far. A turn needs all of them, so the state after each turn is written on that
turn's item (`upstream`): a step that dies between two turns leaves the next step what it
needs to go on with the same conversation. A conversation the deployment refused (a 403
on its signature or chat id) stays refused: its later turns fail without being sent.

The session cookie is the deployment's credential for this conversation only; it is kept
on the item (never logged) because without it the next turn cannot be sent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Any

SESSION_COOKIE = "aianswers.sid"


@dataclass(frozen=True)
class ConversationState:
    visitor_id: str
    cookies: dict[str, str] = field(default_factory=dict)
    server_chat_id: str | None = None
    history_signature: str | None = None
    # What the deployment signed: [{"sender": "user" | "ai", "text": ...}], oldest first.
    history: tuple[dict[str, str], ...] = ()
    refused: str | None = None  # the error code that ended this conversation
    answered_turns: int = 0

    @classmethod
    def new(cls) -> ConversationState:
        """A conversation not sent yet: a visitor of its own, no session, no chat id."""
        return cls(visitor_id=uuid.uuid4().hex)

    def after_answer(self, question: str, answer: str, server_chat_id: str | None, signature: str | None,
                     cookies: dict[str, str]) -> ConversationState:
        """The state once the deployment answered `question` with `answer`."""
        history = (*self.history, {"sender": "user", "text": question}, {"sender": "ai", "text": answer})
        return replace(self, cookies=cookies, server_chat_id=server_chat_id or self.server_chat_id,
                       history_signature=signature, history=history, answered_turns=self.answered_turns + 1)

    def with_session(self, cookies: dict[str, str], server_chat_id: str | None,
                     signature: str | None) -> ConversationState:
        """A turn that was refused by design still moved the session (and maybe the signature) on."""
        return replace(self, cookies=cookies, server_chat_id=server_chat_id or self.server_chat_id,
                       history_signature=signature or self.history_signature)

    def refuse(self, code: str) -> ConversationState:
        return replace(self, refused=code)

    def to_doc(self) -> dict[str, Any]:
        return {
            "visitorId": self.visitor_id, "cookies": dict(self.cookies), "serverChatId": self.server_chat_id,
            "historySignature": self.history_signature, "history": [dict(h) for h in self.history],
            "refused": self.refused, "answeredTurns": self.answered_turns,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any] | None) -> ConversationState | None:
        """The state a stored `upstream` document holds; None when there is none or it is unreadable."""
        if not isinstance(doc, dict) or not isinstance(doc.get("visitorId"), str):
            return None
        history = tuple({"sender": str(h.get("sender", "")), "text": str(h.get("text", ""))}
                        for h in doc.get("history") or [] if isinstance(h, dict))
        cookies = {str(k): str(v) for k, v in (doc.get("cookies") or {}).items()}
        return cls(visitor_id=doc["visitorId"], cookies=cookies, server_chat_id=doc.get("serverChatId"),
                   history_signature=doc.get("historySignature"), history=history, refused=doc.get("refused"),
                   answered_turns=int(doc.get("answeredTurns") or 0))
