import { act, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TOKEN_KEY } from '../auth.js';
import { batchSummary, errorResponse, installFetch, jsonResponse } from '../test/fakeFetch.js';
import { LanguageProvider } from '../LanguageContext.jsx';
import { renderPage } from '../test/render.jsx';
import SummaryPanel, { SUMMARY_POLL_MS } from './SummaryPanel.jsx';

beforeEach(() => sessionStorage.setItem(TOKEN_KEY, 'tok'));
afterEach(() => vi.useRealTimers());

/** A summary as lib/summary.py `summarise` shapes it. */
export function summaryBody(overrides = {}) {
  return {
    batchId: 'b1',
    status: 'processed',
    totalItems: 12,
    trials: 3,
    byStatus: { succeeded: 10, blocked: 1, failed: 1 },
    blockedByStage: { profanity: 1 },
    answerTypes: { normal: 9, 'not-gc': 1 },
    analyzers: {
      'similar-answer': { passed: 7, failed: 1, notApplicable: 4, passRate: 0.875 },
      'expert-scorer': { passed: 0, failed: 0, notApplicable: 12, passRate: null },
    },
    blockDetection: {
      labelledRows: 10,
      truePositives: 3,
      falsePositives: 1,
      falseNegatives: 0,
      trueNegatives: 6,
      precision: 0.75,
      recall: 1,
    },
    latencyMs: { p50: 850, p95: 2400, rows: 11 },
    tokens: { input: 12345, output: 678, judges: { 'similar-answer': { inputTokens: 400, outputTokens: 60 } } },
    cost: {
      estimatedUsd: 0.0123,
      budgetUsd: 0.05,
      budgetUsedPercent: 24.6,
      unpricedModels: ['house-model'],
      stopReason: null,
    },
    stability: { trials: 3, questions: 4, allPass: 2, mixed: 1, allFail: 1, mixedRowNumbers: [3] },
    baseline: { batchId: '0123456789abcdef01234567', same: 6, drift: 4, better: 1, worse: 2, tie: 6, notCompared: 0 },
    ...overrides,
  };
}

