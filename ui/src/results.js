// Pure helpers behind the results table: which columns a batch's results have (the
// file's own, then the result columns), which of them to show first, and the search,
// status filter, sort, paging and conversation grouping of the rows. All client-side,
// over what GET /api/batch/results?format=json returned.

export const PAGE_SIZE = 50;
export const ROW_NUMBER = 'rowNumber';

/** The result columns of the contract (shared/api.md), in the order the server sends them. */
export const RESULT_FIELDS = [
  'rowNumber',
  'chatId',
  'trial',
  'status',
  'blockedBy',
  'redactedQuestion',
  'questionLanguage',
  'englishQuestion',
  'answerType',
  'answer',
  'englishAnswer',
  'sentence1',
  'sentence2',
  'sentence3',
  'sentence4',
  'citationHead',
  'aiCitationUrl',
  'citationUrl',
  'department',
  'departmentUrl',
  'searchQuery',
  'model',
  'inputTokens',
  'outputTokens',
  'responseTimeMs',
  'error',
  'interactionId',
];

/** Shown until the reader picks others. */
export const DEFAULT_FIELDS = ['rowNumber', 'status', 'redactedQuestion', 'answer', 'citationUrl', 'error'];
/** Row statuses, for the table's filter. */
export const ROW_STATUSES = ['succeeded', 'blocked', 'failed', 'cancelled', 'processing', 'pending'];
/** The pipeline's stages that may block a row (lib/chat/stages/base.py BlockedBy). */
export const BLOCKED_STAGES = [
  'shortQuery',
  'piStage1',
  'piStage2',
  'profanity',
  'threat',
  'manipulation',
  'obfuscated',
  'undetermined',
  'contentFilter',
];
/** An answer's types (lib/chat/stages/answer.py). */
export const ANSWER_TYPES = ['normal', 'clarifying-question', 'pt-muni', 'not-gc'];
/**
 * The analyzer flags the table filters on (the server's `flag`, lib/results_page.py): a
 * column alone (the cell is set) or column=value. Each is offered only when the batch has
 * that analyzer's column.
 */
export const ANALYZER_FLAGS = [
  'refusal.flagged',
  'citation.wellFormed=false',
  'citation.allowedDomain=false',
  'citation.matchesExpected=false',
  'similarity.label=meaning-drift',
  'expert.verdict=fail',
  'expert.verdict=needs-review',
  'similarity.error',
  'expert.error',
];

/** The flags a batch with these result columns can be filtered on. */
export function flagChoices(columns) {
  const present = new Set(Array.isArray(columns) ? columns : []);
  return ANALYZER_FLAGS.filter((flag) => present.has(flag.split('=')[0]));
}

/** The result fields the server sorts by (lib/results_page.py): the others are not sortable. */
export const SORTABLE_FIELDS = ['rowNumber', 'responseTimeMs'];
/** Rows a page of the table asks the server for. */
export const SERVER_PAGE_SIZE = 50;

/** The server's `sort` parameter for a column and direction, or null when it cannot sort by it. */
export function sortParam(field, direction = 'ascending') {
  if (!SORTABLE_FIELDS.includes(field)) return null;
  return direction === 'descending' ? `-${field}` : field;
}

/** What the pager shows for a server page: {page, pages, from, to} (1-based), from total/offset/limit. */
export function serverPage({ total = 0, offset = 0, limit = SERVER_PAGE_SIZE, shown = 0 } = {}) {
  const size = Math.max(1, limit);
  const pages = Math.max(1, Math.ceil(total / size));
  const page = Math.min(pages, Math.floor(offset / size) + 1);
  return { page, pages, from: shown ? offset + 1 : 0, to: offset + shown };
}

const RESULT_SUFFIX = ' (result)';

/** A column name as the server matches it: case, spaces, `_` and `-` do not count. */
export function normalizeColumn(name) {
  return String(name)
    .toLowerCase()
    .replace(/[\s_-]+/g, '');
}

/** Every column of the results: the server's `columns`, else the keys of the rows, in order. */
export function columnsOf(results) {
  const listed = Array.isArray(results?.columns) ? results.columns.filter((c) => typeof c === 'string') : [];
  const columns = listed.length > 0 ? [...listed] : [];
  if (columns.length === 0) {
    for (const item of results?.items ?? []) {
      for (const key of Object.keys(item ?? {})) if (!columns.includes(key)) columns.push(key);
    }
  }
  // Older servers send no rowNumber: the table numbers the rows itself.
  if (!columns.includes(ROW_NUMBER)) columns.unshift(ROW_NUMBER);
  return columns;
}

/** The column holding a result field: `answer (result)` when the file has its own `answer`. */
export function fieldColumn(columns, field) {
  if (columns.includes(`${field}${RESULT_SUFFIX}`)) return `${field}${RESULT_SUFFIX}`;
  return columns.includes(field) ? field : null;
}

function fieldByName(columns, column) {
  if (column.endsWith(RESULT_SUFFIX)) {
    const field = column.slice(0, -RESULT_SUFFIX.length);
    if (RESULT_FIELDS.includes(field)) return field;
  }
  if (RESULT_FIELDS.includes(column) && !columns.includes(`${column}${RESULT_SUFFIX}`)) return column;
  if (column.includes('.') && !column.includes(' ')) return column; // an analyzer's output, e.g. refusal.detected
  return null;
}

