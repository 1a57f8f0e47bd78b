// The caller's batches, newest first, ten at a time ("Load more" shows ten more), with a
// search by name and a filter by status; all client-side over GET /api/batch/list.
// Batches that are queued, processing or cancelling are polled for their status (every
// 1.5 s, every 15 s while the tab is hidden) and progress is announced politely to screen
// readers at each status change and every tenth. A batch seen to be cancelled here is read
// a little longer, until the rows that were in flight are counted (older servers answer
// a cancel with "cancelled" at once). `focusRequest` ({batchId}) brings one batch into
// view and moves the focus to it, clearing a search or filter that would hide it.
// `onBatchEnded` is called once per poll in which a batch went from active to final.

import { useCallback, useEffect, useId, useRef, useState } from 'react';
import { getStatus, listBatches } from '../api.js';
import { errorSentence } from '../errors.js';
import { BATCH_STATUSES, batchProgress, isActive, isSettling } from '../format.js';
import { labelOr } from '../i18n.js';
import { useLanguage } from '../LanguageContext.jsx';
import { usePolling } from '../usePolling.js';
import BatchCard, { batchHeadingId } from './BatchCard.jsx';

export const POLL_INTERVAL_MS = 1500;
export const HIDDEN_POLL_INTERVAL_MS = 15_000;
export const SETTLE_WINDOW_MS = 60_000;
export const LIST_PAGE_SIZE = 10;

function newestFirst(batches) {
  const time = (batch) => Date.parse(batch.createdAt) || 0;
  return [...batches].sort((a, b) => time(b) - time(a));
}

/** The batches whose name (or id) contains `query`, case-insensitively, with `status` (any when empty). */
export function matchingBatches(batches, { query = '', status = '' } = {}) {
  const needle = query.trim().toLocaleLowerCase();
  return batches.filter(
    (batch) =>
      (!status || batch.status === status) &&
      (!needle || `${batch.name ?? ''} ${batch.batchId}`.toLocaleLowerCase().includes(needle)),
  );
}

