// A batch beside its baseline (GET /api/batch/compare), row by row: the question, the
// baseline's answer and citation, this batch's, the similarity label and score and
// what the judge made of the pair (same, drifted, better, worse). A checkbox narrows
// the table to the rows that drifted or got worse; rows come PAGE_ROWS at a time.
// Behind a disclosure button; read when opened, and again when the batch's status changes.

import { useEffect, useId, useState } from 'react';
import { getStatus } from '../api.js';
import { errorSentence } from '../errors.js';
import { comparisonVerdict, driftedOrWorse, getComparison } from '../evaluation.js';
import { formatCount } from '../format.js';
import { labelOr } from '../i18n.js';
import { useLanguage } from '../LanguageContext.jsx';
import { safeHttpUrl } from '../results.js';
import '../evaluation.css';

export const PAGE_ROWS = 100;

export default function CompareView({ batch }) {
  const { t } = useLanguage();
  const [open, setOpen] = useState(false);
  const { batchId, baselineBatchId } = batch;
  const panelId = `compare-${batchId}`;
  if (!baselineBatchId) return null;
  return (
    <div className="eval-compare" data-testid="compare-view">
      <button
        type="button"
        className="button button--secondary"
        aria-expanded={open}
        aria-controls={open ? panelId : undefined}
        data-testid="compare-toggle"
        onClick={() => setOpen((shown) => !shown)}
      >
        {open ? t('eval.compare.hide') : t('eval.compare.show')}
      </button>
      {open && <Comparison id={panelId} batch={batch} />}
    </div>
  );
}

/** The comparison, read again when the batch's status changes (a running batch's rows are still coming). */
function useComparison(batchId, baselineBatchId, status) {
  const [state, setState] = useState({ rows: null, error: null, baselineName: null });
  useEffect(() => {
    let live = true;
    getComparison(batchId, baselineBatchId)
      .then((answer) => live && setState((s) => ({ ...s, rows: Array.isArray(answer?.items) ? answer.items : [], error: null })))
      .catch((error) => live && setState((s) => ({ ...s, error })));
    // The baseline's name, for the heading; its id stands in when it cannot be read.
    getStatus(baselineBatchId)
      .then((status) => live && setState((s) => ({ ...s, baselineName: status?.name || null })))
      .catch(() => {});
    return () => {
      live = false;
    };
  }, [batchId, baselineBatchId, status]);
  return state;
}