describe('the summary panel', () => {
  it('is open at first for an evaluation run and shows every group of figures', async () => {
    const fetch = installFetch({ 'GET /api/batch/summary': () => jsonResponse(200, summaryBody()) });
    renderPage(<SummaryPanel batch={batchSummary({ status: 'processed', analyzers: ['similar-answer'] })} />);

    expect(screen.getByRole('button', { name: 'Hide the summary' })).toHaveAttribute('aria-expanded', 'true');
    expect(await screen.findByTestId('summary-status-succeeded')).toHaveTextContent('10');
    expect(fetch.requests[0].query).toEqual({ batchId: 'b1' });
    expect(screen.getByRole('heading', { name: 'Summary of “Passport questions”' })).toBeInTheDocument();
    expect(screen.getByTestId('summary-total')).toHaveTextContent('12 (4 questions × 3 trials)');
    expect(within(screen.getByTestId('summary-blocked')).getByText('profanity')).toBeInTheDocument();
    expect(within(screen.getByTestId('summary-answer-types')).getByText('not Government of Canada')).toBeInTheDocument();

    const similar = screen.getByTestId('summary-analyzer-similar-answer');
    expect(within(similar).getByRole('rowheader')).toHaveTextContent('Similar answer');
    expect(within(similar).getByTestId('pass-rate')).toHaveTextContent('87.5%');
    expect(within(screen.getByTestId('summary-analyzer-expert-scorer')).getByTestId('pass-rate')).toHaveTextContent('—');

    expect(screen.getByTestId('summary-block-detection')).toHaveTextContent('Precision 75%, recall 100%, over 10 rows');
    expect(screen.getByTestId('summary-p50')).toHaveTextContent('850 ms');
    expect(screen.getByTestId('summary-p95')).toHaveTextContent('2.4 s');
    expect(screen.getByTestId('summary-input-tokens')).toHaveTextContent('12,345');
    expect(screen.getByTestId('summary-tokens')).toHaveTextContent('400 in, 60 out');
    expect(screen.getByTestId('summary-cost-value')).toHaveTextContent('US$0.0123 of a US$0.0500 budget (24.6%)');
    expect(screen.getByRole('meter', { name: 'Estimated cost' })).toHaveAttribute('value', '0.0123');
    expect(screen.getByTestId('summary-cost')).toHaveTextContent('counted as free: house-model');
    expect(screen.getByTestId('summary-stability-mixed')).toHaveTextContent('1');
    expect(screen.getByTestId('summary-stability')).toHaveTextContent('Mixed on rows 3.');
    expect(screen.getByTestId('summary-baseline-drift')).toHaveTextContent('4');
    expect(screen.getByTestId('summary-baseline-worse')).toHaveTextContent('2');
    expect(screen.queryByTestId('summary-baseline-notCompared')).not.toBeInTheDocument();
    expect(screen.queryByTestId('summary-budget-reached')).not.toBeInTheDocument();
  });

  it('is closed for a plain batch and reads nothing until opened', async () => {
    const user = userEvent.setup();
    const fetch = installFetch({ 'GET /api/batch/summary': () => jsonResponse(200, summaryBody({ trials: 1 })) });
    renderPage(<SummaryPanel batch={batchSummary({ status: 'processed' })} />);

    expect(fetch.requests).toHaveLength(0);
    await user.click(screen.getByRole('button', { name: 'Show the summary' }));

    expect(await screen.findByTestId('summary-status-succeeded')).toBeInTheDocument();
    expect(fetch.requests).toHaveLength(1);
    // One trial: no stability group, and the total is the rows themselves.
    expect(screen.queryByTestId('summary-stability')).not.toBeInTheDocument();
    expect(screen.getByTestId('summary-total')).toHaveTextContent(/^12$/);
  });

  it('says when the budget stopped the batch, and words the figures in French', async () => {
    installFetch({
      'GET /api/batch/summary': () =>
        jsonResponse(200, summaryBody({ cost: { estimatedUsd: 0.05, budgetUsd: 0.05, budgetUsedPercent: 100, stopReason: 'BUDGET_EXCEEDED' } })),
    });
    renderPage(<SummaryPanel batch={batchSummary({ status: 'cancelled', budgetUsd: 0.05 })} />, { lang: 'fr' });

    expect(await screen.findByTestId('summary-budget-reached')).toHaveTextContent('Le budget a été atteint');
    expect(screen.getByRole('heading', { name: 'Sommaire de « Passport questions »' })).toBeInTheDocument();
    expect(screen.getByTestId('summary-cost-value')).toHaveTextContent('0,0500 $ US d’un budget de 0,0500 $ US (100 %)');
    expect(screen.getByTestId('summary-input-tokens')).toHaveTextContent('12 345');
    expect(within(screen.getByTestId('summary-analyzer-similar-answer')).getByTestId('pass-rate')).toHaveTextContent(
      '87,5 %',
    );
  });

  it('shows a refused read as a sentence and reads again on request', async () => {
    const user = userEvent.setup();
    let calls = 0;
    installFetch({
      'GET /api/batch/summary': () =>
        ++calls === 1 ? errorResponse(503, 'DATABASE_UNAVAILABLE', 'db down') : jsonResponse(200, summaryBody()),
    });
    renderPage(<SummaryPanel batch={batchSummary({ status: 'processed', trials: 3 })} />);

    const alert = await screen.findByTestId('summary-error');
    expect(alert).toHaveTextContent('The summary could not be loaded:');
    expect(alert).not.toHaveTextContent('db down');
    await user.click(within(alert).getByRole('button', { name: 'Try again' }));

    expect(await screen.findByTestId('summary-status-succeeded')).toBeInTheDocument();
    expect(screen.queryByTestId('summary-error')).not.toBeInTheDocument();
  });

  it('reads a running batch’s summary again only every 20 seconds, and once more when it ends', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const fetch = installFetch({
      'GET /api/batch/summary': () => jsonResponse(200, summaryBody({ status: 'processing' })),
    });
    const batch = batchSummary({ status: 'processing', analyzers: ['refusal'] });
    const { rerender } = renderPage(<SummaryPanel batch={batch} />);
    expect(await screen.findByTestId('summary-status-succeeded')).toBeInTheDocument();
    expect(screen.getByText(/refreshed every 20 seconds/)).toBeInTheDocument();
    expect(fetch.requests).toHaveLength(1);

    await act(() => vi.advanceTimersByTimeAsync(SUMMARY_POLL_MS - 1000));
    expect(fetch.requests).toHaveLength(1);
    await act(() => vi.advanceTimersByTimeAsync(1500));
    expect(fetch.requests).toHaveLength(2);

    rerender(
      <LanguageProvider initialLang="en">
        <SummaryPanel batch={{ ...batch, status: 'processed' }} />
      </LanguageProvider>,
    );
    await act(() => vi.advanceTimersByTimeAsync(10));
    expect(fetch.requests).toHaveLength(3);
    await act(() => vi.advanceTimersByTimeAsync(3 * SUMMARY_POLL_MS));
    expect(fetch.requests).toHaveLength(3);
  });
});
