// Turns an API error into one sentence for people, in the page's language: the
// `error.CODE` string of i18n.js, in its detailed form when the error's details allow
// (MISSING_QUESTION_COLUMN with details.accepted and details.found names both lists),
// plus "Try again in …" when the server said how long to wait. An unknown code gets a
// generic sentence that shows the code; the server's English message and raw JSON never
// reach the page.

import { formatBytes, formatCount, formatDuration } from './format.js';
import { hasKey, labelOr, providerName, translate } from './i18n.js';

/** HTTP statuses answered without an error envelope, read as the API's default code for them. */
const STATUS_CODES = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  422: 'UNPROCESSABLE',
  410: 'GONE',
  429: 'RATE_LIMITED',
  431: 'HEADERS_TOO_LARGE',
  503: 'SERVICE_UNAVAILABLE',
};

const PROVIDER_VARIANT = [['details', ['provider']]];

/**
 * The detailed sentences of a code, as [key suffix, details they need]: the first whose
 * details are all present (and of the right kind) is used, else the plain sentence.
 */
export const DETAILED_SENTENCES = {
  ROLE_NOT_ALLOWED: [['details', ['allowedRoles']]],
  BAD_REQUEST: [['field', ['field']]],
  INVALID_FIELD: [['field', ['field']]],
  FIELD_TOO_LONG: [['field', ['field']]],
  UNKNOWN_PROVIDER: [['details', ['field', 'allowed']]],
  PROVIDER_NOT_CONFIGURED: [['field', ['field']]],
  PAYLOAD_TOO_LARGE: [['details', ['maxBytes']]],
  OBJECT_TOO_LARGE: [['details', ['maxBytes']]],
  UPLOAD_TOO_LARGE: [['details', ['maxBytes']]],
  MESSAGE_TOO_LONG: [['details', ['maxChars']]],
  BLOCKED: [['details', ['blockedBy']]],
  WORKBOOK_TOO_LARGE: [['details', ['maxUncompressedBytes']]],
  MISSING_QUESTION_COLUMN: [['details', ['accepted', 'found']]],
  ROW_HAS_EXTRA_CELLS: [['details', ['row', 'cells', 'columns']]],
  CELL_TOO_LONG: [
    ['details', ['row', 'column', 'maxChars']],
    ['row', ['row']],
  ],
  TOO_MANY_ROWS: [['details', ['maxRows']]],
  TOO_MANY_COLUMNS: [['details', ['columns', 'maxColumns']]],
  ROW_NUMBER_OUT_OF_RANGE: [['details', ['maxRow']]],
  COLUMN_OUT_OF_RANGE: [['details', ['row', 'maxColumn']]],
  BUDGET_EXCEEDED: [['details', ['budgetUsd']]],
  UPSTREAM_ERROR: PROVIDER_VARIANT,
  PROVIDER_TIMEOUT: PROVIDER_VARIANT,
  PROVIDER_UNREACHABLE: PROVIDER_VARIANT,
  PROVIDER_RATE_LIMITED: PROVIDER_VARIANT,
  PROVIDER_ERROR: PROVIDER_VARIANT,
  PROVIDER_REJECTED: PROVIDER_VARIANT,
  PROVIDER_BAD_REPLY: PROVIDER_VARIANT,
  PROVIDER_BUSY: PROVIDER_VARIANT,
  ANSWER_TOO_LATE: PROVIDER_VARIANT,
  CONTENT_FILTER: PROVIDER_VARIANT,
};

const locale = (lang) => (lang === 'fr' ? 'fr-CA' : 'en-CA');
const isCount = (value) => typeof value === 'number' && Number.isFinite(value) && value >= 0;
const isText = (value) => typeof value === 'string' && value.trim() !== '';
const isTextList = (value) => Array.isArray(value) && value.every((entry) => typeof entry === 'string');

function plainList(values, t) {
  const shown = values.map((value) => value.trim()).filter(Boolean);
  return shown.length > 0 ? shown.join(', ') : t('error.none');
}

function joined(values, lang, type = 'conjunction') {
  try {
    return new Intl.ListFormat(locale(lang), { style: 'long', type }).format(values);
  } catch {
    return values.join(', ');
  }
}

const numberDetail = (value, lang) => (isCount(value) ? formatCount(value, lang) : undefined);

/**
 * How each detail is worded, whatever the code: `(value, t, lang) => text`, or undefined
 * when the value is not of the expected kind (then a sentence that needs it is not used).
 */
