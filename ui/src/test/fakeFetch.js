// A stand-in for the browser's fetch (the outside world): routes "METHOD /path" to
// handlers and records every call with its URL, method, headers and body.

import { vi } from 'vitest';

export function jsonResponse(status, body, headers = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json', ...headers },
  });
}

export function errorResponse(status, code, message, details) {
  const error = { code, message };
  if (details) error.details = details;
  return jsonResponse(status, { error });
}

/**
 * Installs a fake fetch. `routes` maps "GET /api/batch/list" to a handler
 * `({url, query, method, headers, body}) => Response | Promise<Response>`; an unrouted
 * call answers 404. Returns the vi.fn, whose `.requests` lists the calls.
 */
export function installFetch(routes = {}) {
  const requests = [];
  const fetch = vi.fn(async (input, init = {}) => {
    const url = new URL(String(input), 'http://localhost');
    const method = (init.method || 'GET').toUpperCase();
    const headers = { ...(init.headers || {}) };
    const request = {
      url: String(input),
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      method,
      headers,
      body: init.body,
    };
    requests.push(request);
    const handler = routes[`${method} ${url.pathname}`];
    if (!handler) return errorResponse(404, 'NOT_FOUND', `No route for ${method} ${url.pathname}`);
    return handler(request);
  });
  fetch.requests = requests;
  vi.stubGlobal('fetch', fetch);
  return fetch;
}

/** A batch summary as GET /api/batch/list and /status return it. */
export function batchSummary(overrides = {}) {
  return {
    batchId: 'b1',
    name: 'Passport questions',
    status: 'queued',
    totalItems: 10,
    processedItems: 0,
    failedItems: 0,
    cancelledItems: 0,
    createdAt: '2025-03-01T10:00:00Z',
    updatedAt: '2025-03-01T10:00:00Z',
    startedAt: null,
    completedAt: null,
    aiProvider: 'offline',
    searchProvider: 'offline',
    pageLanguage: 'en',
    percentComplete: 0,
    etaSeconds: null,
    ...overrides,
  };
}
