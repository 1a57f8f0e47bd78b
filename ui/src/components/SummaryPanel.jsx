// A batch's summary (GET /api/batch/summary): its rows by status, blocked rows by stage,
// answer types, analyzer pass rates, block precision and recall, response time p50/p95,
// tokens, cost against the budget, stability across trials and, against a baseline,
// how many answers kept their meaning, drifted, got better or worse. Behind a
// disclosure button (open at first for an evaluation run), read when opened, again
// when the batch's status changes, and every SUMMARY_POLL_MS while it runs: the server
// computes a running batch's summary from all its rows, so it is not polled as often
// as the progress.

import { useCallback, useEffect, useRef, useState } from 'react';
import { errorSentence } from '../errors.js';
import {
  countEntries,
  formatMs,
  formatRate,
  formatUsd,
  getSummary,
  isEvaluation,
} from '../evaluation.js';
import { formatCount, isActive } from '../format.js';
import { labelOr } from '../i18n.js';
import { useLanguage } from '../LanguageContext.jsx';
import { usePolling } from '../usePolling.js';
import '../evaluation.css';

export const SUMMARY_POLL_MS = 20_000;
const BASELINE_COUNTS = ['same', 'drift', 'better', 'worse', 'tie', 'notCompared'];
const STABILITY_COUNTS = ['allPass', 'mixed', 'allFail'];

export default function SummaryPanel({ batch }) {
  const { lang, t } = useLanguage();
  const [open, setOpen] = useState(() => isEvaluation(batch));
  const [summary, setSummary] = useState(null);
  const [error, setError] = useState(null);
  const [loading, setLoading] = useState(false);
  const latest = useRef(0);
  const { batchId, status } = batch;
  const name = batch.name || batchId;
  const panelId = `summary-${batchId}`;
  const headingId = `summary-heading-${batchId}`;
  const running = isActive(status);

  const load = useCallback(async () => {
    const call = ++latest.current;
    setLoading(true);
    try {
      const answer = await getSummary(batchId);
      if (call !== latest.current) return;
      setSummary(answer);
      setError(null);
    } catch (failure) {
      if (call !== latest.current) return;
      setError(failure);
      throw failure; // usePolling waits longer after a failure
    } finally {
      if (call === latest.current) setLoading(false);
    }
  }, [batchId]);

  // Opened, or the batch moved on (a final status brings the final figures).
  useEffect(() => {
    if (open) load().catch(() => {});
  }, [open, status, load]);
  usePolling(load, { enabled: open && running, intervalMs: SUMMARY_POLL_MS, hiddenIntervalMs: 3 * SUMMARY_POLL_MS });

  return (
    <div className="eval-summary" data-testid="summary-panel">
      <button
        type="button"
        className="button button--secondary"
        aria-expanded={open}
        aria-controls={open ? panelId : undefined}
        data-testid="summary-toggle"
        onClick={() => setOpen((shown) => !shown)}
      >
        {open ? t('eval.summary.hide') : t('eval.summary.show')}
      </button>
      {open && (
        <section id={panelId} className="eval-panel" aria-labelledby={headingId} aria-busy={loading || undefined}>
          <h4 id={headingId}>{t('eval.summary.heading', { name })}</h4>
          {!summary && !error && <p role="status">{t('eval.summary.loading')}</p>}
          {error && (
            <div className="notice notice--error" role="alert" data-testid="summary-error">
              <p>{t('eval.summary.failed', { message: errorSentence(error, lang) })}</p>
              <button type="button" className="button button--secondary button--small" onClick={() => load().catch(() => {})}>
                {t('eval.summary.tryAgain')}
              </button>
            </div>
          )}
          {summary && <SummaryFigures summary={summary} running={running} name={name} />}
        </section>
      )}
    </div>
  );
}

function Figures({ title, testId, children }) {
  return (
    <div className="eval-figures" data-testid={testId}>
      <h5>{title}</h5>
      {children}
    </div>
  );
}

