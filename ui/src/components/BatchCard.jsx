// One batch in the list: name, status, progress (percent, counts, ETA) or duration, and
// its actions: download CSV/Excel, view results, cancel (after an in-page confirmation).

import { useRef, useState } from 'react';
import { cancelBatch, downloadResults, getStatus } from '../api.js';
import { batchDurationSeconds, batchProgress, formatDateTime, formatDuration, isActive } from '../format.js';
import { labelOr } from '../i18n.js';
import { useLanguage } from '../LanguageContext.jsx';
import ConfirmDialog from './ConfirmDialog.jsx';
import ProgressBar from './ProgressBar.jsx';
import ResultsTable from './ResultsTable.jsx';

export default function BatchCard({ batch, pollError, onUpdate }) {
  const { lang, t } = useLanguage();
  const [confirming, setConfirming] = useState(false);
  const [cancelling, setCancelling] = useState(false);
  const [showResults, setShowResults] = useState(false);
  const [downloading, setDownloading] = useState(null);
  const [actionError, setActionError] = useState(null);
  const heading = useRef(null);

  const { batchId, status } = batch;
  const name = batch.name || batchId;
  const active = isActive(status);
  const { done, total, percent } = batchProgress(batch);
  const duration = batchDurationSeconds(batch);
  const statusLabel = labelOr(t, `status.${status}`, status);
  const headingId = `batch-heading-${batchId}`;
  const resultsId = `results-${batchId}`;
  const progressText = t('batch.progressText', { done, total, percent });

  const refreshStatus = async () => {
    try {
      onUpdate(await getStatus(batchId));
    } catch {
      // the next list refresh shows the latest state
    }
  };

  const confirmCancel = async () => {
    setConfirming(false);
    setCancelling(true);
    setActionError(null);
    try {
      const answer = await cancelBatch(batchId);
      onUpdate({ batchId, status: answer?.status || 'cancelled' });
      await refreshStatus();
      heading.current?.focus();
    } catch (error) {
      setActionError(t('batch.cancelFailed', { code: error.code, message: error.message }));
      if (error.status === 409) await refreshStatus();
    } finally {
      setCancelling(false);
    }
  };

  const download = async (format) => {
    setDownloading(format);
    setActionError(null);
    try {
      await downloadResults(batchId, format);
    } catch (error) {
      setActionError(t('batch.downloadFailed', { code: error.code, message: error.message }));
    } finally {
      setDownloading(null);
    }
  };

  return (
    <li
      className={`batch batch--${status}`}
      aria-labelledby={headingId}
      data-testid={`batch-row-${batchId}`}
      data-status={status}
    >
      <div className="batch__header">
        <h3 id={headingId} tabIndex={-1} ref={heading} className="batch__name">
          {name}
        </h3>
        <span className={`badge badge--${status}`} data-testid="batch-status">
          {statusLabel}
        </span>
      </div>

      <dl className="batch__meta">
        <div>
          <dt>{t('batch.id')}</dt>
          <dd>
            <code data-testid="batch-id">{batchId}</code>
          </dd>
        </div>
        {batch.fileName && (
          <div>
            <dt>{t('batch.file')}</dt>
            <dd>{batch.fileName}</dd>
          </div>
        )}
        <div>
          <dt>{t('batch.created')}</dt>
          <dd>{formatDateTime(batch.createdAt, lang)}</dd>
        </div>
        <div>
          <dt>{t('batch.providers')}</dt>
          <dd>
            {batch.aiProvider || '—'} / {batch.searchProvider || '—'}
          </dd>
        </div>
        {batch.pageLanguage && (
          <div>
            <dt>{t('batch.language')}</dt>
            <dd>{batch.pageLanguage}</dd>
          </div>
        )}
      </dl>

      <ProgressBar
        percent={percent}
        status={status}
        label={t('batch.progressLabel', { name })}
        valueText={`${progressText} — ${statusLabel}`}
      />
      <p className="batch__progress-text">
        <span data-testid="batch-percent">{progressText}</span>
        <span className="batch__counts" data-testid="batch-counts">
          {t('batch.counts', {
            processed: batch.processedItems ?? 0,
            failed: batch.failedItems ?? 0,
            total: batch.totalItems ?? 0,
          })}
        </span>
        {batch.cancelledItems > 0 && (
          <span data-testid="batch-cancelled-items">{t('batch.cancelledItems', { count: batch.cancelledItems })}</span>
        )}
      </p>
      {active && (
        <p className="batch__time" data-testid="batch-eta">
          {typeof batch.etaSeconds === 'number'
            ? t('batch.eta', { eta: formatDuration(batch.etaSeconds, t('time.lessThanSecond')) })
            : t('batch.etaUnknown')}
        </p>
      )}
      {!active && duration !== null && (
        <p className="batch__time" data-testid="batch-duration">
          {t('batch.duration', { duration: formatDuration(duration, t('time.lessThanSecond')) })}
        </p>
      )}
      {pollError && <p className="notice notice--warning">{t('batch.pollError', { message: pollError })}</p>}
      {actionError && (
        <p className="notice notice--error" role="alert" data-testid="batch-action-error">
          {actionError}
        </p>
      )}

      <div className="batch__actions">
        <button
          type="button"
          className="button button--secondary"
          aria-describedby={headingId}
          aria-disabled={downloading === 'csv' || undefined}
          onClick={() => downloading !== 'csv' && download('csv')}
        >
          {t('batch.downloadCsv')}
        </button>
        <button
          type="button"
          className="button button--secondary"
          aria-describedby={headingId}
          aria-disabled={downloading === 'xlsx' || undefined}
          onClick={() => downloading !== 'xlsx' && download('xlsx')}
        >
          {t('batch.downloadXlsx')}
        </button>
        <button
          type="button"
          className="button button--secondary"
          aria-describedby={headingId}
          aria-expanded={showResults}
          aria-controls={showResults ? resultsId : undefined}
          onClick={() => setShowResults((shown) => !shown)}
        >
          {showResults ? t('batch.hideResults') : t('batch.viewResults')}
        </button>
        {active && (
          <button
            type="button"
            className="button button--danger"
            aria-describedby={headingId}
            aria-disabled={cancelling || undefined}
            onClick={() => !cancelling && setConfirming(true)}
          >
            {cancelling ? t('batch.cancelling') : t('batch.cancel')}
          </button>
        )}
      </div>

      {showResults && <ResultsTable batchId={batchId} name={name} active={active} />}

      {confirming && (
        <ConfirmDialog
          title={t('confirm.title')}
          body={t('confirm.body', { name })}
          confirmLabel={t('confirm.yes')}
          cancelLabel={t('confirm.no')}
          onConfirm={confirmCancel}
          onCancel={() => setConfirming(false)}
        />
      )}
    </li>
  );
}
