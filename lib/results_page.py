"""One page of a batch's results, filtered, searched and sorted on the server (the page's table).

`GET /api/batch/results?format=json&offset=&limit=` answers `{batchId, status, columns,
total, offset, limit, items}` with only that page, the rows built by `lib.results`.
Without `offset`, `limit` or a filter the endpoint keeps answering every row (scripts).

A page counts items, not file rows: a question run with `trials` T is T items, one after
the other, in (rowIndex, trial) order (`rowIndex` numbers the items: row × T + trial − 1).

`flag` filters on the batch's analyzer columns (lib/analyzers `columns_for`): a comma
list of `column` (the cell is set: true, a text, a non-empty list, a non-zero number) or
`column=value` (the cell reads `value`; true/false for a yes/no cell), e.g.
`refusal.flagged`, `similarity.label=meaning-drift`, `expert.verdict=fail`; a row matches
any of them. A column the batch does not have is a 400 `INVALID_FILTER`.

How it reads, because SecantusDB scans on anything but exact keys on an index:
- no filter, sorted by row number: the page's items by a `rowIndex` range on the
  `(batchId, rowIndex)` index (exact: the indexes are 0..n−1), and the total by a count
  on `batchId`; should indexes have a gap (rows removed by hand) the same index is walked
  in order with skip and limit;
- any filter, search or other sort: the batch's rows once with a small projection (status,
  stage, answer type, time, the flagged analyzer cells, and the question and answer text
  only when searching), kept
  in memory to filter, sort and count, then the page's rows by `_id`. That costs about
  0.2 s per 5,000 rows and ~1 KB of memory a row when searching: fine up to the
  100,000 rows a batch may hold, and the reason `q` matches only the question and answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from lib.analyzers import columns_for
from lib.errors import BadRequest
from lib.models import Batch, ItemStatus
from lib.results import result_columns, result_row
from lib.store.result_pages import ResultPageStore

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_OFFSET = 10_000_000
MAX_QUERY_CHARS = 200
SORTS = {"rowNumber": ("rowIndex", False), "-rowNumber": ("rowIndex", True),
         "responseTimeMs": ("responseTimeMs", False), "-responseTimeMs": ("responseTimeMs", True)}
PAGE_PARAMS = ("offset", "limit", "status", "blockedBy", "answerType", "chat", "q", "sort", "flag")
_WHOLE = re.compile(r"[0-9]{1,8}")
_VALUE = re.compile(r"[A-Za-z0-9._:-]{1,100}")
_FLAG = re.compile(r"(?P<column>[a-z]{1,20}\.[A-Za-z]{1,40})(?:=(?P<value>[A-Za-z0-9._:-]{1,100}))?")


@dataclass(frozen=True)
class PageQuery:
    offset: int = 0
    limit: int = DEFAULT_LIMIT
    statuses: tuple[str, ...] = ()
    blocked_by: tuple[str, ...] = ()
    answer_types: tuple[str, ...] = ()
    chat: str | None = None  # one conversation (the chat id or the file's chatId label)
    q: str | None = None
    sort: str = "rowNumber"
    flags: tuple[tuple[str, str | None], ...] = ()  # (analyzer column, value or None: the cell is set)

    @property
    def filtered(self) -> bool:
        return bool(self.statuses or self.blocked_by or self.answer_types or self.chat or self.q or self.flags) \
            or self.sort not in ("rowNumber", "-rowNumber")


def wants_page(args: Mapping[str, str | None]) -> bool:
    """Whether the request asks for a page (any paging or filter parameter) rather than every row."""
    return any(args.get(name) not in (None, "") for name in PAGE_PARAMS)


def parse_page_query(args: Mapping[str, str | None]) -> PageQuery:
    """The paging, filter and sort parameters, checked; each error names its field."""
    def get(name: str) -> str | None:
        value = args.get(name)
        return value if value not in (None, "") else None

    offset = _whole(get("offset"), "offset", 0, MAX_OFFSET, 0)
    limit = _whole(get("limit"), "limit", 1, MAX_LIMIT, DEFAULT_LIMIT)
    statuses = _values(get("status"), "status")
    known = {s.value for s in ItemStatus}
    if any(s not in known for s in statuses):
        raise BadRequest(f"status must be among {', '.join(sorted(known))}.", code="INVALID_FILTER",
                         details={"field": "status"})
    sort = get("sort") or "rowNumber"
    if sort not in SORTS:
        raise BadRequest(f"sort must be one of {', '.join(SORTS)}.", code="INVALID_SORT", details={"field": "sort"})
    q = get("q")
    if q is not None:
        q = q.strip()
        if len(q) > MAX_QUERY_CHARS or not q.isprintable():
            raise BadRequest(f"q must be printable text of at most {MAX_QUERY_CHARS} characters.",
                             code="INVALID_FILTER", details={"field": "q"})
    chat = get("chat")
    if chat is not None and not (len(chat) <= 100 and chat.isprintable()):
        raise BadRequest("chat must be a chat id or label of at most 100 characters.", code="INVALID_FILTER",
                         details={"field": "chat"})
    return PageQuery(offset=offset, limit=limit, statuses=statuses, blocked_by=_values(get("blockedBy"), "blockedBy"),
                     answer_types=_values(get("answerType"), "answerType"), chat=chat, q=q or None, sort=sort,
                     flags=_flags(get("flag")))


def _flags(text: str | None) -> tuple[tuple[str, str | None], ...]:
    """`refusal.flagged,similarity.label=meaning-drift` as (column, value) pairs (checked against the batch later)."""
    if text is None:
        return ()
    parts = [part.strip() for part in text.split(",") if part.strip()]
    matches = [_FLAG.fullmatch(part) for part in parts]
    if not parts or len(parts) > 20 or any(m is None for m in matches):
        raise BadRequest("flag must be a comma list of analyzer columns, each alone or as column=value "
                         "(e.g. refusal.flagged, similarity.label=meaning-drift).", code="INVALID_FILTER",
                         details={"field": "flag"})
    return tuple((m["column"], m["value"]) for m in matches if m is not None)


def _whole(text: str | None, name: str, low: int, high: int, default: int) -> int:
    if text is None:
        return default
    if not _WHOLE.fullmatch(text) or not low <= int(text) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}.", code="INVALID_PAGE",
                         details={"field": name})
    return int(text)


def _values(text: str | None, name: str) -> tuple[str, ...]:
    """A comma list of plain values (status names, stage names, answer types)."""
    if text is None:
        return ()
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    if not values or len(values) > 20 or any(not _VALUE.fullmatch(v) for v in values):
        raise BadRequest(f"{name} must be a comma list of plain values.", code="INVALID_FILTER",
                         details={"field": name})
    return values


class ResultsPages:
    """Pages of a batch's rows: which rows, in which order, built by `lib.results`."""

    def __init__(self, store: ResultPageStore):
        self.store = store

    def page(self, batch: Batch, query: PageQuery) -> dict[str, Any]:
        """The page's answer: what the batch is, its columns, how many rows match, and this page's rows."""
        oid = ObjectId(batch.id)
        offered = columns_for(tuple(batch.analyzers))
        unknown = sorted({column for column, _ in query.flags if column not in offered})
        if unknown:
            raise BadRequest(f"This batch has no analyzer column {', '.join(unknown)}.", code="INVALID_FILTER",
                             details={"field": "flag", "allowed": offered})
        if query.filtered:
            total, docs = self._filtered_page(oid, query)
        else:
            total, docs = self._plain_page(oid, query)
        return {"batchId": batch.id, "status": batch.status.value, "columns": result_columns(batch), "total": total,
                "offset": query.offset, "limit": query.limit, "items": [result_row(doc, batch) for doc in docs]}

    def _plain_page(self, oid: ObjectId, query: PageQuery) -> tuple[int, list[dict[str, Any]]]:
        total = self.store.count(oid)
        if query.sort == "-rowNumber":  # row indexes are 0..n-1: the page's range counted from the end
            high = total - query.offset
            low = max(0, high - query.limit)
        else:
            low, high = query.offset, query.offset + query.limit
        if high <= low:
            return total, []
        docs = self.store.by_row_index(oid, low, high)
        if len(docs) != min(high, total) - low:  # a gap in the indexes: walk the index in order instead
            docs = self.store.in_order(oid, query.offset, query.limit, descending=query.sort == "-rowNumber")
        docs.sort(key=lambda d: (d.get("rowIndex", 0), d.get("trial") or 0), reverse=query.sort == "-rowNumber")
        return total, docs

    def _filtered_page(self, oid: ObjectId, query: PageQuery) -> tuple[int, list[dict[str, Any]]]:
        fields = ["rowIndex", "trial", "status", "blockedBy", "result.answerType", "responseTimeMs", "chatId",
                  "chatLabel"]
        if query.q:
            fields += ["question", "answer", "result.answer"]
        fields += sorted({f"analysis.{column}" for column, _ in query.flags})
        rows = [r for r in self.store.fields_of_all(oid, fields) if _matches(r, query)]
        field, descending = SORTS[query.sort]
        rows.sort(key=lambda r: (r.get("rowIndex", 0), r.get("trial") or 0))
        if field != "rowIndex":  # rows without a time last, whichever the direction
            timed = sorted((r for r in rows if isinstance(r.get(field), int | float)), key=lambda r: r[field],
                           reverse=descending)
            rows = timed + [r for r in rows if not isinstance(r.get(field), int | float)]
        elif descending:
            rows.reverse()
        ids = [r["_id"] for r in rows[query.offset : query.offset + query.limit]]
        found = self.store.by_ids(ids)
        return len(rows), [found[i] for i in ids if i in found]


