// Client of the batch HTTP contract (shared/api.md). Every request carries the bearer
// token; every non-2xx answer becomes an ApiError built from the error envelope
// `{"error": {"code", "message", "details"}}`. A 401 also signs the page out.

import { clearToken, getToken } from './auth.js';

export const API_BASE = '/api/batch';

/**
 * An HTTP failure from the API, with the server's status, code, message and details, and
 * the seconds its `Retry-After` header asked to wait (null without one). The page shows
 * people the sentence `errorSentence` makes of it (errors.js), never the raw message.
 */
export class ApiError extends Error {
  constructor({ status, code, message, details = null, retryAfterSeconds = null }) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** Seconds from a `Retry-After` header given in seconds (the API's form); null otherwise. */
export function retryAfterSeconds(header) {
  const text = String(header ?? '').trim();
  return /^\d+$/.test(text) ? Number(text) : null;
}

/** Builds the ApiError for a non-2xx response; tolerates bodies that are not JSON. */
export async function errorFromResponse(response) {
  let text = '';
  try {
    text = await response.text();
  } catch {
    text = '';
  }
  let envelope = null;
  try {
    envelope = JSON.parse(text)?.error;
  } catch {
    envelope = null;
  }
  const status = response.status;
  const retry = retryAfterSeconds(response.headers?.get?.('Retry-After'));
  const fallback = `The server answered HTTP ${status}${response.statusText ? ` ${response.statusText}` : ''}.`;
  if (envelope && typeof envelope === 'object') {
    return new ApiError({
      status,
      code: typeof envelope.code === 'string' && envelope.code ? envelope.code : `HTTP_${status}`,
      message: typeof envelope.message === 'string' && envelope.message ? envelope.message : fallback,
      details: envelope.details ?? null,
      retryAfterSeconds: retry,
    });
  }
  return new ApiError({ status, code: `HTTP_${status}`, message: fallback, retryAfterSeconds: retry });
}

/** Sends one request with the bearer header; resolves to the 2xx Response. */
export async function request(path, { method = 'GET', headers = {}, body } = {}) {
  const token = getToken();
  const allHeaders = { Accept: 'application/json', ...headers };
  if (token) allHeaders.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, { method, headers: allHeaders, body, credentials: 'same-origin' });
  } catch (cause) {
    const error = new ApiError({
      status: 0,
      code: 'NETWORK_ERROR',
      message: 'The server could not be reached. Check your connection and try again.',
    });
    error.cause = cause;
    throw error;
  }
  if (response.ok) return response;
  const error = await errorFromResponse(response);
  if (response.status === 401) clearToken('expired');
  throw error;
}

async function requestJson(path, options) {
  const response = await request(path, options);
  if (response.status === 204) return null;
  return response.json();
}

function withId(path, batchId, extra = {}) {
  const query = new URLSearchParams({ batchId, ...extra });
  return `${API_BASE}/${path}?${query}`;
}

/** POST /api/batch/create with the upload form (multipart); resolves to {batchId, status, totalItems, warnings}. */
export function createBatch(formData) {
  // No Content-Type header: the browser sets multipart/form-data with its boundary.
  return requestJson(`${API_BASE}/create`, { method: 'POST', body: formData });
}

/** Builds the multipart body that create expects from the upload form's values (concurrency is optional). */
export function buildCreateForm({
  file,
  uploadId,
  batchName,
  aiProvider,
  searchProvider,
  lang,
  applyOverrides,
  concurrency,
}) {
  const form = new FormData();
  if (uploadId) form.append('uploadId', uploadId);
  else form.append('file', file, file.name);
  form.append('batchName', batchName);
  form.append('aiProvider', aiProvider);
  form.append('searchProvider', searchProvider);
  form.append('lang', lang);
  form.append('applyOverrides', applyOverrides ? 'true' : 'false');
  if (concurrency !== undefined && concurrency !== null && concurrency !== '') {
    form.append('concurrency', String(concurrency));
  }
  return form;
}

/**
 * GET /api/batch/options: what this deployment lets an upload choose,
 * {aiProviders, searchProviders, defaults: {aiProvider, searchProvider, concurrency}, limits}.
 */
export function getOptions() {
  return requestJson(`${API_BASE}/options`);
}

/** GET /api/batch/list: the caller's batch summaries, newest first. */
export async function listBatches() {
  const batches = await requestJson(`${API_BASE}/list`);
  return Array.isArray(batches) ? batches : [];
}

/** GET /api/batch/status for one batch. */
export function getStatus(batchId) {
  return requestJson(withId('status', batchId));
}

/** GET /api/batch/results as JSON: {batchId, status, columns, items}. */
export function getResults(batchId) {
  return requestJson(withId('results', batchId, { format: 'json' }));
}

/** The table's page parameters the server takes (lib/results_page.py); empty ones are left out. */
export const PAGE_PARAMS = ['offset', 'limit', 'status', 'blockedBy', 'answerType', 'chat', 'q', 'sort', 'flag'];

/**
 * GET /api/batch/results as one page of JSON: {batchId, status, columns, total, offset,
 * limit, items}, filtered (status, blockedBy, answerType, chat), searched (q) and sorted
 * (rowNumber, -rowNumber, responseTimeMs, -responseTimeMs) by the server.
 */
