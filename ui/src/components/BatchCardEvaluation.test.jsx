import { screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { TOKEN_KEY } from '../auth.js';
import { batchSummary, installFetch, jsonResponse } from '../test/fakeFetch.js';
import { renderPage } from '../test/render.jsx';
import BatchCard from './BatchCard.jsx';

const BASELINE = '0123456789abcdef01234567';

beforeEach(() => sessionStorage.setItem(TOKEN_KEY, 'tok'));

function card(batch) {
  const onUpdate = vi.fn();
  renderPage(
    <ul>
      <BatchCard batch={batch} onUpdate={onUpdate} />
    </ul>,
  );
  return onUpdate;
}

describe('a batch card of an evaluation run', () => {
  it('shows the summary, the retry of its failed rows and the comparison with its baseline', async () => {
    const user = userEvent.setup();
    const fetch = installFetch({
      'GET /api/batch/summary': () => jsonResponse(200, { batchId: 'b1', totalItems: 10, trials: 1, byStatus: { succeeded: 8, failed: 2 } }),
      'GET /api/batch/compare': () => jsonResponse(200, { batchId: 'b1', baselineBatchId: BASELINE, columns: [], items: [] }),
      'GET /api/batch/status': () => jsonResponse(200, batchSummary({ batchId: BASELINE, name: 'Spring run' })),
    });
    card(
      batchSummary({
        status: 'completed_with_errors',
        processedItems: 8,
        failedItems: 2,
        analyzers: ['similar-answer'],
        baselineBatchId: BASELINE,
      }),
    );

    expect(await screen.findByTestId('summary-status-failed')).toHaveTextContent('2');
    expect(screen.getByRole('button', { name: 'Retry failed rows' })).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Compare with the baseline' }));
    expect(await screen.findByText('The batch has no row to compare yet.')).toBeInTheDocument();
    expect(fetch.requests.map((r) => r.path)).toContain('/api/batch/compare');
  });

  it('of a plain finished batch reads no summary until asked and offers neither retry nor comparison', () => {
    const fetch = installFetch({});
    card(batchSummary({ status: 'processed', processedItems: 10 }));

    expect(screen.getByRole('button', { name: 'Show the summary' })).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Retry failed rows' })).not.toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Compare with the baseline' })).not.toBeInTheDocument();
    expect(fetch.requests).toHaveLength(0);
  });
});