def _matches(row: dict[str, Any], query: PageQuery) -> bool:
    if query.statuses and row.get("status") not in query.statuses:
        return False
    if query.blocked_by and row.get("blockedBy") not in query.blocked_by:
        return False
    if query.answer_types and (row.get("result") or {}).get("answerType") not in query.answer_types:
        return False
    if query.chat and query.chat not in (row.get("chatId"), row.get("chatLabel")):
        return False
    if query.flags and not any(_flag_matches(_cell(row, column), value) for column, value in query.flags):
        return False
    if query.q:
        needle = query.q.casefold()
        answer = (row.get("result") or {}).get("answer") or row.get("answer") or ""
        text = f"{row.get('question') or ''}\n{answer}"
        if needle not in text.casefold():
            return False
    return True


def _cell(row: dict[str, Any], column: str) -> Any:
    """An analyzer cell of a stored row (`analysis.similarity.label` for `similarity.label`)."""
    prefix, _, name = column.partition(".")
    cells = (row.get("analysis") or {}).get(prefix)
    return cells.get(name) if isinstance(cells, dict) else None


def _flag_matches(cell: Any, value: str | None) -> bool:
    if value is None:
        return cell is not False and cell not in (None, "", 0) and cell != []
    if isinstance(cell, bool):
        return value.lower() == ("true" if cell else "false")
    if isinstance(cell, int | float):
        try:
            return float(value) == float(cell)
        except ValueError:
            return False
    return isinstance(cell, str) and cell == value