/**
 * The result field a column holds ("answer (result)" -> "answer"), or null for a column
 * of the file. The server leaves out its `chatId` when the file has its own, and the
 * file's columns come first: a `chatId` that stands before one of the file's is the file's.
 */
export function fieldOf(columns, column) {
  const field = fieldByName(columns, column);
  if (field !== 'chatId' || column.endsWith(RESULT_SUFFIX)) return field;
  const lastFileColumn = columns.reduce(
    (last, other, index) => (fieldByName(columns, other) === null ? index : last),
    -1,
  );
  return columns.indexOf(column) < lastFileColumn ? null : field;
}

/** The file's own columns and the result columns, each in the server's order. */
export function splitColumns(columns) {
  const fileColumns = [];
  const resultColumns = [];
  for (const column of columns) (fieldOf(columns, column) === null ? fileColumns : resultColumns).push(column);
  return { fileColumns, resultColumns };
}

/** The file's question columns, in the server's order of preference (shared/api.md). */
const QUESTION_HEADERS = ['redactedquestion', 'question', 'problemdetails'];

/**
 * The column with the row's redacted question: the result's `redactedQuestion`, else the
 * file's own question column (which the server returns masked).
 */
export function questionColumn(columns) {
  const result = fieldColumn(columns, 'redactedQuestion');
  if (result) return result;
  for (const header of QUESTION_HEADERS) {
    const found = columns.find((column) => normalizeColumn(column) === header);
    if (found) return found;
  }
  return null;
}

/** The columns shown at first: row, status, question, answer, citation and error. */
export function defaultColumns(columns) {
  return DEFAULT_FIELDS.map((field) =>
    field === 'redactedQuestion' ? questionColumn(columns) : fieldColumn(columns, field),
  ).filter(Boolean);
}

/** The column with the conversation id: the result's chatId, or the file's own chat id column. */
export function chatColumn(columns) {
  return fieldColumn(columns, 'chatId') ?? columns.find((column) => normalizeColumn(column) === 'chatid') ?? null;
}

/** The file's URL column (`URL` or `REFERRINGURL`, matched like the server matches them). */
export function urlColumn(columns) {
  return columns.find((column) => ['url', 'referringurl'].includes(normalizeColumn(column))) ?? null;
}

/** The rows as `{index, rowNumber, item}`, numbered by the server or by position. */
export function rowsOf(items) {
  return (Array.isArray(items) ? items : []).map((item, index) => {
    const n = Number(item?.[ROW_NUMBER]);
    return { index, rowNumber: Number.isFinite(n) && n > 0 ? n : index + 1, item: item ?? {} };
  });
}

/** The value of a cell, `rowNumber` included. */
export function cellValue(row, column) {
  return column === ROW_NUMBER ? row.rowNumber : row.item[column];
}

function text(value) {
  if (value === null || value === undefined) return '';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

/**
 * The rows whose status is `status` (any when empty) and in which `query` appears,
 * case-insensitively, in any cell (shown or not).
 */
export function filterRows(rows, { status = '', query = '', statusColumn = 'status' } = {}) {
  const needle = query.trim().toLocaleLowerCase();
  return rows.filter((row) => {
    if (status && row.item[statusColumn] !== status) return false;
    if (!needle) return true;
    return Object.values(row.item).some((value) => text(value).toLocaleLowerCase().includes(needle));
  });
}

function comparable(value) {
  if (typeof value === 'number') return value;
  const raw = text(value).trim();
  if (raw !== '' && /^-?\d+(\.\d+)?$/.test(raw)) return Number(raw);
  return raw;
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

/** The rows sorted by a column (numbers as numbers, empty cells last), stable; input order without one. */
export function sortRows(rows, column, direction = 'ascending') {
  if (!column) return rows;
  const sign = direction === 'descending' ? -1 : 1;
  return [...rows].sort((a, b) => {
    const x = comparable(cellValue(a, column));
    const y = comparable(cellValue(b, column));
    if (x === '' || y === '') return x === y ? a.index - b.index : x === '' ? 1 : -1;
    let order;
    if (typeof x === 'number' && typeof y === 'number') order = x - y;
    else order = collator.compare(String(x), String(y));
    return order === 0 ? a.index - b.index : sign * order;
  });
}

/** One page of rows (1-based `page`, clamped) with what the pager says: from, to, pages. */
export function pageOf(rows, page, size = PAGE_SIZE) {
  const pages = Math.max(1, Math.ceil(rows.length / size));
  const current = Math.min(Math.max(1, page), pages);
  const start = (current - 1) * size;
  const shown = rows.slice(start, start + size);
  return { rows: shown, page: current, pages, from: shown.length ? start + 1 : 0, to: start + shown.length };
}

/** The turns of the row's conversation (same chat id), in row order; just the row without an id. */
export function conversationOf(rows, row, chatKey) {
  const chatId = chatKey ? text(row.item[chatKey]).trim() : '';
  if (!chatId) return [row];
  return rows
    .filter((other) => text(other.item[chatKey]).trim() === chatId)
    .sort((a, b) => a.rowNumber - b.rowNumber || a.index - b.index);
}

/** Only web links become anchors: a citation is data from a model, not trusted markup. */
export function safeHttpUrl(value) {
  if (typeof value !== 'string' || !value.trim()) return null;
  try {
    const url = new URL(value.trim());
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch {
    return null;
  }
}
