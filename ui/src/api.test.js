import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  ApiError,
  buildCreateForm,
  cancelBatch,
  createBatch,
  downloadFileName,
  downloadResults,
  fileNameFromDisposition,
  getOptions,
  getResults,
  getStatus,
  listBatches,
  resultsUrl,
} from './api.js';
import { TOKEN_KEY, getToken, onAuthChange } from './auth.js';
import { batchSummary, errorResponse, installFetch, jsonResponse } from './test/fakeFetch.js';

const TOKEN = 'header.payload.signature';

beforeEach(() => {
  sessionStorage.setItem(TOKEN_KEY, TOKEN);
});

describe('requests', () => {
  it('lists batches with GET and the bearer token', async () => {
    const fetch = installFetch({ 'GET /api/batch/list': () => jsonResponse(200, [batchSummary()]) });

    const batches = await listBatches();

    expect(batches).toEqual([batchSummary()]);
    const [request] = fetch.requests;
    expect(request.url).toBe('/api/batch/list');
    expect(request.method).toBe('GET');
    expect(request.headers.Authorization).toBe(`Bearer ${TOKEN}`);
    expect(request.headers.Accept).toBe('application/json');
  });

  it('sends no Authorization header when signed out', async () => {
    sessionStorage.clear();
    const fetch = installFetch({ 'GET /api/batch/list': () => jsonResponse(200, []) });

    await listBatches();

    expect(fetch.requests[0].headers).not.toHaveProperty('Authorization');
  });

  it('asks for a status with the batch id in the query, encoded', async () => {
    const fetch = installFetch({ 'GET /api/batch/status': () => jsonResponse(200, batchSummary()) });

    await getStatus('a b&c');

    expect(fetch.requests[0].url).toBe('/api/batch/status?batchId=a+b%26c');
    expect(fetch.requests[0].query).toEqual({ batchId: 'a b&c' });
  });

  it('reads results as JSON', async () => {
    const body = { batchId: 'b1', status: 'processed', items: [{ status: 'succeeded' }] };
    const fetch = installFetch({ 'GET /api/batch/results': () => jsonResponse(200, body) });

    await expect(getResults('b1')).resolves.toEqual(body);
    expect(fetch.requests[0].url).toBe('/api/batch/results?batchId=b1&format=json');
  });

  it('builds results URLs for each format', () => {
    expect(resultsUrl('b1', 'csv')).toBe('/api/batch/results?batchId=b1&format=csv');
    expect(resultsUrl('b1', 'xlsx')).toBe('/api/batch/results?batchId=b1&format=xlsx');
  });

  it('cancels with a JSON body', async () => {
    const fetch = installFetch({
      'POST /api/batch/cancel': () => jsonResponse(200, { batchId: 'b1', status: 'cancelled' }),
    });

    await expect(cancelBatch('b1')).resolves.toEqual({ batchId: 'b1', status: 'cancelled' });
    const [request] = fetch.requests;
    expect(request.method).toBe('POST');
    expect(request.headers['Content-Type']).toBe('application/json');
    expect(request.headers.Authorization).toBe(`Bearer ${TOKEN}`);
    expect(JSON.parse(request.body)).toEqual({ batchId: 'b1' });
  });

  it('creates a batch with a multipart body holding every field', async () => {
    const fetch = installFetch({
      'POST /api/batch/create': () =>
        jsonResponse(202, { batchId: 'new', status: 'queued', totalItems: 2, warnings: [] }),
    });
    const file = new File(['REDACTEDQUESTION\nHello?\n'], 'questions.csv', { type: 'text/csv' });

    const created = await createBatch(
      buildCreateForm({
        file,
        batchName: 'My batch',
        aiProvider: 'openai',
        searchProvider: 'canadaca',
        lang: 'fr',
        applyOverrides: true,
      }),
    );

    expect(created.batchId).toBe('new');
    const [request] = fetch.requests;
    expect(request.method).toBe('POST');
    expect(request.url).toBe('/api/batch/create');
    // The browser must set multipart/form-data with its boundary itself.
    expect(request.headers).not.toHaveProperty('Content-Type');
    expect(request.headers.Authorization).toBe(`Bearer ${TOKEN}`);
    const form = request.body;
    expect(form).toBeInstanceOf(FormData);
    expect(form.get('file').name).toBe('questions.csv');
    expect(form.get('batchName')).toBe('My batch');
    expect(form.get('aiProvider')).toBe('openai');
    expect(form.get('searchProvider')).toBe('canadaca');
    expect(form.get('lang')).toBe('fr');
    expect(form.get('applyOverrides')).toBe('true');
  });

  it('sends applyOverrides "false" when unchecked', () => {
    const file = new File(['x'], 'a.csv');
    const form = buildCreateForm({
      file,
      batchName: 'n',
      aiProvider: 'offline',
      searchProvider: 'offline',
      lang: 'en',
      applyOverrides: false,
    });
    expect(form.get('applyOverrides')).toBe('false');
    expect(form.has('concurrency')).toBe(false); // the server's default then applies
  });

  it('sends the concurrency when one is chosen', () => {
    const form = buildCreateForm({
      file: new File(['x'], 'a.csv'),
      batchName: 'n',
      aiProvider: 'offline',
      searchProvider: 'offline',
      lang: 'en',
      applyOverrides: false,
      concurrency: 16,
    });
    expect(form.get('concurrency')).toBe('16');
  });

  it('reads the upload options with the bearer header', async () => {
    const options = {
      aiProviders: ['offline', 'openai'],
      searchProviders: ['offline'],
      defaults: { aiProvider: 'openai', searchProvider: 'offline', concurrency: 8 },
      limits: { maxConcurrency: 32, maxBatchRows: 10000, maxUploadBytes: 4718592, maxNameChars: 200 },
    };
    const fetch = installFetch({ 'GET /api/batch/options': () => jsonResponse(200, options) });

    expect(await getOptions()).toEqual(options);
    expect(fetch.requests[0].headers.Authorization).toBe(`Bearer ${TOKEN}`);
  });
});

