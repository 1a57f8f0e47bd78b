"""How a well-behaved model answers each stage's prompt: the replies of the provider stub.

Pure functions of the system prompt and the user message, so that the stub
(tests/support/provider_stub.py) only has to add the wire format. The stage is told by
the opening line of the system prompt, compared with the opening lines of the stage
modules' own prompts, imported from `lib.chat.stages` so that a prompt edit moves the
match with it. Stage names are the stage modules' `STAGE` (as in the pipeline's trace),
plus `queryRewrite.simpler` for the retry after a search found one result or none.

What the model replies, deterministically:

- `piStage2`: `null`; for a question holding the word `PIIMARK` (or a word starting with
  it, `PIIMARK2`), the question with each such word replaced by `XXX` (the tests' PII trigger).
- `translation` (the pipeline asks only for a non-English question):
  `<translation>[en] <question></translation>`.
- `queryRewrite`: `<query>…</query>`, the latest question's words lower-cased, minus
  `FILLER_WORDS`, bare numbers and XXX, at most 8.
- `queryRewrite.simpler`: the first 3 of those words of the query, `site:` dropped.
- `context`: `IRCC` (passport, visa, immigration…), `CRA-ARC` (tax, GST, T4…) or
  `EDSC-ESDC` (EI, pension…) by `DEPARTMENT_WORDS`, when that key is in the prompt's list;
  else `none`.
- `answer`: `<preliminary-checks>…</preliminary-checks>`,
  `<english-answer><s-1>Stub answer to: <English question></s-1></english-answer>`, and for
  an output language other than English `<answer><s-1>Stub answer to: <question as asked>
  </s-1></answer>`; then `<citation-head>Stub page</citation-head>`,
  `<citation-url>STUB_CITATION</citation-url>` and `<confidence>0.9</confidence>`.
  Tag-like text in a question is not echoed.
- `analyzer.similar-answer` (the similar-answer judge): one JSON object, `same-meaning` when
  the reference and the new answer share at least `SAME_WORD_SHARE` of their words (Jaccard,
  lower-cased), else `meaning-drift`; that share as `score`; no `changedFacts`; `winner`
  `tie` (same) or `new` (drift) when the material says the reference is the baseline, else null.
- `analyzer.expert-scorer` (the expert-scorer judge): one JSON object; the key ideas are the
  reference's sentences, found when every word of four letters or more is in the new answer;
  `pass` (all found), `fail` (none), `needs-review` (some); `answerTypeOk` when the
  material's answer type is `normal`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from lib.analyzers import expert_scorer, similar_answer
from lib.chat.stages import ai_pii, answer, department, language, query_rewrite

STUB_CITATION = "https://www.canada.ca/en/stub.html"
STUB_CITATION_HEAD = "Stub page"
STUB_CONFIDENCE = "0.9"
# A question holding this word (or a word starting with it) has personal information for the AI PII stage.
PII_MARKER = "PIIMARK"
TRANSLATION_PREFIX = "[en] "
SIMPLER_STAGE = f"{query_rewrite.STAGE}.simpler"


def _opening(prompt: str) -> str:
    """What every system prompt built from `prompt` starts with: its first line, up to a placeholder."""
    return prompt.split("\n", 1)[0].split("{", 1)[0]


# (opening line, stage name), one per prompt a stage sends.
STAGE_OPENINGS: tuple[tuple[str, str], ...] = (
    (_opening(ai_pii.SYSTEM_PROMPT), ai_pii.STAGE),
    (_opening(language.SYSTEM_PROMPT), language.STAGE),
    (_opening(query_rewrite.SYSTEM_PROMPT), query_rewrite.STAGE),
    (_opening(query_rewrite.SIMPLER_PROMPT), SIMPLER_STAGE),
    (_opening(department.SYSTEM_PROMPT), department.STAGE),
    (_opening(answer.GENERAL_RULES), answer.STAGE),
    (_opening(similar_answer.SYSTEM_PROMPT), similar_answer.STAGE),
    (_opening(expert_scorer.SYSTEM_PROMPT), expert_scorer.STAGE),
)


def stage_of(system: str) -> str | None:
    """The stage whose prompt `system` is, or None for any other prompt."""
    for opening, stage in STAGE_OPENINGS:
        if system.startswith(opening):
            return stage
    return None


def reply_to(stage: str, system: str, user: str) -> str:
    """The model's reply to one stage call: its system prompt and its (last) user message."""
    return _REPLIES[stage](system, user)


# Words a search query leaves out (English and French); bare numbers go too ("001.", years).
FILLER_WORDS = frozenset("""
a an and are am as at be can could do does did for from get hello hi how i if in is it me my need of on or our
please should tell thank thanks that the there this to us want was we what when where which who why will with
would you your
au aux bonjour ce comment d de des du elle en est et il j je l la le les ma merci mes moi mon nous ou où par pour
puis qu que quel quelle quels quelles qui s sa se ses si son ta te un une vous votre vos
""".split())
MAX_QUERY_WORDS = 8
SIMPLER_QUERY_WORDS = 3
# (key, words that send a question there): the keys are lib/chat/data/departments.json's.
DEPARTMENT_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("IRCC", ("passport", "passports", "passeport", "passeports", "visa", "immigration", "immigrate",
              "citizenship", "citoyenneté", "refugee", "réfugié")),
    ("CRA-ARC", ("tax", "taxes", "impôt", "impôts", "gst", "tps", "t4", "cra", "arc", "revenue agency")),
    ("EDSC-ESDC", ("ei", "employment insurance", "assurance-emploi", "pension", "oas", "cpp", "sin", "nas")),
)
_PII_WORD = re.compile(rf"\b{PII_MARKER}\w*")
_OUR_TAG = re.compile(r"</?[A-Za-z][\w-]*/?>")
_WORD = re.compile(r"\w+")
_ASKED_IN = re.compile(r"^(?P<english>.*)\n\(Asked in (?P<language>[^:\n]+): (?P<original>.*)\)\s*$", re.DOTALL)