function Comparison({ id, batch }) {
  const { lang, t } = useLanguage();
  const { batchId, baselineBatchId } = batch;
  const { rows, error, baselineName } = useComparison(batchId, baselineBatchId, batch.status);
  const [onlyChanged, setOnlyChanged] = useState(false);
  const [shownCount, setShownCount] = useState(PAGE_ROWS);
  const filterId = useId();
  const countId = useId();
  const headingId = `compare-heading-${batchId}`;
  const n = (value) => formatCount(value, lang);
  const one = (count) => new Intl.PluralRules(lang === 'fr' ? 'fr-CA' : 'en-CA').select(count) === 'one';

  const matching = rows ? (onlyChanged ? rows.filter(driftedOrWorse) : rows) : [];
  const shown = matching.slice(0, shownCount);
  const withTrials = (rows ?? []).some((row) => Number(row.trial) > 1);

  return (
    <section id={id} className="eval-panel" aria-labelledby={headingId} aria-busy={!rows && !error ? true : undefined}>
      <h4 id={headingId}>
        {t('eval.compare.heading', { name: batch.name || batchId, baseline: baselineName || baselineBatchId })}
      </h4>
      {!rows && !error && <p role="status">{t('eval.compare.loading')}</p>}
      {error && (
        <p className="notice notice--error" role="alert" data-testid="compare-error">
          {t('eval.compare.failed', { message: errorSentence(error, lang) })}
        </p>
      )}
      {rows && (
        <>
          <div className="field--checkbox eval-compare__filter">
            <input
              id={filterId}
              type="checkbox"
              checked={onlyChanged}
              aria-describedby={countId}
              data-testid="compare-only-changed"
              onChange={(event) => {
                setOnlyChanged(event.target.checked);
                setShownCount(PAGE_ROWS);
              }}
            />
            <label htmlFor={filterId}>{t('eval.compare.onlyChanged')}</label>
          </div>
          <p id={countId} className="results__count" aria-live="polite" data-testid="compare-count">
            {t(one(shown.length) ? 'eval.compare.count.one' : 'eval.compare.count', {
              shown: n(shown.length),
              total: n(rows.length),
            })}
          </p>
          {rows.length === 0 && <p>{t('eval.compare.empty')}</p>}
          {rows.length > 0 && matching.length === 0 && <p data-testid="compare-none">{t('eval.compare.none')}</p>}
          {shown.length > 0 && (
            <div
              className="table-scroll"
              tabIndex={0}
              role="region"
              aria-label={t('eval.compare.scrollRegion', { name: batch.name || batchId })}
            >
              <table className="results__table eval-table eval-compare__table" data-testid="compare-table">
                <caption className="visually-hidden">{t('eval.compare.caption')}</caption>
                <thead>
                  <tr>
                    <th scope="col">{t('eval.compare.row')}</th>
                    {withTrials && <th scope="col">{t('eval.compare.trial')}</th>}
                    <th scope="col">{t('eval.compare.question')}</th>
                    <th scope="col">{t('eval.compare.baselineAnswer')}</th>
                    <th scope="col">{t('eval.compare.newAnswer')}</th>
                    <th scope="col">{t('eval.compare.similarity')}</th>
                    <th scope="col">{t('eval.compare.verdict')}</th>
                  </tr>
                </thead>
                <tbody>
                  {shown.map((row) => (
                    <CompareRow key={`${row.rowNumber}-${row.trial}`} row={row} withTrials={withTrials} />
                  ))}
                </tbody>
              </table>
            </div>
          )}
          {matching.length > shown.length && (
            <button
              type="button"
              className="button button--secondary"
              onClick={() => setShownCount((count) => count + PAGE_ROWS)}
            >
              {t('eval.compare.more', { count: n(Math.min(PAGE_ROWS, matching.length - shown.length)) })}
            </button>
          )}
        </>
      )}
    </section>
  );
}

function Answer({ answer, citation, status }) {
  const { t } = useLanguage();
  if (!answer) {
    return <span className="eval-muted">{t('eval.compare.noAnswer', { status: labelOr(t, `item.${status}`, status || '—') })}</span>;
  }
  const href = safeHttpUrl(citation);
  return (
    <>
      <span className="results__text">{answer}</span>
      {citation && (
        <span className="eval-compare__citation">
          {t('eval.compare.citation')}:{' '}
          {href ? (
            <a href={href} target="_blank" rel="noreferrer noopener">
              {citation}
            </a>
          ) : (
            citation
          )}
        </span>
      )}
    </>
  );
}

function CompareRow({ row, withTrials }) {
  const { lang, t } = useLanguage();
  const verdict = comparisonVerdict(row);
  const label = row['similarity.label'];
  const score = row['similarity.score'];
  return (
    <tr data-testid={`compare-row-${row.rowNumber}-${row.trial ?? 1}`} data-verdict={verdict ?? 'none'}>
      <th scope="row">{row.rowNumber}</th>
      {withTrials && <td>{row.trial ?? 1}</td>}
      <td>
        <span className="results__text">{row.question}</span>
      </td>
      <td>
        <Answer answer={row.baselineAnswer} citation={row.baselineCitationUrl} status={row.baselineStatus} />
      </td>
      <td>
        <Answer answer={row.answer} citation={row.citationUrl} status={row.status} />
      </td>
      <td>
        {label ? labelOr(t, `eval.compare.label.${label}`, label) : t('eval.compare.notJudged')}
        {typeof score === 'number' && (
          <span className="eval-compare__score">
            {t('eval.compare.score', { score: score.toLocaleString(lang === 'fr' ? 'fr-CA' : 'en-CA') })}
          </span>
        )}
      </td>
      <td>
        {verdict ? (
          <span className={`badge eval-verdict eval-verdict--${verdict}`} data-testid="compare-verdict">
            {t(`eval.compare.verdict.${verdict}`)}
          </span>
        ) : (
          <span className="eval-muted">{t('eval.compare.notJudged')}</span>
        )}
      </td>
    </tr>
  );
}