export default function BatchList({ refreshKey = 0, announce = () => {}, focusRequest = null, onBatchEnded = () => {} }) {
  const { lang, t } = useLanguage();
  const [batches, setBatches] = useState([]);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState(null);
  const [pollErrors, setPollErrors] = useState({});
  const [query, setQuery] = useState('');
  const [statusFilter, setStatusFilter] = useState('');
  const [limit, setLimit] = useState(LIST_PAGE_SIZE);
  const [focusTarget, setFocusTarget] = useState(null);
  const [deleted, setDeleted] = useState(null);
  const listHeading = useRef(null);
  const latest = useRef(batches);
  latest.current = batches;
  // batchId -> time until which a batch cancelled on this page is still read.
  const settleUntil = useRef({});
  const ids = useId();

  const markCancelled = (batchId) => {
    settleUntil.current[batchId] ??= Date.now() + SETTLE_WINDOW_MS;
  };
  const shouldPoll = (batch) =>
    isActive(batch.status) || (isSettling(batch) && (settleUntil.current[batch.batchId] ?? 0) > Date.now());

  const load = useCallback(async () => {
    setLoading(true);
    try {
      setBatches(newestFirst(await listBatches()));
      setError(null);
    } catch (caught) {
      setError(caught);
    } finally {
      setLoading(false);
    }
  }, []);

  useEffect(() => {
    load();
  }, [load, refreshKey]);

  const updateBatch = useCallback((update) => {
    if (update.status === 'cancelled') markCancelled(update.batchId);
    setBatches((current) =>
      current.map((batch) => (batch.batchId === update.batchId ? { ...batch, ...update } : batch)),
    );
  }, []);

  // A deleted batch leaves the list; the news is announced and the focus goes to the list's heading.
  const removeBatch = useCallback(
    (gone) => {
      setBatches((current) => current.filter((batch) => batch.batchId !== gone.batchId));
      setDeleted(t('list.deleted', { name: gone.name || gone.batchId }));
      announce(t('list.deleted', { name: gone.name || gone.batchId }));
      listHeading.current?.focus();
    },
    [announce, t],
  );

  const describe = (batch) => {
    const { percent } = batchProgress(batch);
    return t('batch.announce', {
      name: batch.name || batch.batchId,
      status: labelOr(t, `status.${batch.status}`, batch.status),
      percent,
    });
  };

  const poll = async () => {
    const running = latest.current.filter(shouldPoll);
    const answers = await Promise.allSettled(running.map((batch) => getStatus(batch.batchId)));
    const updates = {};
    const errors = {};
    const messages = [];
    let ended = false;
    answers.forEach((answer, index) => {
      const before = running[index];
      if (answer.status === 'rejected') {
        errors[before.batchId] = answer.reason;
        return;
      }
      const after = { ...before, ...answer.value };
      updates[before.batchId] = after;
      if (after.status === 'cancelled') markCancelled(after.batchId);
      if (isActive(before.status) && !isActive(after.status)) ended = true;
      const tenth = (batch) => Math.floor(batchProgress(batch).percent / 10);
      if (after.status !== before.status || tenth(after) !== tenth(before)) messages.push(describe(after));
    });
    setBatches((current) => current.map((batch) => updates[batch.batchId] || batch));
    setPollErrors(errors);
    if (messages.length > 0) announce(messages.join(' '));
    if (ended) onBatchEnded();
    if (Object.keys(errors).length > 0) throw new Error('status poll failed');
  };

  usePolling(poll, {
    enabled: batches.some(shouldPoll),
    intervalMs: POLL_INTERVAL_MS,
    hiddenIntervalMs: HIDDEN_POLL_INTERVAL_MS,
  });

  // A batch asked for (the upload's "Go to the batch"): shown, whatever the search, then
  // focused. Only a new request, or the batch arriving in the list, calls for this.
  const requestedIsListed = Boolean(focusRequest) && batches.some((batch) => batch.batchId === focusRequest.batchId);
  useEffect(() => {
    if (!focusRequest) return;
    const index = batches.findIndex((batch) => batch.batchId === focusRequest.batchId);
    if (index < 0) return; // not listed yet: tried again once it is
    const hidden = !matchingBatches([batches[index]], { query, status: statusFilter }).length;
    if (hidden) {
      setQuery('');
      setStatusFilter('');
    }
    const position = hidden ? index : matchingBatches(batches, { query, status: statusFilter }).indexOf(batches[index]);
    setLimit((current) => Math.max(current, Math.ceil((position + 1) / LIST_PAGE_SIZE) * LIST_PAGE_SIZE));
    setFocusTarget(focusRequest);
  }, [focusRequest, requestedIsListed]); // eslint-disable-line react-hooks/exhaustive-deps

  // Focus moves once the card it targets is drawn (after "Load more" or a request above).
  useEffect(() => {
    if (!focusTarget) return;
    const heading = document.getElementById(batchHeadingId(focusTarget.batchId));
    if (!heading) return;
    heading.scrollIntoView?.({ block: 'start', behavior: 'smooth' });
    heading.focus({ preventScroll: true });
    setFocusTarget(null);
  });

  const matching = matchingBatches(batches, { query, status: statusFilter });
  const shown = matching.slice(0, limit);
  const filtering = query.trim() !== '' || statusFilter !== '';

  const loadMore = () => {
    const next = matching[limit];
    setLimit((current) => current + LIST_PAGE_SIZE);
    if (next) setFocusTarget({ batchId: next.batchId });
  };

  const clearFilters = () => {
    setQuery('');
    setStatusFilter('');
    setLimit(LIST_PAGE_SIZE);
  };

  return (
    <section className="panel batch-list" aria-labelledby="list-heading" data-testid="batch-list">
      <div className="panel__header">
        <h2 id="list-heading" tabIndex={-1} ref={listHeading}>
          {t('list.heading')}
        </h2>
        <button type="button" className="button button--secondary button--small" onClick={load}>
          {t('list.refresh')}
        </button>
      </div>
      {deleted && (
        <p className="notice notice--success" data-testid="batch-deleted">
          {deleted}
        </p>
      )}
      {error && (
        <div className="notice notice--error" role="alert" data-testid="batch-list-error">
          <p>{t('list.error', { message: errorSentence(error, lang) })}</p>
        </div>
      )}
      {loading && batches.length === 0 && !error && <p role="status">{t('list.loading')}</p>}
      {!loading && !error && batches.length === 0 && <p data-testid="batch-list-empty">{t('list.empty')}</p>}
      {batches.length > 0 && (
        <>
          <div className="list-filters" role="search" aria-label={t('list.filtersLabel')}>
            <div className="field">
              <label htmlFor={`${ids}-search`}>{t('list.search')}</label>
              <input
                id={`${ids}-search`}
                type="search"
                className="input"
                value={query}
                data-testid="batch-search"
                onChange={(event) => {
                  setQuery(event.target.value);
                  setLimit(LIST_PAGE_SIZE);
                }}
              />
            </div>
            <div className="field">
              <label htmlFor={`${ids}-status`}>{t('list.statusFilter')}</label>
              <select
                id={`${ids}-status`}
                className="input"
                value={statusFilter}
                data-testid="batch-status-filter"
                onChange={(event) => {
                  setStatusFilter(event.target.value);
                  setLimit(LIST_PAGE_SIZE);
                }}
              >
                <option value="">{t('list.allStatuses')}</option>
                {BATCH_STATUSES.map((status) => (
                  <option key={status} value={status}>
                    {t(`status.${status}`)}
                  </option>
                ))}
              </select>
            </div>
          </div>
          <p className="list-count" role="status" data-testid="batch-list-count">
            {t('list.showing', { shown: shown.length, count: matching.length })}
          </p>
        </>
      )}
      {batches.length > 0 && matching.length === 0 && (
        <div className="list-empty-match">
          <p data-testid="batch-list-no-match">{t('list.noMatch')}</p>
          <button type="button" className="button button--secondary button--small" onClick={clearFilters}>
            {t('list.clearFilters')}
          </button>
        </div>
      )}
      {shown.length > 0 && (
        <ul className="batch-list__items" aria-busy={loading || undefined}>
          {shown.map((batch) => (
            <BatchCard
              key={batch.batchId}
              batch={batch}
              pollError={pollErrors[batch.batchId]}
              onUpdate={updateBatch}
              onDeleted={removeBatch}
            />
          ))}
        </ul>
      )}
      {matching.length > shown.length && (
        <button
          type="button"
          className="button button--secondary list-more"
          data-testid="batch-list-more"
          onClick={loadMore}
        >
          {t('list.loadMore')}
        </button>
      )}
      {filtering && matching.length > 0 && (
        <button type="button" className="button button--link list-clear" onClick={clearFilters}>
          {t('list.clearFilters')}
        </button>
      )}
    </section>
  );
}
