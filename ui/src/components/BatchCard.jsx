// One batch in the list: name, status, what became of its rows (one segmented progress
// bar and its legend), time left or duration, and its actions: download CSV, Excel or
// JSON, view results, and cancel (after an in-page confirmation) while it is queued or
// processing. A cancelling batch says that its rows in flight are finishing; a batch
// being deleted (`deleting`: a deletion left half-way) offers only to finish deleting it.

import { useRef, useState } from 'react';
import { cancelBatch, deleteBatch, downloadResults, getStatus } from '../api.js';
import { errorSentence } from '../errors.js';
import {
  batchDurationSeconds,
  batchProgress,
  canCancel,
  canDelete,
  formatCount,
  formatDateTime,
  formatDuration,
  isActive,
  progressSummary,
} from '../format.js';
import { labelOr, languageName, providerName } from '../i18n.js';
import { useLanguage } from '../LanguageContext.jsx';
import ConfirmDialog from './ConfirmDialog.jsx';
import ProgressBar from './ProgressBar.jsx';
import ResultsTable from './ResultsTable.jsx';
import CompareView from './CompareView.jsx';
import RetryButton from './RetryButton.jsx';
import SummaryPanel from './SummaryPanel.jsx';

const DOWNLOADS = [
  ['csv', 'batch.downloadCsv'],
  ['xlsx', 'batch.downloadXlsx'],
  ['json', 'batch.downloadJson'],
];

/** The id of a batch card's heading, which the page focuses to bring a batch into view. */
export const batchHeadingId = (batchId) => `batch-heading-${batchId}`;

export default function BatchCard({ batch, pollError, onUpdate, onDeleted = () => {} }) {
  const { lang, t } = useLanguage();
  const [confirming, setConfirming] = useState(false);
  const [confirmingDelete, setConfirmingDelete] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [cancelling, setCancelling] = useState(false);
  const [showResults, setShowResults] = useState(false);
  const [downloading, setDownloading] = useState(null);
  const [actionError, setActionError] = useState(null);
  const heading = useRef(null);

  const { batchId, status } = batch;
  const beingDeleted = Boolean(batch.deleting);
  const name = batch.name || batchId;
  const progress = batchProgress(batch);
  const summary = progressSummary(batch);
  const number = (value) => formatCount(value, lang);
  const duration = batchDurationSeconds(batch);
  const statusLabel = labelOr(t, `status.${status}`, status);
  const headingId = batchHeadingId(batchId);
  const resultsId = `results-${batchId}`;
  const progressText = t(summary.key, {
    ...summary.params,
    answered: number(progress.answered),
    done: number(progress.done),
    total: number(progress.total),
  });
  // totalItems counts every trial of every row: the file's rows are that over the trials.
  const rows = Math.round(progress.total / progress.trials);
  const trialsNote =
    progress.trials > 1 ? t('batch.trials', { rows: number(rows), trials: number(progress.trials) }) : null;

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
      onUpdate({ batchId, status: answer?.status || 'cancelling' });
      await refreshStatus();
      heading.current?.focus();
    } catch (error) {
      setActionError(t('batch.cancelFailed', { message: errorSentence(error, lang) }));
      if (error.status === 409) await refreshStatus();
    } finally {
      setCancelling(false);
    }
  };

  const confirmDelete = async () => {
    setConfirmingDelete(false);
    setDeleting(true);
    setActionError(null);
    try {
      await deleteBatch(batchId);
      onDeleted(batch);
    } catch (error) {
      setDeleting(false);
      setActionError(t('batch.deleteFailed', { message: errorSentence(error, lang) }));
      if (error.status === 409 || error.status === 404) await refreshStatus();
    }
  };

  const download = async (format) => {
    setDownloading(format);
    setActionError(null);
    try {
      await downloadResults(batchId, format, { batchName: batch.name });
    } catch (error) {
      setActionError(t('batch.downloadFailed', { message: errorSentence(error, lang) }));
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
          <dt>{t('batch.aiProvider')}</dt>
          <dd data-testid="batch-ai-provider">{providerName(t, batch.aiProvider)}</dd>
        </div>
        <div>
          <dt>{t('batch.searchProvider')}</dt>
          <dd data-testid="batch-search-provider">{providerName(t, batch.searchProvider)}</dd>
        </div>
        {batch.pageLanguage && (
          <div>
            <dt>{t('batch.language')}</dt>
            <dd data-testid="batch-language">{languageName(t, batch.pageLanguage)}</dd>
          </div>
        )}
      </dl>

      <ProgressBar
        progress={progress}
        status={status}
        label={t('batch.progressLabel', { name })}
        legendLabel={t('batch.legend', { name })}
        trialsNote={trialsNote}
      />
      <p className="batch__progress-text" data-testid="batch-percent">
        {progressText}
      </p>
      {canCancel(status) && (
        <p className="batch__time" data-testid="batch-eta">
          {typeof batch.etaSeconds === 'number'
            ? t('batch.eta', { eta: formatDuration(batch.etaSeconds, t('time.lessThanSecond')) })
            : t('batch.etaUnknown')}
        </p>
      )}
      {duration !== null && (
        <p className="batch__time" data-testid="batch-duration">
          {t('batch.duration', { duration: formatDuration(duration, t('time.lessThanSecond')) })}
        </p>
      )}
      {pollError && (
        <p className="notice notice--warning" data-testid="batch-poll-error">
          {t('batch.pollError', { message: errorSentence(pollError, lang) })}
        </p>
      )}
      {actionError && (
        <p className="notice notice--error" role="alert" data-testid="batch-action-error">
          {actionError}
        </p>
      )}

      {beingDeleted && (
        <p className="notice notice--warning" data-testid="batch-being-deleted">
          {t('batch.beingDeleted')}
        </p>
      )}

      <div className="batch__actions">
        {!beingDeleted && DOWNLOADS.map(([format, key]) => (
          <button
            key={format}
            type="button"
            className="button button--secondary"
            aria-describedby={headingId}
            aria-disabled={downloading === format || undefined}
            onClick={() => downloading !== format && download(format)}
          >
            {t(key)}
          </button>
        ))}
        {!beingDeleted && (
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
        )}
        {canCancel(status) && (
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
        {canDelete(status) && (
          <button
            type="button"
            className="button button--danger"
            aria-describedby={headingId}
            aria-disabled={deleting || undefined}
            data-testid="batch-delete"
            onClick={() => !deleting && setConfirmingDelete(true)}
          >
            {deleting ? t('batch.deleting') : t(beingDeleted ? 'batch.finishDelete' : 'batch.delete')}
          </button>
        )}
      </div>

      {!beingDeleted && <RetryButton batch={batch} onUpdate={onUpdate} />}
      {!beingDeleted && <SummaryPanel batch={batch} />}
      {!beingDeleted && <CompareView batch={batch} />}

      {showResults && !beingDeleted && <ResultsTable batchId={batchId} name={name} active={isActive(status)} />}

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
      {confirmingDelete && (
        <ConfirmDialog
          title={t('deleteConfirm.title')}
          body={t('deleteConfirm.body', { name, count: number(batch.totalItems ?? 0) })}
          confirmLabel={t('deleteConfirm.yes')}
          cancelLabel={t('deleteConfirm.no')}
          onConfirm={confirmDelete}
          onCancel={() => setConfirmingDelete(false)}
        />
      )}
    </li>
  );
}
