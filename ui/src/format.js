// Pure helpers that turn batch fields into what the page shows: statuses, progress,
// counts, durations, sizes and dates. No React here, so they are tested as plain functions.

/** Statuses a batch goes through before it is final; only these are polled. */
// `ingesting`: a file sent straight to storage whose rows are being written by steps.
export const ACTIVE_STATUSES = ['ingesting', 'queued', 'processing', 'cancelling'];
/** Statuses from which a cancel may be asked (a cancelling batch is already stopping). */
export const CANCELLABLE_STATUSES = ['ingesting', 'queued', 'processing'];
export const FINAL_STATUSES = ['processed', 'completed_with_errors', 'cancelled', 'failed'];
/** Every batch status, in the order a batch meets them (for the list's filter). */
export const BATCH_STATUSES = ['ingesting', 'queued', 'processing', 'cancelling', ...FINAL_STATUSES];
/** What became of a row, in the order the progress bar draws them. */
export const OUTCOMES = ['answered', 'blocked', 'failed', 'cancelled'];

/** True while a batch may still change (queued, processing or cancelling). */
export function isActive(status) {
  return ACTIVE_STATUSES.includes(status);
}

/** True when a batch may be deleted: final (a running batch's steps would write rows back). */
export function canDelete(status) {
  return FINAL_STATUSES.includes(status);
}

/** True when the cancel button applies: ingesting, queued or processing. */
export function canCancel(status) {
  return CANCELLABLE_STATUSES.includes(status);
}

/**
 * True for a cancelled batch whose counts have not settled yet: on a server without the
 * `cancelling` status, rows that were in flight finish and are recorded afterwards.
 */
export function isSettling(batch) {
  if (batch.status !== 'cancelled') return false;
  const { done, total } = batchProgress(batch);
  return done < total;
}

function count(value) {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

/**
 * What became of a batch's rows: `answered` (processedItems), `blocked` (blockedItems,
 * absent on older servers), `failed`, `cancelled`, the rows still `waiting`, their sum
 * `done`, the `total` (totalItems: the server counts every trial of every row) and `percent` (0–100, rounded down, so 100 means
 * every row is settled). Counters are clamped in that order so that they never add up
 * to more than the total, even when the server's counters overshoot for a moment.
 */
export function batchProgress(batch) {
  const trials = Number.isInteger(batch.trials) && batch.trials > 1 ? batch.trials : 1;
  const total = count(batch.totalItems);
  let room = total;
  const take = (value) => {
    const n = Math.min(count(value), room);
    room -= n;
    return n;
  };
  const answered = take(batch.processedItems);
  const blocked = take(batch.blockedItems);
  const failed = take(batch.failedItems);
  const cancelled = take(batch.cancelledItems);
  const done = total - room;
  const percent = total > 0 ? Math.floor((done / total) * 100) : 0;
  return { answered, blocked, failed, cancelled, waiting: room, done, total, trials, percent };
}

/**
 * The sentence under a batch's progress bar, as an i18n key and its parameters: a
 * cancelled or failed batch says how many rows were answered, not that it is 100 % done.
 */
export function progressSummary(batch) {
  const progress = batchProgress(batch);
  const params = { ...progress };
  switch (batch.status) {
    case 'cancelling':
      return { key: 'progress.cancelling', params };
    case 'cancelled':
      return { key: 'progress.cancelled', params };
    case 'failed':
      return { key: 'progress.failed', params };
    case 'processed':
    case 'completed_with_errors':
      return { key: 'progress.finished', params };
    default:
      return { key: 'progress.running', params };
  }
}

/** A count for people: "2,560" in English, "2 560" in French. */
export function formatCount(value, lang = 'en') {
  return count(value).toLocaleString(lang === 'fr' ? 'fr-CA' : 'en-CA');
}

function parseTime(value) {
  if (!value) return null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : ms;
}

/**
 * How long a finished batch took, in seconds: completedAt (or, failing that, updatedAt)
 * minus startedAt (or createdAt). Null while the batch runs or when a time is missing.
 */
export function batchDurationSeconds(batch) {
  if (isActive(batch.status)) return null;
  const end = parseTime(batch.completedAt) ?? parseTime(batch.updatedAt);
  const start = parseTime(batch.startedAt) ?? parseTime(batch.createdAt);
  if (end === null || start === null || end < start) return null;
  return (end - start) / 1000;
}

/** "1 h 2 min", "3 min 5 s", "42 s", "less than 1 s" (the last one from `lessThanSecond`). */
export function formatDuration(seconds, lessThanSecond = '< 1 s') {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '';
  if (seconds < 1) return lessThanSecond;
  const whole = Math.round(seconds);
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const secs = whole % 60;
  if (hours > 0) return minutes > 0 ? `${hours} h ${minutes} min` : `${hours} h`;
  if (minutes > 0) return secs > 0 ? `${minutes} min ${secs} s` : `${minutes} min`;
  return `${secs} s`;
}

/** A file size for people: "512 B", "12.3 KB", "4.5 MB" (comma decimals in French). */
export function formatBytes(bytes, lang = 'en') {
  const locale = lang === 'fr' ? 'fr-CA' : 'en-CA';
  const units = lang === 'fr' ? ['o', 'Ko', 'Mo', 'Go'] : ['B', 'KB', 'MB', 'GB'];
  let value = Math.max(0, Number(bytes) || 0);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 ? 0 : 1;
  return `${value.toLocaleString(locale, { maximumFractionDigits: digits })} ${units[unit]}`;
}

/** A timestamp in the reader's language and time zone, or "" when missing. */
export function formatDateTime(value, lang = 'en') {
  const ms = parseTime(value);
  if (ms === null) return '';
  return new Intl.DateTimeFormat(lang === 'fr' ? 'fr-CA' : 'en-CA', {
    dateStyle: 'medium',
    timeStyle: 'short',
  }).format(new Date(ms));
}
