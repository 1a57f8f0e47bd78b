// The caller's batches, newest first. Batches that are queued or processing are polled
// for their status (every 1.5 s, every 15 s while the tab is hidden) and progress is
// announced politely to screen readers at each status change and every tenth. A batch
// seen to be cancelled here is read a little longer, until the rows that were in flight
// are counted.

import { useCallback, useEffect, useRef, useState } from 'react';
import { getStatus, listBatches } from '../api.js';
import { batchProgress, isActive, isSettling } from '../format.js';
import { labelOr } from '../i18n.js';
import { useLanguage } from '../LanguageContext.jsx';
import { usePolling } from '../usePolling.js';
import BatchCard from './BatchCard.jsx';

export const POLL_INTERVAL_MS = 1500;
export const HIDDEN_POLL_INTERVAL_MS = 15_000;
export const SETTLE_WINDOW_MS = 60_000;

function newestFirst(batches) {
  const time = (batch) => Date.parse(batch.createdAt) || 0;
  return [...batches].sort((a, b) => time(b) - time(a));
}

export default function BatchList({ refreshKey = 0, announce = () => {} }) {
  const { t } = useLanguage();
  const [batches, setBatches] = useState([]);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState(null);
  const [pollErrors, setPollErrors] = useState({});
  const latest = useRef(batches);
  latest.current = batches;
  // batchId -> time until which a batch cancelled on this page is still read.
  const settleUntil = useRef({});

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
    answers.forEach((answer, index) => {
      const before = running[index];
      if (answer.status === 'rejected') {
        errors[before.batchId] = answer.reason?.message || String(answer.reason);
        return;
      }
      const after = { ...before, ...answer.value };
      updates[before.batchId] = after;
      if (after.status === 'cancelled') markCancelled(after.batchId);
      const tenth = (batch) => Math.floor(batchProgress(batch).percent / 10);
      if (after.status !== before.status || tenth(after) !== tenth(before)) messages.push(describe(after));
    });
    setBatches((current) => current.map((batch) => updates[batch.batchId] || batch));
    setPollErrors(errors);
    if (messages.length > 0) announce(messages.join(' '));
    if (Object.keys(errors).length > 0) throw new Error('status poll failed');
  };

  usePolling(poll, {
    enabled: batches.some(shouldPoll),
    intervalMs: POLL_INTERVAL_MS,
    hiddenIntervalMs: HIDDEN_POLL_INTERVAL_MS,
  });

  return (
    <section className="panel batch-list" aria-labelledby="list-heading" data-testid="batch-list">
      <div className="panel__header">
        <h2 id="list-heading">{t('list.heading')}</h2>
        <button type="button" className="button button--secondary button--small" onClick={load}>
          {t('list.refresh')}
        </button>
      </div>
      {error && (
        <div className="notice notice--error" role="alert" data-testid="batch-list-error">
          <p>
            {t('list.error')} ({error.code}): {error.message}
          </p>
        </div>
      )}
      {loading && batches.length === 0 && !error && <p role="status">{t('list.loading')}</p>}
      {!loading && !error && batches.length === 0 && <p data-testid="batch-list-empty">{t('list.empty')}</p>}
      {batches.length > 0 && (
        <ul className="batch-list__items" aria-busy={loading || undefined}>
          {batches.map((batch) => (
            <BatchCard key={batch.batchId} batch={batch} pollError={pollErrors[batch.batchId]} onUpdate={updateBatch} />
          ))}
        </ul>
      )}
    </section>
  );
}
