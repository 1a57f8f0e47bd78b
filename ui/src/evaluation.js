// Evaluation runs on the page (issue 12): the calls of /api/batch/summary, /compare and
// /retry (through api.js's `request`, so the bearer header and the error envelope are
// handled in one place), the upload form's evaluation fields (trials, analyzers,
// baseline, budget) checked and sent as create's form fields, and the small pure
// helpers the summary and comparison views read their numbers with.

import { API_BASE, request } from './api.js';
import { FINAL_STATUSES } from './format.js';

/** The analyzers create accepts (api.md), in the order the form lists them. */
export const ANALYZERS = ['refusal', 'citation', 'similar-answer', 'expert-scorer'];
/** The analyzers that compare with a reference (the baseline's answer when there is one). */
export const COMPARING_ANALYZERS = ['similar-answer', 'expert-scorer'];
export const MAX_TRIALS = 8;
/** The server's cap on budgetUsd (lib/evaluation.py MAX_BUDGET_USD). */
export const MAX_BUDGET_USD = 1_000_000;
/** The form's starting values: one trial, no analyzer, no baseline, no budget. */
export const DEFAULT_EVALUATION = Object.freeze({ trials: '1', analyzers: [], baselineBatchId: '', budgetUsd: '' });
/** The ids of the form's evaluation inputs, for the error summary's links. */
export const EVALUATION_FIELD_IDS = {
  trials: 'upload-trials',
  analyzers: 'upload-analyzer-refusal',
  baselineBatchId: 'upload-baseline',
  budgetUsd: 'upload-budget',
};

async function json(path, options) {
  const response = await request(path, options);
  return response.json();
}

const withQuery = (path, params) => `${API_BASE}/${path}?${new URLSearchParams(params)}`;

/** GET /api/batch/summary: counts, pass rates, latency, tokens, cost, stability, baseline drift. */
export function getSummary(batchId) {
  return json(withQuery('summary', { batchId }));
}

/**
 * GET /api/batch/compare as JSON: {batchId, baselineBatchId, columns, items}; each item
 * a row beside the baseline's (rowNumber, trial, question, baseline and new answer and
 * citation, similarity.label / .score / .winner). Without a baseline id the server uses
 * the batch's own.
 */
export function getComparison(batchId, baselineBatchId) {
  const params = { batchId, format: 'json' };
  if (baselineBatchId) params.baselineBatchId = baselineBatchId;
  return json(withQuery('compare', params));
}

/**
 * POST /api/batch/retry: the rows with these statuses run again in place, within a new
 * budget when one is given; resolves to {batchId, status, run, rows, statuses}.
 */