def _plain(text: str) -> str:
    """A question echoed back without tag-like markup, which a model would not copy into its own tags."""
    return " ".join(_OUR_TAG.sub(" ", text).split())


def _line_after(text: str, label: str, *, last: bool = False) -> str | None:
    """The rest of the first (or last) line of `text` that starts with `label`, if any."""
    lines = text.splitlines()
    for line in reversed(lines) if last else lines:
        if line.startswith(label):
            return line[len(label):].strip()
    return None


def _query_words(text: str) -> list[str]:
    words = [w.lower() for w in _WORD.findall(text.replace("site:", " "))]
    return [w for w in words if w not in FILLER_WORDS and not w.isdigit() and w != "xxx"]


def _pii_reply(system: str, question: str) -> str:
    return _PII_WORD.sub(ai_pii.PLACEHOLDER, question) if _PII_WORD.search(question) else ai_pii.NONE_REPLY


def _translation_reply(system: str, question: str) -> str:
    return f"<translation>{TRANSLATION_PREFIX}{_plain(question)}</translation>"


def _rewrite_reply(system: str, user: str) -> str:
    latest = _line_after(user, "Latest question:") or user
    words = _query_words(latest) or [w.lower() for w in _WORD.findall(latest)] or ["canada"]
    return f"<query>{' '.join(words[:MAX_QUERY_WORDS])}</query>"


def _simpler_reply(system: str, query: str) -> str:
    words = _query_words(query) or ["canada"]
    return f"<query>{' '.join(words[:SIMPLER_QUERY_WORDS])}</query>"


def _department_reply(system: str, user: str) -> str:
    question = (_line_after(user, "Question:") or user).lower()
    for key, words in DEPARTMENT_WORDS:
        mentioned = any(re.search(rf"(?<!\w){re.escape(word)}(?!\w)", question) for word in words)
        if mentioned and re.search(rf"^{re.escape(key)}: ", system, re.MULTILINE):
            return key
    return department.NONE_REPLY


def _answer_reply(system: str, user: str) -> str:
    asked = _ASKED_IN.match(user)
    english = asked["english"] if asked else user
    # The last such line: scenario text and search results come before the prompt's own.
    output_language = _line_after(system, "Output language:", last=True) or "English"
    parts = [
        f"<preliminary-checks>Stub notes: answer in {output_language}; cite the stub page.</preliminary-checks>",
        f"<english-answer><s-1>Stub answer to: {_plain(english)}</s-1></english-answer>",
    ]
    if output_language != "English":
        parts.append(f"<answer><s-1>Stub answer to: {_plain(asked['original'] if asked else english)}</s-1></answer>")
    parts += [
        f"<citation-head>{STUB_CITATION_HEAD}</citation-head>",
        f"<citation-url>{STUB_CITATION}</citation-url>",
        f"<confidence>{STUB_CONFIDENCE}</confidence>",
    ]
    return "\n".join(parts)


SAME_WORD_SHARE = 0.8


def _material(user: str, name: str) -> str:
    """One tagged block of a judge's user message (`<name>` … `</name>`), or ""."""
    found = re.search(rf"<{name}>\n(.*?)\n</{name}>", user, re.DOTALL)
    return found.group(1) if found else ""


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


def _similarity_reply(system: str, user: str) -> str:
    reference, new = _words(_material(user, "reference")), _words(_material(user, "new-answer"))
    share = round(len(reference & new) / len(reference | new), 2) if reference | new else 1.0
    same = share >= SAME_WORD_SHARE
    winner = ("tie" if same else "new") if "baseline" in _material(user, "reference-kind") else None
    return json.dumps({"label": "same-meaning" if same else "meaning-drift", "score": share, "changedFacts": [],
                       "winner": winner})


def _expert_reply(system: str, user: str) -> str:
    sentences = re.split(r"(?<=[.!?])\s+", _material(user, "reference-answer"))
    ideas = [s.strip() for s in sentences if s.strip()][: expert_scorer.MAX_IDEAS]
    new = _words(_material(user, "new-answer"))
    found = [idea for idea in ideas if {w for w in _words(idea) if len(w) >= 4} <= new]
    missing = [idea for idea in ideas if idea not in found]
    verdict = "pass" if not missing else "fail" if not found else "needs-review"
    return json.dumps({"verdict": verdict, "ideasFound": found, "ideasMissing": missing,
                       "answerTypeOk": _material(user, "answer-type").strip() == answer.NORMAL})


_REPLIES: dict[str, Callable[[str, str], str]] = {
    ai_pii.STAGE: _pii_reply,
    language.STAGE: _translation_reply,
    query_rewrite.STAGE: _rewrite_reply,
    SIMPLER_STAGE: _simpler_reply,
    department.STAGE: _department_reply,
    answer.STAGE: _answer_reply,
    similar_answer.STAGE: _similarity_reply,
    expert_scorer.STAGE: _expert_reply,
}
