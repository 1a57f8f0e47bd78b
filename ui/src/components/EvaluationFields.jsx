// The upload form's evaluation fields: trials (1–8), the analyzers to run on each
// answer, a baseline batch (one of the caller's finished batches, whose answers become
// the reference) and a budget in US dollars, each explained in one line. A controlled
// group: the form keeps `values` ({trials, analyzers, baselineBatchId, budgetUsd}) and
// checks them with validateEvaluation (evaluation.js); `problems` are shown beside
// their field. Closed at first (a plain upload needs none of it; closed, it says what
// it still sends) and open while one of its fields has a problem. The baseline list is
// the caller's own, read when the section first opens, again when it is focused, and
// again when the page sees one of the caller's batches end (`endedCount` grows).

import { useCallback, useEffect, useRef, useState } from 'react';
import { listBatches } from '../api.js';
import { errorSentence } from '../errors.js';
import {
  COMPARING_ANALYZERS,
  EVALUATION_FIELD_IDS,
  analyzersOffered,
  baselineChoices,
  formatUsd,
  maxTrialsOf,
  parseBudget,
} from '../evaluation.js';
import { formatCount, formatDateTime } from '../format.js';
import { useLanguage } from '../LanguageContext.jsx';
import '../evaluation.css';

export const BASELINE_REFRESH_MS = 1_000;

/** The caller's finished batches: read once `enabled`, again when the list is focused, and when `endedCount` grows. */
function useBaselines(enabled, endedCount) {
  const [state, setState] = useState({ loading: true, batches: [], error: null });
  const live = useRef(true);
  const lastRead = useRef(0);
  const read = useCallback(() => {
    lastRead.current = Date.now();
    listBatches()
      .then((batches) => live.current && setState({ loading: false, batches: baselineChoices(batches), error: null }))
      .catch((error) => live.current && setState((s) => ({ ...s, loading: false, error })));
  }, []);
  useEffect(() => {
    live.current = true;
    return () => {
      live.current = false;
    };
  }, []);
  useEffect(() => {
    if (enabled && lastRead.current === 0) read();
  }, [enabled, read]);
  // A batch ended on this page: it may now be a baseline (read only once the list has been read at all).
  useEffect(() => {
    if (endedCount > 0 && lastRead.current > 0) read();
  }, [endedCount, read]);
  const refresh = useCallback(() => {
    if (Date.now() - lastRead.current >= BASELINE_REFRESH_MS) read();
  }, [read]);
  return { ...state, refresh };
}

/** What the closed section still sends, in one line ("" for the defaults). */
export function chosenSummary(values, t, formatBudget) {
  const parts = [];
  const trials = Number(String(values?.trials ?? '').trim());
  if (trials > 1) parts.push(t('eval.fields.chosenTrials', { trials }));
  for (const name of values?.analyzers ?? []) parts.push(t(`eval.analyzer.${name}`));
  if (values?.baselineBatchId) parts.push(t('eval.fields.chosenBaseline'));
  const budget = parseBudget(values?.budgetUsd);
  if (budget !== null) parts.push(t('eval.fields.chosenBudget', { budget: formatBudget(budget) }));
  return parts.length > 0 ? t('eval.fields.chosen', { choices: parts.join(', ') }) : '';
}