describe('errors', () => {
  it('turns the error envelope into an ApiError with status, code, message and details', async () => {
    installFetch({
      'POST /api/batch/create': () =>
        errorResponse(400, 'MISSING_QUESTION_COLUMN', 'No question column.', { columns: ['a', 'b'] }),
    });

    const error = await createBatch(new FormData()).catch((caught) => caught);

    expect(error).toBeInstanceOf(ApiError);
    expect(error.status).toBe(400);
    expect(error.code).toBe('MISSING_QUESTION_COLUMN');
    expect(error.message).toBe('No question column.');
    expect(error.details).toEqual({ columns: ['a', 'b'] });
  });

  it('falls back to a generic message when the error body is not JSON', async () => {
    installFetch({
      'GET /api/batch/list': () => new Response('<html>Bad gateway</html>', { status: 502, statusText: 'Bad Gateway' }),
    });

    const error = await listBatches().catch((caught) => caught);

    expect(error).toBeInstanceOf(ApiError);
    expect(error.status).toBe(502);
    expect(error.code).toBe('HTTP_502');
    expect(error.message).toBe('The server answered HTTP 502 Bad Gateway.');
  });

  it('falls back when the JSON body has no error envelope', async () => {
    installFetch({ 'GET /api/batch/status': () => jsonResponse(500, { detail: 'oops' }) });

    const error = await getStatus('b1').catch((caught) => caught);

    expect(error.code).toBe('HTTP_500');
    expect(error.message).toMatch(/HTTP 500/);
  });

  it('keeps how long the server asked to wait (Retry-After, in seconds)', async () => {
    installFetch({
      'POST /api/batch/create': () => errorResponse(503, 'DATABASE_UNAVAILABLE', 'The database is unreachable.'),
      'GET /api/batch/list': () =>
        new Response(JSON.stringify({ error: { code: 'CREATE_RATE_LIMITED', message: 'x' } }), {
          status: 429,
          headers: { 'Content-Type': 'application/json', 'Retry-After': '12' },
        }),
    });

    await expect(listBatches()).rejects.toMatchObject({ status: 429, retryAfterSeconds: 12 });
    await expect(createBatch(new FormData())).rejects.toMatchObject({ status: 503, retryAfterSeconds: null });
  });

  it('passes on a cancel answered with "cancelling" (rows in flight are finishing)', async () => {
    installFetch({ 'POST /api/batch/cancel': () => jsonResponse(200, { batchId: 'b1', status: 'cancelling' }) });

    await expect(cancelBatch('b1')).resolves.toEqual({ batchId: 'b1', status: 'cancelling' });
  });

  it('keeps the status of a 409 on cancel', async () => {
    installFetch({ 'POST /api/batch/cancel': () => errorResponse(409, 'BATCH_FINISHED', 'Already finished.') });

    await expect(cancelBatch('b1')).rejects.toMatchObject({ status: 409, code: 'BATCH_FINISHED' });
  });

  it('signs out on 401: the token is cleared and listeners hear "expired"', async () => {
    installFetch({ 'GET /api/batch/list': () => errorResponse(401, 'UNAUTHORIZED', 'Token expired.') });
    const listener = vi.fn();
    const unsubscribe = onAuthChange(listener);

    await expect(listBatches()).rejects.toMatchObject({ status: 401, code: 'UNAUTHORIZED' });

    expect(getToken()).toBeNull();
    expect(listener).toHaveBeenCalledWith({ signedIn: false, reason: 'expired' });
    unsubscribe();
  });

  it('keeps the token on other errors', async () => {
    installFetch({ 'GET /api/batch/status': () => errorResponse(404, 'NOT_FOUND', 'No such batch.') });

    await expect(getStatus('b1')).rejects.toMatchObject({ status: 404 });
    expect(getToken()).toBe(TOKEN);
  });

  it('reports a network failure as NETWORK_ERROR', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(async () => Promise.reject(new TypeError('Failed to fetch'))),
    );

    await expect(listBatches()).rejects.toMatchObject({ status: 0, code: 'NETWORK_ERROR' });
  });
});

