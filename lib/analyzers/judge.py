"""One judge call and the strict reading of its reply: the part similar-answer and expert-scorer share.

A judge is the batch's own AI provider, asked through `lib.chat.stages.base.ask` (so a
content-filter refusal is told apart from a failure exactly as in the pipeline's
stages). Its prompt asks for one JSON object and nothing else; `parse_reply` accepts
that object alone (one Markdown code fence around it is tolerated, since models add
one unasked), rejects duplicate keys, NaN and every key or type the schema does not
name, and checks it with the analyzer's pydantic model in strict mode.

A judge that fails never raises: `call_judge` returns a `JudgeReply` whose `error` is
`JUDGE_MALFORMED` (a reply not in the asked shape), `JUDGE_REFUSED` (the provider's
filter or the model refused) or the provider error's own code (`UPSTREAM_ERROR`,
`RATE_LIMITED`...). Those are cell values, not HTTP errors.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from lib.chat.stages.base import NO_USAGE, Refused, Usage, ask, page_lang
from lib.errors import UpstreamError
from lib.providers.base import AIProvider, ChatTurn, CompletionRequest

JUDGE_MALFORMED = "JUDGE_MALFORMED"
JUDGE_REFUSED = "JUDGE_REFUSED"
MAX_REPLY_CHARS = 20_000
_FENCE = re.compile(r"^```(?:json)?[ \t]*\n(?P<body>.*)\n```$", re.DOTALL)


class MalformedJudgeReply(ValueError):
    """The judge's reply is not the one JSON object its prompt asked for."""


@dataclass(frozen=True)
class JudgeReply[T: BaseModel]:
    """A judge's verdict, or the code of why there is none; and what the call cost."""

    verdict: T | None
    error: str | None = None
    usage: Usage = NO_USAGE


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise MalformedJudgeReply("a key appears twice")
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise MalformedJudgeReply(f"{name} is not a JSON number")


def parse_reply[T: BaseModel](text: str, schema: type[T]) -> T:
    """The judge's verdict read from its reply. Raises `MalformedJudgeReply` for anything else."""
    body = text.strip()
    if len(body) > MAX_REPLY_CHARS:
        raise MalformedJudgeReply("the reply is too long")
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced["body"].strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise MalformedJudgeReply("the reply is not one JSON object")
    try:
        data = json.loads(body, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise MalformedJudgeReply(f"not JSON: {exc.msg}") from exc
    try:
        return schema.model_validate(data, strict=True)
    except ValidationError as exc:
        raise MalformedJudgeReply(f"not the asked shape: {exc.error_count()} problem(s)") from exc


def build_request(system: str, user: str, lang: str) -> CompletionRequest:
    """The judge's model call: its own prompt as the system message, the material as one user turn."""
    return CompletionRequest(system=system, messages=[ChatTurn("user", user)], lang=page_lang(lang))  # type: ignore[arg-type]


def call_judge[T: BaseModel](ai: AIProvider, stage: str, request: CompletionRequest, schema: type[T]) -> JudgeReply[T]:
    """Ask the judge and read its verdict; every failure comes back as an error code, never raised."""
    try:
        completion = ask(ai, stage, request)
    except UpstreamError as exc:
        return JudgeReply(None, exc.code)
    if isinstance(completion, Refused):
        return JudgeReply(None, JUDGE_REFUSED, completion.usage)
    usage = Usage.of(completion)
    try:
        return JudgeReply(parse_reply(completion.text, schema), None, usage)
    except MalformedJudgeReply:
        return JudgeReply(None, JUDGE_MALFORMED, usage)


def tagged(name: str, text: str) -> str:
    """A block of the judge's material, in tags; tag-like text inside is neutralised so it cannot close it."""
    safe = text.replace("<", "‹").replace(">", "›")
    return f"<{name}>\n{safe}\n</{name}>"