export function retryBatch(batchId, statuses = ['failed'], budgetUsd = null) {
  const body = { batchId, statuses };
  if (typeof budgetUsd === 'number') body.budgetUsd = budgetUsd;
  return json(`${API_BASE}/retry`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
}

/** Whether a batch's estimated cost has reached its budget (lib/models.py Batch.budget_reached). */
export function budgetReached(batch) {
  return typeof batch?.budgetUsd === 'number' && Number(batch?.estimatedCostUsd ?? 0) >= batch.budgetUsd;
}

/**
 * The problem with a new budget for a retry ({key, params}), or null: it must be an
 * amount above what the batch has already cost (the server says the same, INVALID_BUDGET).
 */
export function retryBudgetProblem(text, batch) {
  const budget = parseBudget(text);
  const spent = Number(batch?.estimatedCostUsd ?? 0);
  if (budget === null || budget <= spent || budget > MAX_BUDGET_USD) return { key: 'eval.retry.budgetInvalid', params: {} };
  return null;
}

// --- the upload form's evaluation fields ----------------------------------------------

/** The analyzers this deployment offers (options.analyzers: [{name, needsModel}]), in the form's order. */
export function analyzersOffered(options) {
  const offered = Array.isArray(options?.analyzers)
    ? options.analyzers.map((entry) => (typeof entry === 'string' ? entry : entry?.name))
    : null;
  const known = offered ? ANALYZERS.filter((name) => offered.includes(name)) : [];
  return known.length > 0 ? known : ANALYZERS;
}

/** The most trials this deployment allows (options.maxTrials), 8 unless told. */
export function maxTrialsOf(options) {
  const max = Number(options?.maxTrials);
  return Number.isInteger(max) && max >= 1 ? max : MAX_TRIALS;
}

/** A budget as typed ("12.50", or "12,50" in French) as a number, or null when it is not one. */
export function parseBudget(text) {
  const plain = String(text ?? '')
    .trim()
    .replace(/^\$\s*|\s*\$$/g, '');
  if (!/^\d{1,9}([.,]\d{1,6})?$/.test(plain)) return null;
  return Number(plain.replace(',', '.'));
}

/**
 * The problems with the evaluation fields, as `{field, key, params}` like validateUpload
 * (validation.js), in the order the form shows them. The server checks them again.
 */
export function validateEvaluation(values, { maxTrials = MAX_TRIALS, analyzers = ANALYZERS } = {}) {
  const problems = [];
  const trials = String(values?.trials ?? '').trim();
  if (trials !== '' && (!/^\d{1,2}$/.test(trials) || Number(trials) < 1 || Number(trials) > maxTrials)) {
    problems.push({ field: 'trials', key: 'eval.validation.trials', params: { max: maxTrials } });
  }
  const unknown = (values?.analyzers ?? []).filter((name) => !analyzers.includes(name));
  if (unknown.length > 0) {
    problems.push({ field: 'analyzers', key: 'eval.validation.analyzers', params: { names: unknown.join(', ') } });
  }
  const baseline = String(values?.baselineBatchId ?? '').trim();
  if (baseline !== '' && !/^[0-9a-f]{24}$/.test(baseline)) {
    problems.push({ field: 'baselineBatchId', key: 'eval.validation.baseline', params: {} });
  }
  const budgetText = String(values?.budgetUsd ?? '').trim();
  if (budgetText !== '') {
    const budget = parseBudget(budgetText);
    if (budget === null || budget <= 0 || budget > MAX_BUDGET_USD) {
      problems.push({ field: 'budgetUsd', key: 'eval.validation.budget', params: {} });
    }
  }
  return problems;
}

/**
 * The create form fields for the evaluation values, as [name, value] pairs; the defaults
 * (one trial, no analyzer, no baseline, no budget) are left out, as the server assumes them.
 */
export function evaluationFormFields(values) {
  const fields = [];
  const trials = String(values?.trials ?? '').trim();
  if (trials !== '' && trials !== '1') fields.push(['trials', String(Number(trials))]);
  const chosen = ANALYZERS.filter((name) => (values?.analyzers ?? []).includes(name));
  if (chosen.length > 0) fields.push(['analyzers', chosen.join(',')]);
  const baseline = String(values?.baselineBatchId ?? '').trim();
  if (baseline !== '') fields.push(['baselineBatchId', baseline]);
  const budget = parseBudget(values?.budgetUsd);
  if (budget !== null) fields.push(['budgetUsd', String(budget)]);
  return fields;
}

/** Adds the evaluation fields to create's multipart body (api.js buildCreateForm); returns the form. */
export function appendEvaluationFields(form, values) {
  for (const [name, value] of evaluationFormFields(values)) form.append(name, value);
  return form;
}

/**
 * The batches that may serve as a baseline: the caller's final batches with answered
 * rows (a batch with none has no answer to compare with), newest first as listed.
 */
export function baselineChoices(batches) {
  return (Array.isArray(batches) ? batches : []).filter(
    (batch) => FINAL_STATUSES.includes(batch?.status) && Number(batch?.processedItems) > 0,
  );
}

/** Whether a batch was run as an evaluation (its summary is worth showing open). */
export function isEvaluation(batch) {
  return (
    (Array.isArray(batch?.analyzers) && batch.analyzers.length > 0) ||
    Number(batch?.trials) > 1 ||
    Boolean(batch?.baselineBatchId) ||
    typeof batch?.budgetUsd === 'number'
  );
}

// --- reading a summary and a comparison ---------------------------------------------

/** A comparison row whose meaning drifted from the baseline's, or that the judge found worse. */
export function driftedOrWorse(row) {
  return row?.['similarity.label'] === 'meaning-drift' || row?.['similarity.winner'] === 'baseline';
}

/** What a comparison row became next to the baseline: same, drift, better, worse, or null (not judged). */
export function comparisonVerdict(row) {
  const winner = row?.['similarity.winner'];
  if (winner === 'baseline') return 'worse';
  if (winner === 'new') return 'better';
  const label = row?.['similarity.label'];
  if (label === 'meaning-drift') return 'drift';
  if (label === 'same-meaning') return 'same';
  return null;
}

const locale = (lang) => (lang === 'fr' ? 'fr-CA' : 'en-CA');

/** US dollars for people: "US$0.0123" / "0,0123 $ US"; amounts under a dollar keep four decimals. */
export function formatUsd(value, lang = 'en') {
  if (typeof value !== 'number' || !Number.isFinite(value)) return '—';
  const digits = value !== 0 && Math.abs(value) < 1 ? 4 : 2;
  return value.toLocaleString(locale(lang), {
    style: 'currency',
    currency: 'USD',
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** A rate from 0 to 1 as a percentage ("87.5 %" in French, "87.5%" in English); "—" when unknown. */
export function formatRate(rate, lang = 'en') {
  if (typeof rate !== 'number' || !Number.isFinite(rate)) return '—';
  return rate.toLocaleString(locale(lang), { style: 'percent', maximumFractionDigits: 1 });
}

/** Milliseconds for people: "850 ms", "1.2 s" (comma decimals in French); "—" when unknown. */
export function formatMs(ms, lang = 'en') {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms).toLocaleString(locale(lang))} ms`;
  return `${(ms / 1000).toLocaleString(locale(lang), { maximumFractionDigits: 1 })} s`;
}

/** The entries of a count map ({name: n}) with a count above 0, largest first, then by name. */
export function countEntries(counts) {
  return Object.entries(counts && typeof counts === 'object' ? counts : {})
    .filter(([, n]) => typeof n === 'number' && n > 0)
    .sort(([a, x], [b, y]) => y - x || a.localeCompare(b));
}
