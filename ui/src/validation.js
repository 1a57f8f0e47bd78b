// Checks made in the browser before an upload, so that the obvious mistakes are caught
// without a round trip. The server checks everything again.

import { formatBytes } from './format.js';

/** Vercel's request body cap, which the API enforces too (413). */
export const MAX_UPLOAD_BYTES = 4_718_592; // 4.5 MB
export const MAX_NAME_LENGTH = 200;
/** The most conversations a batch may run at once, unless the server's options say otherwise. */
export const MAX_CONCURRENCY = 32;
export const ACCEPTED_EXTENSIONS = ['.csv', '.xlsx'];

/** The lower-cased extension of a file name, with its dot ("" when there is none). */
export function extensionOf(fileName) {
  const dot = String(fileName || '').lastIndexOf('.');
  return dot < 0 ? '' : fileName.slice(dot).toLowerCase();
}

/**
 * Whether a file goes straight to storage (presigned upload-url) rather than in the
 * create request: only past the request cap, and only where the deployment allows it.
 */
export function goesDirect(file, { maxBytes = MAX_UPLOAD_BYTES, maxDirectBytes = 0 } = {}) {
  return Boolean(file) && file.size > maxBytes && maxDirectBytes > maxBytes && file.size <= maxDirectBytes;
}

/**
 * The problems with an upload, as `{field, key, params}` (key is an i18n key), in the
 * order the fields appear on the form. An empty list means the upload may go.
 * `maxBytes` is the create request's cap; `maxDirectBytes` (0: no object storage) the
 * cap of a file sent straight to storage.
 */
export function validateUpload(
  { file, batchName, concurrency = '', maxConcurrency = MAX_CONCURRENCY, maxBytes = MAX_UPLOAD_BYTES, maxDirectBytes = 0 },
  lang = 'en',
) {
  const locale = lang === 'fr' ? 'fr-CA' : 'en-CA';
  const problems = [];
  if (!file) {
    problems.push({ field: 'file', key: 'validation.fileRequired', params: {} });
  } else if (!ACCEPTED_EXTENSIONS.includes(extensionOf(file.name))) {
    problems.push({ field: 'file', key: 'validation.fileType', params: { name: file.name } });
  } else if (file.size === 0) {
    problems.push({ field: 'file', key: 'validation.fileEmpty', params: { name: file.name } });
  } else if (file.size > Math.max(maxBytes, maxDirectBytes)) {
    const limit = Math.max(maxBytes, maxDirectBytes);
    problems.push({
      field: 'file',
      key: 'validation.fileTooLarge',
      params: {
        name: file.name,
        size: formatBytes(file.size, lang),
        bytes: file.size.toLocaleString(locale),
        limitSize: formatBytes(limit, lang),
        limit: limit.toLocaleString(locale),
      },
    });
  }
  const name = String(batchName || '').trim();
  const length = [...name].length; // code points, as the server counts them
  if (length === 0) {
    problems.push({ field: 'batchName', key: 'validation.nameRequired', params: {} });
  } else if (length > MAX_NAME_LENGTH) {
    problems.push({ field: 'batchName', key: 'validation.nameTooLong', params: { count: length } });
  }
  const rows = String(concurrency ?? '').trim();
  if (rows !== '' && (!/^\d+$/.test(rows) || Number(rows) < 1 || Number(rows) > maxConcurrency)) {
    problems.push({ field: 'concurrency', key: 'validation.concurrency', params: { max: maxConcurrency } });
  }
  return problems;
}

/** A default batch name from a file name: "questions-en.csv" -> "questions-en". */
export function nameFromFile(fileName) {
  const base = String(fileName || '').replace(/\.[^.]*$/, '');
  return [...base].slice(0, MAX_NAME_LENGTH).join('');
}
