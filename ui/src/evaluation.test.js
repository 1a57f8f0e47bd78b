import { beforeEach, describe, expect, it } from 'vitest';
import { ApiError } from './api.js';
import { TOKEN_KEY } from './auth.js';
import {
  ANALYZERS,
  DEFAULT_EVALUATION,
  EVALUATION_FIELD_IDS,
  analyzersOffered,
  appendEvaluationFields,
  baselineChoices,
  comparisonVerdict,
  countEntries,
  driftedOrWorse,
  evaluationFormFields,
  formatMs,
  formatRate,
  formatUsd,
  getComparison,
  getSummary,
  isEvaluation,
  maxTrialsOf,
  parseBudget,
  retryBatch,
  validateEvaluation,
} from './evaluation.js';
import { EVALUATION_STRINGS } from './i18n-evaluation.js';
import { DICTIONARIES, translate } from './i18n.js';
import { batchSummary, errorResponse, installFetch, jsonResponse } from './test/fakeFetch.js';

const BASELINE = '0123456789abcdef01234567';
const values = (overrides = {}) => ({ ...DEFAULT_EVALUATION, ...overrides });

describe('the evaluation API calls', () => {
  beforeEach(() => sessionStorage.setItem(TOKEN_KEY, 'tok'));

  it('reads a summary with the bearer token', async () => {
    const fetch = installFetch({ 'GET /api/batch/summary': () => jsonResponse(200, { batchId: 'b1', byStatus: {} }) });

    await expect(getSummary('b1')).resolves.toEqual({ batchId: 'b1', byStatus: {} });
    expect(fetch.requests[0].query).toEqual({ batchId: 'b1' });
    expect(fetch.requests[0].headers.Authorization).toBe('Bearer tok');
  });

  it('asks for the comparison as JSON, with the baseline only when given', async () => {
    const fetch = installFetch({ 'GET /api/batch/compare': () => jsonResponse(200, { items: [] }) });

    await getComparison('b2', BASELINE);
    await getComparison('b2');

    expect(fetch.requests.map((r) => r.query)).toEqual([
      { batchId: 'b2', format: 'json', baselineBatchId: BASELINE },
      { batchId: 'b2', format: 'json' },
    ]);
  });

  it('posts a retry of the failed rows as JSON', async () => {
    const fetch = installFetch({
      'POST /api/batch/retry': () => jsonResponse(200, { batchId: 'b1', status: 'queued', run: 2, rows: 3 }),
    });

    await expect(retryBatch('b1')).resolves.toMatchObject({ run: 2, rows: 3 });
    expect(JSON.parse(fetch.requests[0].body)).toEqual({ batchId: 'b1', statuses: ['failed'] });
    expect(fetch.requests[0].headers['Content-Type']).toBe('application/json');
  });

  it('turns a refused retry into an ApiError with its code', async () => {
    installFetch({
      'POST /api/batch/retry': () => errorResponse(409, 'NOTHING_TO_RETRY', 'No rows.', { statuses: ['failed'] }),
    });

    const error = await retryBatch('b1').catch((e) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 409, code: 'NOTHING_TO_RETRY' });
  });
});

