import { screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { batchProgress } from '../format.js';
import { renderPage } from '../test/render.jsx';
import ProgressBar, { segmentWidths } from './ProgressBar.jsx';

const progress = batchProgress({ totalItems: 3000, processedItems: 438, failedItems: 2, cancelledItems: 2560 });

describe('segmentWidths', () => {
  it('gives each outcome its share of the bar, adding up to the settled rows', () => {
    const widths = segmentWidths(batchProgress({ totalItems: 8, processedItems: 4, blockedItems: 1, failedItems: 1 }));

    expect(widths).toEqual({ answered: 50, blocked: 12.5, failed: 12.5, cancelled: 0 });
  });

  it('is all zeros for an empty batch', () => {
    expect(segmentWidths(batchProgress({ totalItems: 0 }))).toEqual({
      answered: 0,
      blocked: 0,
      failed: 0,
      cancelled: 0,
    });
  });
});

describe('the progress bar', () => {
  it('is one progressbar whose value text names every count, with a legend of the same counts', () => {
    renderPage(<ProgressBar progress={progress} status="cancelled" label="Progress of X" legendLabel="Rows of X" />);

    const bar = screen.getByRole('progressbar', { name: 'Progress of X' });
    expect(bar).toHaveAttribute('aria-valuenow', '100');
    expect(bar).toHaveAttribute('aria-valuetext', '438 answered, 0 blocked, 2 failed, 2,560 cancelled of 3,000');
    expect(bar.children).toHaveLength(3); // answered, failed, cancelled: no empty segment
    expect(
      within(screen.getByRole('list', { name: 'Rows of X' }))
        .getAllByRole('listitem')
        .map((item) => item.textContent),
    ).toEqual(['Answered: 438', 'Blocked: 0', 'Failed: 2', 'Cancelled: 2,560', 'Total: 3,000']);
  });

  it('notes the trials when a batch runs several', () => {
    renderPage(
      <ProgressBar
        progress={batchProgress({ totalItems: 30, trials: 3, processedItems: 6 })}
        status="processing"
        label="P"
        legendLabel="L"
        trialsNote="10 rows × 3 trials"
      />,
    );

    expect(screen.getByText('Total: 30 (10 rows × 3 trials)')).toBeInTheDocument();
    expect(screen.getByTestId('legend-waiting')).toHaveTextContent('Waiting: 24');
  });

  it('reads in French', () => {
    renderPage(<ProgressBar progress={progress} status="cancelled" label="P" legendLabel="L" />, { lang: 'fr' });

    expect(screen.getByRole('progressbar')).toHaveAttribute(
      'aria-valuetext',
      '438 répondues, 0 bloquées, 2 échouées, 2\u00a0560 annulées sur 3\u00a0000',
    );
    expect(screen.getByTestId('legend-answered')).toHaveTextContent('Répondues : 438');
  });
});
