// The upload's `warnings`, which the API sends as strings ("Row 5: the question is blank;
// the row was skipped.") or as objects `{rowNumber, code, message}`: both become
// `{rowNumber, code, message, count}` so that the page can word them in its own language
// and list the rows concerned.

/** Codes that mean "this row's question is blank, the row was skipped". */
const BLANK_QUESTION_CODES = ['BLANK_QUESTION', 'EMPTY_QUESTION', 'QUESTION_BLANK', 'BLANK_ROW', 'ROW_SKIPPED'];

const BLANK_ROW_TEXT = /^row (\d+): the question is blank/i;
const MORE_BLANK_TEXT = /^(\d+) more rows? with a blank question/i;

function rowNumberOf(value) {
  const n = Number(value);
  return Number.isInteger(n) && n > 0 ? n : null;
}

/** One warning as `{rowNumber, code, message, count}` (null fields when unknown). */
export function normalizeWarning(warning) {
  if (warning && typeof warning === 'object') {
    const code = typeof warning.code === 'string' ? warning.code : null;
    return {
      rowNumber: rowNumberOf(warning.rowNumber ?? warning.row),
      code: code && BLANK_QUESTION_CODES.includes(code) ? 'BLANK_QUESTION' : code,
      message: typeof warning.message === 'string' ? warning.message : '',
      count: rowNumberOf(warning.count),
    };
  }
  const text = String(warning ?? '');
  const blank = BLANK_ROW_TEXT.exec(text);
  if (blank) return { rowNumber: Number(blank[1]), code: 'BLANK_QUESTION', message: text, count: null };
  const more = MORE_BLANK_TEXT.exec(text);
  if (more) return { rowNumber: null, code: 'MORE_BLANK_QUESTIONS', message: text, count: Number(more[1]) };
  return { rowNumber: null, code: null, message: text, count: null };
}

/** The sentence for a normalized warning, through `t` (the page's language). */
export function warningSentence(warning, t) {
  if (warning.code === 'BLANK_QUESTION' && warning.rowNumber !== null) {
    return t('warning.blankQuestion', { row: warning.rowNumber });
  }
  if (warning.code === 'MORE_BLANK_QUESTIONS' && warning.count !== null) {
    return t('warning.moreBlank', { count: warning.count });
  }
  if (warning.rowNumber !== null) return t('warning.row', { row: warning.rowNumber, message: warning.message });
  return warning.message;
}

/** The row numbers the warnings name, ascending and without repeats. */
export function warningRows(warnings) {
  const rows = warnings.map((warning) => warning.rowNumber).filter((row) => row !== null);
  return [...new Set(rows)].sort((a, b) => a - b);
}