describe('downloads', () => {
  let createObjectURL;
  let revokeObjectURL;

  beforeEach(() => {
    createObjectURL = URL.createObjectURL;
    revokeObjectURL = URL.revokeObjectURL;
    URL.createObjectURL = vi.fn(() => 'blob:results');
    URL.revokeObjectURL = vi.fn();
  });

  afterEach(() => {
    URL.createObjectURL = createObjectURL;
    URL.revokeObjectURL = revokeObjectURL;
  });

  it.each([
    ['attachment; filename="My batch.csv"', 'My batch.csv'],
    ['attachment; filename=results.xlsx', 'results.xlsx'],
    ['attachment; filename="fallback.csv"; filename*=UTF-8\'\'Lot%20%C3%A9t%C3%A9.csv', 'Lot été.csv'],
    ['attachment; filename="say \\"hi\\".csv"', 'say "hi".csv'],
    ['attachment', null],
    [null, null],
  ])('reads the file name from %j', (header, expected) => {
    expect(fileNameFromDisposition(header)).toBe(expected);
  });

  it('fetches the file with the bearer token and saves it under the server’s name', async () => {
    const fetch = installFetch({
      'GET /api/batch/results': () =>
        new Response('chatId,answer\n', {
          status: 200,
          headers: { 'Content-Type': 'text/csv', 'Content-Disposition': 'attachment; filename="Passports.csv"' },
        }),
    });
    const clicked = [];
    const click = vi.spyOn(HTMLAnchorElement.prototype, 'click').mockImplementation(function record() {
      clicked.push({ href: this.href, download: this.download });
    });

    const name = await downloadResults('b1', 'csv');

    expect(name).toBe('Passports.csv');
    expect(fetch.requests[0].url).toBe('/api/batch/results?batchId=b1&format=csv');
    expect(fetch.requests[0].headers.Authorization).toBe(`Bearer ${TOKEN}`);
    const [blob] = URL.createObjectURL.mock.calls[0];
    await expect(blob.text()).resolves.toBe('chatId,answer\n');
    expect(click).toHaveBeenCalledTimes(1);
    expect(clicked).toEqual([{ href: 'blob:results', download: 'Passports.csv' }]);
    expect(document.querySelector('a[download]')).toBeNull();
  });

  it('names the file after the batch when the server gives no name', async () => {
    installFetch({ 'GET /api/batch/results': () => new Response('x', { status: 200 }) });
    vi.spyOn(HTMLAnchorElement.prototype, 'click').mockImplementation(() => {});

    await expect(downloadResults('b1', 'xlsx')).resolves.toBe('batch-b1.xlsx');
  });

  it('downloads the JSON results as a .json file named after the batch', async () => {
    const fetch = installFetch({
      'GET /api/batch/results': () => jsonResponse(200, { batchId: 'b1', status: 'processed', columns: [], items: [] }),
    });
    const saved = [];
    vi.spyOn(HTMLAnchorElement.prototype, 'click').mockImplementation(function record() {
      saved.push(this.download);
    });

    await expect(downloadResults('b1', 'json', { batchName: 'Passports: March' })).resolves.toBe(
      'Passports_ March.json',
    );
    expect(fetch.requests[0].url).toBe('/api/batch/results?batchId=b1&format=json');
    expect(saved).toEqual(['Passports_ March.json']);
  });

  it.each([
    ['Passports', 'json', 'Passports.json'],
    ['a/b\\c?.csv', 'csv', 'a_b_c_.csv.csv'],
    ['  ..  ', 'json', 'batch-b1.json'],
    [undefined, 'xlsx', 'batch-b1.xlsx'],
  ])('makes a file name of %j for %s: %j', (name, format, expected) => {
    expect(downloadFileName(name, 'b1', format)).toBe(expected);
  });

  it('throws the ApiError of a failed download', async () => {
    installFetch({ 'GET /api/batch/results': () => errorResponse(404, 'NOT_FOUND', 'No such batch.') });

    await expect(downloadResults('b1', 'csv')).rejects.toMatchObject({ status: 404, code: 'NOT_FOUND' });
    expect(URL.createObjectURL).not.toHaveBeenCalled();
  });
});