export default function EvaluationFields({ values, onChange, options = null, problems = [], endedCount = 0 }) {
  const { lang, t } = useLanguage();
  const [expanded, setExpanded] = useState(false);
  const ours = problems.some((problem) => problem.field in EVALUATION_FIELD_IDS);
  const open = expanded || ours; // a problem in a closed section would be out of reach
  const baselines = useBaselines(open, endedCount);
  const chosen = open ? '' : chosenSummary(values, t, (usd) => formatUsd(usd, lang));
  const maxTrials = maxTrialsOf(options);
  const offered = analyzersOffered(options);
  const needsModel = new Set(
    (Array.isArray(options?.analyzers) ? options.analyzers : [])
      .filter((entry) => entry && typeof entry === 'object' && entry.needsModel)
      .map((entry) => entry.name),
  );
  const problemFor = (field) => problems.find((problem) => problem.field === field);
  const set = (field, value) => onChange({ ...values, [field]: value });
  const toggle = (name, on) =>
    set('analyzers', on ? [...values.analyzers.filter((n) => n !== name), name] : values.analyzers.filter((n) => n !== name));
  const judged = values.analyzers.some((name) => COMPARING_ANALYZERS.includes(name));
  const baselineNotes = [
    baselines.loading && t('eval.baselineLoading'),
    baselines.error && t('eval.baselineLoadFailed', { message: errorSentence(baselines.error, lang) }),
    !baselines.loading && !baselines.error && baselines.batches.length === 0 && t('eval.baselineEmpty'),
    values.baselineBatchId && !judged && t('eval.baselineNeedsJudge'),
  ].filter(Boolean);

  const trialsProblem = problemFor('trials');
  const analyzersProblem = problemFor('analyzers');
  const baselineProblem = problemFor('baselineBatchId');
  const budgetProblem = problemFor('budgetUsd');
  const errorLine = (id, problem) =>
    problem && (
      <p id={id} className="field__error">
        {t(problem.key, problem.params)}
      </p>
    );
  const describedBy = (...ids) => ids.filter(Boolean).join(' ') || undefined;

  return (
    <div className="eval-fields" data-testid="evaluation-fields">
      <button
        type="button"
        className="button button--secondary"
        aria-expanded={open}
        aria-controls={open ? 'upload-evaluation' : undefined}
        aria-describedby="upload-evaluation-intro"
        data-testid="evaluation-toggle"
        onClick={() => setExpanded(!open)}
      >
        {t('eval.fields.toggle')}
      </button>
      <p id="upload-evaluation-intro" className="field__hint">
        {t('eval.fields.intro')}
        {chosen && ` ${chosen}`}
      </p>
      {open && (
        <fieldset id="upload-evaluation" className="eval-fields__set">
          <legend className="eval-fields__legend">{t('eval.fields.legend')}</legend>

          <div className={`field${trialsProblem ? ' field--invalid' : ''}`}>
            <label htmlFor={EVALUATION_FIELD_IDS.trials}>{t('eval.trials')}</label>
            <p id="upload-trials-hint" className="field__hint">
              {t('eval.trialsHint', { max: maxTrials })}
            </p>
            {errorLine('upload-trials-error', trialsProblem)}
            <input
              id={EVALUATION_FIELD_IDS.trials}
              type="number"
              inputMode="numeric"
              min="1"
              max={maxTrials}
              step="1"
              className="input input--narrow"
              value={values.trials}
              aria-invalid={trialsProblem ? true : undefined}
              aria-describedby={describedBy('upload-trials-hint', trialsProblem && 'upload-trials-error')}
              onChange={(event) => set('trials', event.target.value)}
            />
          </div>

          <fieldset
            className={`field eval-fields__analyzers${analyzersProblem ? ' field--invalid' : ''}`}
            aria-describedby={describedBy('upload-analyzers-hint', analyzersProblem && 'upload-analyzers-error')}
          >
            <legend>{t('eval.analyzers')}</legend>
            <p id="upload-analyzers-hint" className="field__hint">
              {t('eval.analyzersHint')}
            </p>
            {errorLine('upload-analyzers-error', analyzersProblem)}
            {offered.map((name) => {
              const id = `upload-analyzer-${name}`;
              return (
                <div key={name} className="eval-fields__choice">
                  <div className="field--checkbox">
                    <input
                      id={id}
                      type="checkbox"
                      value={name}
                      checked={values.analyzers.includes(name)}
                      aria-describedby={`${id}-hint`}
                      onChange={(event) => toggle(name, event.target.checked)}
                    />
                    <label htmlFor={id}>{t(`eval.analyzer.${name}`)}</label>
                  </div>
                  <p id={`${id}-hint`} className="field__hint field__hint--checkbox">
                    {t(`eval.analyzer.${name}.hint`)}
                    {needsModel.has(name) && ` ${t('eval.analyzer.needsModel')}`}
                  </p>
                </div>
              );
            })}
          </fieldset>

          <div className={`field${baselineProblem ? ' field--invalid' : ''}`}>
            <label htmlFor={EVALUATION_FIELD_IDS.baselineBatchId}>{t('eval.baseline')}</label>
            <p id="upload-baseline-hint" className="field__hint">
              {t('eval.baselineHint')}
            </p>
            {errorLine('upload-baseline-error', baselineProblem)}
            <select
              id={EVALUATION_FIELD_IDS.baselineBatchId}
              className="input input--wide"
              value={values.baselineBatchId}
              aria-invalid={baselineProblem ? true : undefined}
              aria-describedby={describedBy(
                'upload-baseline-hint',
                baselineProblem && 'upload-baseline-error',
                'upload-baseline-state',
              )}
              onFocus={baselines.refresh}
              onChange={(event) => set('baselineBatchId', event.target.value)}
            >
              <option value="">{t('eval.baselineNone')}</option>
              {baselines.batches.map((batch) => (
                <option key={batch.batchId} value={batch.batchId}>
                  {t('eval.baselineOption', {
                    name: batch.name || batch.batchId,
                    date: formatDateTime(batch.createdAt, lang),
                    count: formatCount(batch.totalItems, lang),
                  })}
                </option>
              ))}
            </select>
            <p id="upload-baseline-state" className="field__hint" data-testid="baseline-state">
              {baselineNotes.join(' ')}
            </p>
          </div>

          <div className={`field${budgetProblem ? ' field--invalid' : ''}`}>
            <label htmlFor={EVALUATION_FIELD_IDS.budgetUsd}>{t('eval.budget')}</label>
            <p id="upload-budget-hint" className="field__hint">
              {t('eval.budgetHint')}
            </p>
            {errorLine('upload-budget-error', budgetProblem)}
            <input
              id={EVALUATION_FIELD_IDS.budgetUsd}
              type="text"
              inputMode="decimal"
              autoComplete="off"
              className="input input--narrow"
              value={values.budgetUsd}
              aria-invalid={budgetProblem ? true : undefined}
              aria-describedby={describedBy('upload-budget-hint', budgetProblem && 'upload-budget-error')}
              onChange={(event) => set('budgetUsd', event.target.value)}
            />
          </div>
        </fieldset>
      )}
    </div>
  );
}
