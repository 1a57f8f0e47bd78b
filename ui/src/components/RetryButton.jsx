// "Retry failed rows" on a finished batch that has failed rows ("Run cancelled rows
// again" when it has only cancelled ones): after an in-page confirmation, POST
// /api/batch/retry runs them again in the same batch. A batch whose cost has reached
// its budget runs again only within a higher one, which a field beside the button
// asks for. The outcome stays in words after the button goes (the batch is queued
// again): how many rows run again and in which run, then that the run has finished;
// or why the server refused (a 409 says the batch is running, has nothing left to
// retry or has spent its budget).

import { useEffect, useId, useRef, useState } from 'react';
import { getStatus } from '../api.js';
import { errorSentence } from '../errors.js';
import { budgetReached, formatUsd, parseBudget, retryBatch, retryBudgetProblem } from '../evaluation.js';
import { FINAL_STATUSES, formatCount, isActive } from '../format.js';
import { useLanguage } from '../LanguageContext.jsx';
import ConfirmDialog from './ConfirmDialog.jsx';
import '../evaluation.css';

const WORDED_CONFLICTS = ['BATCH_ACTIVE', 'NOTHING_TO_RETRY', 'BUDGET_EXCEEDED'];

/** Which rows a finished batch may run again: failed ones first, else cancelled ones; null when none. */
export function retryableRows(batch) {
  if (!FINAL_STATUSES.includes(batch?.status)) return null;
  const failed = Number(batch.failedItems) || 0;
  if (failed > 0) return { status: 'failed', count: failed };
  const cancelled = Number(batch.cancelledItems) || 0;
  return cancelled > 0 ? { status: 'cancelled', count: cancelled } : null;
}

/** The sentence for a refused retry: the 409s in their own words, the rest as errors.js words them. */
export function retryErrorSentence(error, batch, lang, t) {
  if (error?.status === 409 && WORDED_CONFLICTS.includes(error.code)) {
    return t(`eval.retry.error.${error.code}`, { budget: formatUsd(batch?.budgetUsd, lang) });
  }
  return t('eval.retry.error', { message: errorSentence(error, lang) });
}

export default function RetryButton({ batch, onUpdate = () => {} }) {
  const { lang, t } = useLanguage();
  const [confirming, setConfirming] = useState(null); // the {status, count} being confirmed
  const [working, setWorking] = useState(false);
  const [outcome, setOutcome] = useState(null); // {kind: 'done' | 'error', text, run}
  const [ranAgain, setRanAgain] = useState(false); // the batch was seen running after the retry
  const [newBudget, setNewBudget] = useState('');
  const [budgetProblem, setBudgetProblem] = useState(null);
  const message = useRef(null);
  const budgetInput = useRef(null);
  const budgetId = useId();
  const rows = retryableRows(batch);
  const name = batch.name || batch.batchId;
  const needsBudget = budgetReached(batch);

  const ask = () => {
    if (working) return;
    if (needsBudget) {
      const problem = retryBudgetProblem(newBudget, batch);
      setBudgetProblem(problem);
      if (problem) {
        budgetInput.current?.focus();
        return;
      }
    }
    setConfirming({ ...rows, budgetUsd: needsBudget ? parseBudget(newBudget) : null });
  };

  const refreshStatus = async () => {
    try {
      onUpdate(await getStatus(batch.batchId));
    } catch {
      // the next list refresh shows the latest state
    }
  };

  const confirm = async () => {
    const chosen = confirming;
    setConfirming(null);
    setWorking(true);
    setOutcome(null);
    try {
      const answer = await retryBatch(batch.batchId, [chosen.status], chosen.budgetUsd);
      const rows = answer?.rows ?? chosen.count;
      setRanAgain(false);
      setOutcome({
        kind: 'done',
        run: answer?.run ?? '?',
        text: t(rows === 1 ? 'eval.retry.done.one' : 'eval.retry.done', { count: formatCount(rows, lang), run: answer?.run ?? '?' }),
      });
      onUpdate({ batchId: batch.batchId, status: answer?.status || 'queued' });
      await refreshStatus();
    } catch (error) {
      setOutcome({ kind: 'error', text: retryErrorSentence(error, batch, lang, t) });
      if (error?.status === 409) await refreshStatus();
    } finally {
      setWorking(false);
      // The button may be gone (the batch runs again): the outcome takes the focus.
      requestAnimationFrame(() => message.current?.focus());
    }
  };

  useEffect(() => {
    if (outcome?.kind === 'done' && isActive(batch.status)) setRanAgain(true);
  }, [outcome, batch.status]);
  // Once the rows have run, the message says so rather than that they are running.
  const outcomeText =
    outcome?.kind === 'done' && ranAgain && !isActive(batch.status)
      ? t('eval.retry.finished', { run: outcome.run })
      : outcome?.text;

  if (!rows && !outcome && !working) return null;
  return (
    <div className="eval-retry" data-testid="retry">
      {rows && needsBudget && (
        <div className={`field${budgetProblem ? ' field--invalid' : ''}`}>
          <label htmlFor={budgetId}>{t('eval.retry.budget')}</label>
          <p id={`${budgetId}-hint`} className="field__hint">
            {t('eval.retry.budgetHint', {
              cost: formatUsd(batch.estimatedCostUsd ?? 0, lang),
              budget: formatUsd(batch.budgetUsd, lang),
            })}
          </p>
          {budgetProblem && (
            <p id={`${budgetId}-error`} className="field__error">
              {t(budgetProblem.key, budgetProblem.params)}
            </p>
          )}
          <input
            id={budgetId}
            ref={budgetInput}
            type="text"
            inputMode="decimal"
            autoComplete="off"
            className="input input--narrow"
            value={newBudget}
            aria-invalid={budgetProblem ? true : undefined}
            aria-describedby={`${budgetId}-hint${budgetProblem ? ` ${budgetId}-error` : ''}`}
            onChange={(event) => {
              setNewBudget(event.target.value);
              setBudgetProblem(null);
            }}
          />
        </div>
      )}
      {rows && (
        <button
          type="button"
          className="button"
          aria-disabled={working || undefined}
          data-testid="retry-button"
          onClick={ask}
        >
          {working ? t('eval.retry.working') : t(`eval.retry.${rows.status}`)}
        </button>
      )}
      {outcome && (
        <p
          ref={message}
          tabIndex={-1}
          className={`notice ${outcome.kind === 'done' ? 'notice--success' : 'notice--error'}`}
          role={outcome.kind === 'done' ? 'status' : 'alert'}
          data-testid="retry-outcome"
        >
          {outcomeText}
        </p>
      )}
      {confirming && (
        <ConfirmDialog
          title={t(`eval.retry.title.${confirming.status}`)}
          body={[
            t(`eval.retry.body.${confirming.status}${confirming.count === 1 ? '.one' : ''}`, {
              count: formatCount(confirming.count, lang),
              name,
            }),
            confirming.budgetUsd !== null && t('eval.retry.bodyBudget', { budget: formatUsd(confirming.budgetUsd, lang) }),
          ]
            .filter(Boolean)
            .join(' ')}
          confirmLabel={t('eval.retry.yes')}
          cancelLabel={t('eval.retry.no')}
          onConfirm={confirm}
          onCancel={() => setConfirming(null)}
        />
      )}
    </div>
  );
}
