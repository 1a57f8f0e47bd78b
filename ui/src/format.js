// Pure helpers that turn batch fields into what the page shows: progress, durations,
// sizes and dates. No React here, so they are tested as plain functions.

export const ACTIVE_STATUSES = ['queued', 'processing'];
export const FINAL_STATUSES = ['processed', 'completed_with_errors', 'cancelled', 'failed'];

/** True while a batch may still change (queued or processing). */
export function isActive(status) {
  return ACTIVE_STATUSES.includes(status);
}

/**
 * True for a cancelled batch whose counts have not settled yet: rows that were in flight
 * when it was cancelled finish and are recorded afterwards.
 */
export function isSettling(batch) {
  if (batch.status !== 'cancelled') return false;
  const { done, total } = batchProgress(batch);
  return done < total;
}

function count(value) {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/**
 * Progress of a batch: `done` rows (processed, failed or cancelled: no longer waiting),
 * `total`, and `percent` (0–100, an integer). The server's `percentComplete`, computed
 * the same way, wins when present.
 */
export function batchProgress(batch) {
  const total = count(batch.totalItems);
  const done = Math.min(total, count(batch.processedItems) + count(batch.failedItems) + count(batch.cancelledItems));
  let percent;
  if (typeof batch.percentComplete === 'number' && Number.isFinite(batch.percentComplete)) {
    percent = batch.percentComplete;
  } else {
    percent = total > 0 ? (done / total) * 100 : 0;
  }
  if (batch.status === 'processed' || batch.status === 'completed_with_errors') percent = 100;
  percent = Math.max(0, Math.min(100, Math.floor(percent)));
  return { done, total, percent };
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