const DETAIL_WORDING = {
  accepted: (value, t) => (isTextList(value) && value.length > 0 ? plainList(value, t) : undefined),
  found: (value, t) => (isTextList(value) ? plainList(value, t) : undefined),
  allowed: (value, t, lang) =>
    isTextList(value) && value.length > 0
      ? joined(
          value.map((name) => providerName(t, name)),
          lang,
          'disjunction',
        )
      : undefined,
  allowedRoles: (value, t, lang) =>
    isTextList(value) && value.length > 0
      ? joined(
          value.map((role) => labelOr(t, `role.${role}`, role)),
          lang,
        )
      : undefined,
  field: (value, t) => (isText(value) ? labelOr(t, `field.${value}`, value) : undefined),
  provider: (value, t) => (isText(value) ? providerName(t, value) : undefined),
  blockedBy: (value, t) => (isText(value) ? labelOr(t, `blocked.${value}`, value) : undefined),
  column: (value) => (isText(value) ? value : undefined),
  maxBytes: (value, t, lang) => (isCount(value) ? formatBytes(value, lang) : undefined),
  maxUncompressedBytes: (value, t, lang) => (isCount(value) ? formatBytes(value, lang) : undefined),
  budgetUsd: (value, t, lang) =>
    isCount(value)
      ? new Intl.NumberFormat(locale(lang), { style: 'currency', currency: 'USD', currencyDisplay: 'code' }).format(
          value,
        )
      : undefined,
  row: (value, t, lang) => numberDetail(value, lang),
  cells: (value, t, lang) => numberDetail(value, lang),
  columns: (value, t, lang) => numberDetail(value, lang),
  maxChars: (value, t, lang) => numberDetail(value, lang),
  maxRows: (value, t, lang) => numberDetail(value, lang),
  maxColumns: (value, t, lang) => numberDetail(value, lang),
  maxRow: (value, t, lang) => numberDetail(value, lang),
  maxColumn: (value, t, lang) => numberDetail(value, lang),
};

/** The code a sentence is looked up by: an envelope-less `HTTP_413` reads as PAYLOAD_TOO_LARGE. */
function sentenceCode(error) {
  const code = typeof error?.code === 'string' ? error.code : '';
  const httpStatus = /^HTTP_(\d{3})$/.exec(code);
  if (httpStatus) return STATUS_CODES[Number(httpStatus[1])] ?? null;
  return code;
}

/** `{key, params}` of the sentence for `error` (an ApiError or `{code, status, details}`). */
export function errorSentenceKey(error, lang = 'en') {
  const t = (key, params) => translate(lang, key, params);
  const code = sentenceCode(error);
  if (code === null) return { key: 'error.http', params: { status: error?.status ?? '' } };
  if (!code || !hasKey(`error.${code}`)) return { key: 'error.unknown', params: { code: error?.code || '?' } };
  const details = error?.details && typeof error.details === 'object' ? error.details : {};
  for (const [suffix, needs] of DETAILED_SENTENCES[code] ?? []) {
    const params = {};
    const complete = needs.every((name) => {
      params[name] = DETAIL_WORDING[name](details[name], t, lang);
      return params[name] !== undefined;
    });
    if (complete) return { key: `error.${code}.${suffix}`, params };
  }
  return { key: `error.${code}`, params: {} };
}

/** How long the server asked to wait, in seconds (Retry-After header or details), or null. */
function waitSeconds(error) {
  const fromHeader = error?.retryAfterSeconds;
  if (isCount(fromHeader) && fromHeader > 0) return fromHeader;
  const fromDetails = error?.details?.retryAfterSeconds;
  return isCount(fromDetails) && fromDetails > 0 ? fromDetails : null;
}

/** One sentence, in `lang`, saying what went wrong and what to do about it. */
export function errorSentence(error, lang = 'en') {
  if (!error) return '';
  const { key, params } = errorSentenceKey(error, lang);
  const sentence = translate(lang, key, params);
  const wait = waitSeconds(error);
  if (wait === null) return sentence;
  return `${sentence} ${translate(lang, 'error.retryIn', {
    wait: formatDuration(wait, translate(lang, 'time.lessThanSecond')),
  })}`;
}

/**
 * A result row's error, which the API gives as "CODE: message" (or `{code, message}`):
 * the sentence for its code; a text without a code is shown as it is.
 */
export function rowErrorSentence(error, lang = 'en') {
  if (!error) return '';
  let parsed;
  if (typeof error === 'object') {
    if (!error.code) return String(error.message ?? '');
    parsed = error;
  } else {
    const coded = /^([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*):\s*([\s\S]*)$/.exec(String(error));
    if (!coded) return String(error);
    parsed = { code: coded[1], message: coded[2] };
  }
  if (errorSentenceKey(parsed, lang).key === 'error.unknown') {
    return translate(lang, 'error.unknownRow', { code: parsed.code });
  }
  return errorSentence(parsed, lang);
}