export function getResultsPage(batchId, params = {}) {
  const extra = { format: 'json', offset: '0' };
  for (const name of PAGE_PARAMS) {
    const value = params[name];
    if (value !== undefined && value !== null && String(value).trim() !== '') extra[name] = String(value).trim();
  }
  return requestJson(withId('results', batchId, extra));
}

/**
 * POST /api/batch/delete until the batch is gone: the server answers 202 while rows are
 * left (each call works for a few seconds), 200 `{batchId, deleted: true}` at the end.
 */
export async function deleteBatch(batchId, { maxCalls = 500 } = {}) {
  for (let call = 0; call < maxCalls; call += 1) {
    const response = await request(`${API_BASE}/delete`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ batchId }),
    });
    const answer = await response.json();
    if (response.status === 200 && answer?.deleted) return answer;
  }
  throw new ApiError({ status: 0, code: 'DELETE_UNFINISHED', message: 'The batch is not fully deleted yet.' });
}

/** POST /api/batch/upload-url: a presigned form for a file past the request cap, {uploadId, url, fields, maxBytes}. */
export function requestUploadUrl({ fileName, size, contentType }) {
  return requestJson(`${API_BASE}/upload-url`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ fileName, size, contentType }),
  });
}

/** The content type upload-url expects for a file, from its extension. */
export function uploadContentType(fileName) {
  return /\.xlsx$/i.test(String(fileName ?? ''))
    ? 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet'
    : 'text/csv';
}

/**
 * Posts the file straight to storage with the presigned form (every field, then the file
 * last), reporting progress as `onProgress(loaded, total)`. XMLHttpRequest, because fetch
 * has no upload progress. Resolves when storage has it; rejects with an ApiError otherwise.
 */
export function postToStorage(presigned, file, { onProgress = () => {}, XHR = globalThis.XMLHttpRequest } = {}) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [name, value] of Object.entries(presigned?.fields ?? {})) form.append(name, value);
    form.append('file', file, file.name);
    const xhr = new XHR();
    xhr.open('POST', presigned.url);
    xhr.upload.onprogress = (event) => onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(file.size, file.size);
        resolve();
      } else {
        reject(new ApiError({ status: xhr.status, code: 'STORAGE_UPLOAD_FAILED', message: 'Storage refused the file.' }));
      }
    };
    const unreachable = () =>
      reject(new ApiError({ status: 0, code: 'STORAGE_UNREACHABLE', message: 'Storage could not be reached.' }));
    xhr.onerror = unreachable;
    xhr.ontimeout = unreachable;
    xhr.send(form);
  });
}

/** The results URL for a format (json, csv, xlsx); it needs the bearer header, so fetch it. */
export function resultsUrl(batchId, format = 'json') {
  return withId('results', batchId, { format });
}

/**
 * POST /api/batch/cancel; resolves to {batchId, status}: "cancelling" while rows in flight
 * finish, "cancelled" when none was in flight.
 */
export function cancelBatch(batchId) {
  return requestJson(`${API_BASE}/cancel`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ batchId }),
  });
}

/**
 * The file name in a Content-Disposition header (RFC 6266: `filename*` wins over
 * `filename`), or null.
 */
export function fileNameFromDisposition(header) {
  if (!header) return null;
  const extended = /filename\*\s*=\s*([^']*)'[^']*'([^;]+)/i.exec(header);
  if (extended) {
    try {
      return decodeURIComponent(extended[2].trim().replace(/^"|"$/g, ''));
    } catch {
      // fall through to the plain parameter
    }
  }
  const quoted = /filename\s*=\s*"((?:[^"\\]|\\.)*)"/i.exec(header);
  if (quoted) return quoted[1].replace(/\\(.)/g, '$1');
  const plain = /filename\s*=\s*([^;]+)/i.exec(header);
  return plain ? plain[1].trim() : null;
}

/**
 * A file name for a download the server did not name: the batch's name without the
 * characters file systems refuse, else `batch-<id>`, with the format's extension.
 */
export function downloadFileName(batchName, batchId, format) {
  const cleaned = String(batchName ?? '')
    .replace(/[\u0000-\u001f\u007f<>:"/\\|?*]+/g, '_')
    .replace(/^[\s.]+|[\s.]+$/g, '')
    .slice(0, 120);
  return `${cleaned || `batch-${batchId}`}.${format}`;
}

/**
 * Fetches the results as `csv`, `xlsx` or `json` with the bearer header and saves the blob
 * under the server's file name (or one made from `batchName`). Resolves to the name used.
 */
export async function downloadResults(batchId, format, { batchName, doc = document } = {}) {
  const response = await request(resultsUrl(batchId, format), { headers: { Accept: '*/*' } });
  const blob = await response.blob();
  const fileName =
    fileNameFromDisposition(response.headers.get('Content-Disposition')) ||
    downloadFileName(batchName, batchId, format);
  saveBlob(blob, fileName, doc);
  return fileName;
}

function saveBlob(blob, fileName, doc) {
  const url = URL.createObjectURL(blob);
  const link = doc.createElement('a');
  link.href = url;
  link.download = fileName;
  link.hidden = true;
  doc.body.appendChild(link);
  link.click();
  link.remove();
  // Revoking at once can abort the download in some browsers; a minute is plenty.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