describe('the evaluation fields', () => {
  it.each([
    ['1', []],
    ['8', []],
    ['', []],
    ['0', ['trials']],
    ['9', ['trials']],
    ['2.5', ['trials']],
    ['two', ['trials']],
  ])('trials %j gives problems %j', (trials, fields) => {
    expect(validateEvaluation(values({ trials })).map((p) => p.field)).toEqual(fields);
  });

  it('takes the most trials from the server when it says', () => {
    expect(validateEvaluation(values({ trials: '4' }), { maxTrials: 3 })).toEqual([
      { field: 'trials', key: 'eval.validation.trials', params: { max: 3 } },
    ]);
    expect(maxTrialsOf({ maxTrials: 3 })).toBe(3);
    expect(maxTrialsOf({})).toBe(8);
    expect(maxTrialsOf({ maxTrials: 'lots' })).toBe(8);
  });

  it.each([
    ['5', 5],
    ['12.50', 12.5],
    ['12,50', 12.5],
    ['$3', 3],
    [' 0.25 ', 0.25],
    ['1e3', null],
    ['-2', null],
    ['12.1234567', null],
    ['', null],
  ])('reads the budget %j as %j', (text, budget) => {
    expect(parseBudget(text)).toBe(budget);
  });

  it.each([
    ['0', true],
    ['0.00', true],
    ['1000001', true],
    ['abc', true],
    ['1000000', false],
    ['0.01', false],
  ])('budget %j is refused: %s', (budgetUsd, refused) => {
    const problems = validateEvaluation(values({ budgetUsd }));
    expect(problems.some((p) => p.field === 'budgetUsd')).toBe(refused);
  });

  it('refuses a baseline that is not a batch id and an analyzer the deployment does not offer', () => {
    const problems = validateEvaluation(values({ baselineBatchId: 'nope', analyzers: ['refusal', 'mind-reader'] }), {
      analyzers: ANALYZERS,
    });
    expect(problems).toEqual([
      { field: 'analyzers', key: 'eval.validation.analyzers', params: { names: 'mind-reader' } },
      { field: 'baselineBatchId', key: 'eval.validation.baseline', params: {} },
    ]);
  });

  it('sends nothing for the defaults', () => {
    expect(evaluationFormFields(DEFAULT_EVALUATION)).toEqual([]);
  });

  it('sends each chosen value as create expects it', () => {
    const chosen = values({
      trials: '3',
      analyzers: ['expert-scorer', 'similar-answer'],
      baselineBatchId: BASELINE,
      budgetUsd: '2,50',
    });
    expect(evaluationFormFields(chosen)).toEqual([
      ['trials', '3'],
      ['analyzers', 'similar-answer,expert-scorer'],
      ['baselineBatchId', BASELINE],
      ['budgetUsd', '2.5'],
    ]);
    const form = appendEvaluationFields(new FormData(), chosen);
    expect(form.get('analyzers')).toBe('similar-answer,expert-scorer');
    expect(form.get('budgetUsd')).toBe('2.5');
  });

  it('offers the analyzers the server lists, in the form’s order, or every one without a list', () => {
    expect(analyzersOffered({ analyzers: [{ name: 'expert-scorer' }, { name: 'refusal' }] })).toEqual([
      'refusal',
      'expert-scorer',
    ]);
    expect(analyzersOffered(null)).toEqual(ANALYZERS);
  });

  it('links every field of the error summary to an input id', () => {
    expect(Object.keys(EVALUATION_FIELD_IDS).sort()).toEqual(['analyzers', 'baselineBatchId', 'budgetUsd', 'trials']);
  });

  it('offers as baselines only finished batches with answered rows', () => {
    const batches = [
      batchSummary({ batchId: 'running', status: 'processing', processedItems: 3 }),
      batchSummary({ batchId: 'done', status: 'processed', processedItems: 10 }),
      batchSummary({ batchId: 'errors', status: 'completed_with_errors', processedItems: 4 }),
      batchSummary({ batchId: 'nothing', status: 'failed', processedItems: 0 }),
    ];
    expect(baselineChoices(batches).map((b) => b.batchId)).toEqual(['done', 'errors']);
    expect(baselineChoices(null)).toEqual([]);
  });

  it('calls a batch an evaluation when it has analyzers, trials, a baseline or a budget', () => {
    expect(isEvaluation(batchSummary())).toBe(false);
    expect(isEvaluation(batchSummary({ analyzers: [], trials: 1, baselineBatchId: null, budgetUsd: null }))).toBe(false);
    expect(isEvaluation(batchSummary({ analyzers: ['refusal'] }))).toBe(true);
    expect(isEvaluation(batchSummary({ trials: 3 }))).toBe(true);
    expect(isEvaluation(batchSummary({ baselineBatchId: BASELINE }))).toBe(true);
    expect(isEvaluation(batchSummary({ budgetUsd: 5 }))).toBe(true);
  });
});

describe('reading a comparison and a summary', () => {
  const row = (label, winner) => ({ 'similarity.label': label, 'similarity.winner': winner });

  it.each([
    [row('same-meaning', 'tie'), 'same', false],
    [row('meaning-drift', 'new'), 'better', true],
    [row('meaning-drift', null), 'drift', true],
    [row('meaning-drift', 'baseline'), 'worse', true],
    [row('same-meaning', 'baseline'), 'worse', true],
    [row(null, null), null, false],
  ])('%j is %s (drifted or worse: %s)', (compared, verdict, changed) => {
    expect(comparisonVerdict(compared)).toBe(verdict);
    expect(driftedOrWorse(compared)).toBe(changed);
  });

  it('words money, rates and times in each language', () => {
    expect(formatUsd(0.0123, 'en')).toBe('US$0.0123');
    expect(formatUsd(12.5, 'en')).toBe('US$12.50');
    expect(formatUsd(0.0123, 'fr')).toBe('0,0123\u00a0$\u00a0US');
    expect(formatUsd(null)).toBe('—');
    expect(formatRate(0.875, 'en')).toBe('87.5%');
    expect(formatRate(0.875, 'fr')).toBe('87,5\u00a0%');
    expect(formatRate(null)).toBe('—');
    expect(formatMs(850, 'en')).toBe('850 ms');
    expect(formatMs(1250, 'fr')).toBe('1,3 s');
    expect(formatMs(null)).toBe('—');
  });

  it('lists counts above zero, largest first', () => {
    expect(countEntries({ failed: 1, succeeded: 8, blocked: 0, cancelled: 1 })).toEqual([
      ['succeeded', 8],
      ['cancelled', 1],
      ['failed', 1],
    ]);
    expect(countEntries(null)).toEqual([]);
  });
});

describe('the evaluation strings', () => {
  const placeholders = (text) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

  it('have a French sentence for every English one, with the same placeholders', () => {
    const { en, fr } = EVALUATION_STRINGS;
    expect(Object.keys(fr).sort()).toEqual(Object.keys(en).sort());
    for (const key of Object.keys(en)) {
      expect(key.startsWith('eval.'), key).toBe(true);
      expect(placeholders(fr[key]), key).toEqual(placeholders(en[key]));
    }
  });

  it('reach the page’s dictionaries, so t() finds them in both languages', () => {
    expect(DICTIONARIES.en['eval.retry.failed']).toBe('Retry failed rows');
    expect(translate('fr', 'eval.retry.failed')).toBe('Relancer les lignes échouées');
    expect(translate('fr', 'eval.trialsHint', { max: 8 })).toContain('De 1 à 8');
  });
});