function Pairs({ entries }) {
  return (
    <dl className="eval-pairs">
      {entries.map(([label, value, testId], index) => (
        <div key={`${index}-${label}`}>
          <dt>{label}</dt>
          <dd data-testid={testId}>{value}</dd>
        </div>
      ))}
    </dl>
  );
}

/** The summary's figures, each group under its own heading. */
export function SummaryFigures({ summary, running = false, name = '' }) {
  const { lang, t } = useLanguage();
  const n = (value) => formatCount(value ?? 0, lang);
  const trials = Number(summary.trials) || 1;
  const byStatus = countEntries(summary.byStatus);
  const blocked = countEntries(summary.blockedByStage);
  const answerTypes = countEntries(summary.answerTypes);
  const analyzers = Object.entries(summary.analyzers ?? {});
  const latency = summary.latencyMs ?? {};
  const tokens = summary.tokens ?? {};
  const cost = summary.cost ?? {};
  const stability = summary.stability;
  const baseline = summary.baseline;
  const block = summary.blockDetection;
  const rowsTotal = Number(summary.totalItems) || 0; // every trial of every question (lib/batches.py)

  return (
    <div className="eval-summary__figures">
      {running && <p className="field__note">{t('eval.summary.running', { seconds: SUMMARY_POLL_MS / 1000 })}</p>}

      <Figures title={t('eval.summary.rows')} testId="summary-rows">
        <Pairs
          entries={[
            ...byStatus.map(([status, count]) => [labelOr(t, `item.${status}`, status), n(count), `summary-status-${status}`]),
            [
              t('eval.summary.rowsTotal'),
              trials > 1
                ? `${n(rowsTotal)} (${t('eval.summary.rowsTrials', { rows: n(Math.round(rowsTotal / trials)), trials: n(trials) })})`
                : n(rowsTotal),
              'summary-total',
            ],
          ]}
        />
      </Figures>

      <Figures title={t('eval.summary.blocked')} testId="summary-blocked">
        {blocked.length === 0 ? (
          <p>{t('eval.summary.blockedNone')}</p>
        ) : (
          <Pairs entries={blocked.map(([stage, count]) => [labelOr(t, `blocked.${stage}`, stage), n(count)])} />
        )}
      </Figures>

      {answerTypes.length > 0 && (
        <Figures title={t('eval.summary.answerTypes')} testId="summary-answer-types">
          <Pairs entries={answerTypes.map(([type, count]) => [labelOr(t, `answerType.${type}`, type), n(count)])} />
        </Figures>
      )}

      {analyzers.length > 0 && (
        <Figures title={t('eval.summary.analyzers')} testId="summary-analyzers">
          <div className="table-scroll" tabIndex={0} role="region" aria-label={t('eval.summary.analyzersOf', { name })}>
            <table className="results__table eval-table">
              <thead>
                <tr>
                  <th scope="col">{t('eval.summary.analyzer')}</th>
                  <th scope="col">{t('eval.summary.passed')}</th>
                  <th scope="col">{t('eval.summary.failedRows')}</th>
                  <th scope="col">{t('eval.summary.notApplicable')}</th>
                  <th scope="col">{t('eval.summary.passRate')}</th>
                </tr>
              </thead>
              <tbody>
                {analyzers.map(([analyzer, rate]) => (
                  <tr key={analyzer} data-testid={`summary-analyzer-${analyzer}`}>
                    <th scope="row">{labelOr(t, `eval.analyzer.${analyzer}`, analyzer)}</th>
                    <td>{n(rate?.passed)}</td>
                    <td>{n(rate?.failed)}</td>
                    <td>{n(rate?.notApplicable)}</td>
                    <td data-testid="pass-rate">{formatRate(rate?.passRate, lang)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </Figures>
      )}

      {block && (
        <Figures title={t('eval.summary.blockDetection')} testId="summary-block-detection">
          <p>
            {t('eval.summary.blockScores', {
              precision: formatRate(block.precision, lang),
              recall: formatRate(block.recall, lang),
              rows: n(block.labelledRows),
            })}
          </p>
        </Figures>
      )}

      <Figures title={t('eval.summary.latency')} testId="summary-latency">
        <Pairs
          entries={[
            [t('eval.summary.p50'), formatMs(latency.p50, lang), 'summary-p50'],
            [t('eval.summary.p95'), formatMs(latency.p95, lang), 'summary-p95'],
            [t('eval.summary.latencyRows'), n(latency.rows)],
          ]}
        />
      </Figures>

      <Figures title={t('eval.summary.tokens')} testId="summary-tokens">
        <Pairs
          entries={[
            [t('eval.summary.inputTokens'), n(tokens.input), 'summary-input-tokens'],
            [t('eval.summary.outputTokens'), n(tokens.output), 'summary-output-tokens'],
            ...Object.entries(tokens.judges ?? {}).map(([analyzer, used]) => [
              t('eval.summary.judgeTokens', { analyzer: labelOr(t, `eval.analyzer.${analyzer}`, analyzer) }),
              t('eval.summary.judgeTokensValue', { input: n(used?.inputTokens), output: n(used?.outputTokens) }),
            ]),
          ]}
        />
      </Figures>

      <Figures title={t('eval.summary.cost')} testId="summary-cost">
        <p data-testid="summary-cost-value">
          {typeof cost.budgetUsd === 'number'
            ? t('eval.summary.costOfBudget', {
                cost: formatUsd(cost.estimatedUsd ?? 0, lang),
                budget: formatUsd(cost.budgetUsd, lang),
                percent: formatRate((cost.budgetUsedPercent ?? 0) / 100, lang),
              })
            : t('eval.summary.costNoBudget', { cost: formatUsd(cost.estimatedUsd ?? 0, lang) })}
        </p>
        {typeof cost.budgetUsd === 'number' && (
          <meter
            className="eval-meter"
            min={0}
            max={cost.budgetUsd}
            low={cost.budgetUsd * 0.8}
            high={cost.budgetUsd * 0.95}
            optimum={0}
            value={Math.min(cost.estimatedUsd ?? 0, cost.budgetUsd)}
            aria-label={t('eval.summary.cost')}
          />
        )}
        {cost.stopReason === 'BUDGET_EXCEEDED' && (
          <p className="notice notice--warning" data-testid="summary-budget-reached">
            {t('eval.summary.budgetReached')}
          </p>
        )}
        {Array.isArray(cost.unpricedModels) && cost.unpricedModels.length > 0 && (
          <p className="field__note">{t('eval.summary.unpriced', { models: cost.unpricedModels.join(', ') })}</p>
        )}
      </Figures>

      {stability && trials > 1 && (
        <Figures title={t('eval.summary.stability', { trials: n(trials) })} testId="summary-stability">
          <Pairs
            entries={[
              ...STABILITY_COUNTS.map((key) => [t(`eval.summary.${key}`), n(stability[key]), `summary-stability-${key}`]),
              [t('eval.summary.questions'), n(stability.questions)],
            ]}
          />
          {Array.isArray(stability.mixedRowNumbers) && stability.mixedRowNumbers.length > 0 && (
            <p>{t('eval.summary.mixedRows', { rows: stability.mixedRowNumbers.join(', ') })}</p>
          )}
        </Figures>
      )}

      {baseline && (
        <Figures title={t('eval.summary.baseline')} testId="summary-baseline">
          <Pairs
            entries={BASELINE_COUNTS.filter((key) => key !== 'notCompared' || baseline[key] > 0).map((key) => [
              t(`eval.summary.${key}`),
              n(baseline[key]),
              `summary-baseline-${key}`,
            ])}
          />
        </Figures>
      )}
    </div>
  );
}
