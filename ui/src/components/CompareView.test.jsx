import { screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it } from 'vitest';
import { TOKEN_KEY } from '../auth.js';
import { batchSummary, errorResponse, installFetch, jsonResponse } from '../test/fakeFetch.js';
import { LanguageProvider } from '../LanguageContext.jsx';
import { renderPage } from '../test/render.jsx';
import CompareView, { PAGE_ROWS } from './CompareView.jsx';

const BASELINE = '0123456789abcdef01234567';

beforeEach(() => sessionStorage.setItem(TOKEN_KEY, 'tok'));

/** A compare row as lib/summary.py `compare_rows` shapes it. */
function compared(rowNumber, overrides = {}) {
  return {
    rowNumber,
    trial: 1,
    question: `Question ${rowNumber}?`,
    baselineStatus: 'succeeded',
    baselineAnswer: `Old answer ${rowNumber}`,
    baselineCitationUrl: 'https://www.canada.ca/en/old.html',
    status: 'succeeded',
    answer: `New answer ${rowNumber}`,
    citationUrl: 'https://www.canada.ca/en/new.html',
    'similarity.label': 'same-meaning',
    'similarity.score': 0.93,
    'similarity.winner': 'tie',
    ...overrides,
  };
}

const ROWS = [
  compared(2),
  compared(3, { 'similarity.label': 'meaning-drift', 'similarity.score': 0.41, 'similarity.winner': 'new' }),
  compared(4, { 'similarity.label': 'meaning-drift', 'similarity.score': 0.2, 'similarity.winner': 'baseline' }),
  compared(5, { status: 'failed', answer: null, citationUrl: null, 'similarity.label': null, 'similarity.score': null, 'similarity.winner': null }),
  compared(6, { 'similarity.label': 'meaning-drift', 'similarity.winner': null, citationUrl: 'javascript:alert(1)' }),
];

function routes(items = ROWS) {
  return {
    'GET /api/batch/compare': () => jsonResponse(200, { batchId: 'b2', baselineBatchId: BASELINE, columns: [], items }),
    'GET /api/batch/status': () => jsonResponse(200, batchSummary({ batchId: BASELINE, name: 'Spring run' })),
  };
}

async function open(user, { lang } = {}) {
  renderPage(<CompareView batch={batchSummary({ batchId: 'b2', name: 'Summer run', baselineBatchId: BASELINE })} />, { lang });
  await user.click(screen.getByTestId('compare-toggle'));
}

describe('the comparison view', () => {
  it('is not there for a batch without a baseline', () => {
    renderPage(<CompareView batch={batchSummary()} />);
    expect(screen.queryByTestId('compare-view')).not.toBeInTheDocument();
  });

  it('reads the comparison only when opened, and lists both answers row by row', async () => {
    const user = userEvent.setup();
    const fetch = installFetch(routes());
    renderPage(<CompareView batch={batchSummary({ batchId: 'b2', name: 'Summer run', baselineBatchId: BASELINE })} />);
    expect(fetch.requests).toHaveLength(0);

    await user.click(screen.getByRole('button', { name: 'Compare with the baseline' }));

    expect(await screen.findByRole('heading', { name: '“Summer run” beside its baseline “Spring run”' })).toBeInTheDocument();
    const compare = fetch.requests.find((r) => r.path === '/api/batch/compare');
    expect(compare.query).toEqual({ batchId: 'b2', format: 'json', baselineBatchId: BASELINE });
    expect(screen.getByRole('button', { name: 'Hide the comparison' })).toHaveAttribute('aria-expanded', 'true');
    expect(screen.getByTestId('compare-count')).toHaveTextContent('Showing 5 of 5 rows.');

    const table = screen.getByRole('table', { name: 'Each row’s answer in the baseline and in this batch' });
    expect(within(table).getAllByRole('columnheader').map((h) => h.textContent)).toEqual([
      'Row',
      'Question',
      'Baseline answer',
      'New answer',
      'Similarity',
      'Verdict',
    ]);
    const row = screen.getByTestId('compare-row-4-1');
    expect(row).toHaveTextContent('Old answer 4');
    expect(row).toHaveTextContent('New answer 4');
    expect(row).toHaveTextContent('meaning drifted');
    expect(row).toHaveTextContent('score 0.2');
    expect(within(row).getByTestId('compare-verdict')).toHaveTextContent('Worse');
    expect(within(screen.getByTestId('compare-row-3-1')).getByTestId('compare-verdict')).toHaveTextContent('Better');
    expect(screen.getByTestId('compare-row-5-1')).toHaveTextContent('No answer (Failed)');
    expect(within(row).getByRole('link', { name: 'https://www.canada.ca/en/new.html' })).toHaveAttribute(
      'href',
      'https://www.canada.ca/en/new.html',
    );
    // A citation that is not a web link stays text.
    expect(within(screen.getByTestId('compare-row-6-1')).queryByRole('link', { name: /javascript/ })).toBeNull();
  });

  it('narrows the table to the rows that drifted or got worse', async () => {
    const user = userEvent.setup();
    installFetch(routes());
    await open(user);

    await user.click(await screen.findByLabelText('Only the rows that drifted or got worse'));

    expect(screen.getByTestId('compare-count')).toHaveTextContent('Showing 3 of 5 rows.');
    const shown = within(screen.getByTestId('compare-table'))
      .getAllByRole('row')
      .slice(1)
      .map((r) => r.getAttribute('data-verdict'));
    expect(shown).toEqual(['better', 'worse', 'drift']);
  });

  it('says so when no row changed, and shows the trial column when there are trials', async () => {
    const user = userEvent.setup();
    installFetch(routes([compared(2), compared(2, { trial: 2 })]));
    await open(user);

    expect(await screen.findByRole('columnheader', { name: 'Trial' })).toBeInTheDocument();
    await user.click(screen.getByLabelText('Only the rows that drifted or got worse'));
    expect(screen.getByTestId('compare-none')).toHaveTextContent('No row drifted or got worse.');
    expect(screen.queryByTestId('compare-table')).not.toBeInTheDocument();
  });

  it('shows many rows a hundred at a time', async () => {
    const user = userEvent.setup();
    const many = Array.from({ length: PAGE_ROWS + 20 }, (_, i) => compared(i + 2));
    installFetch(routes(many));
    await open(user);

    expect(await screen.findByTestId('compare-count')).toHaveTextContent(`Showing 100 of 120 rows.`);
    await user.click(screen.getByRole('button', { name: 'Show 20 more rows' }));
    expect(screen.getByTestId('compare-count')).toHaveTextContent('Showing 120 of 120 rows.');
    expect(screen.queryByRole('button', { name: /more rows/ })).not.toBeInTheDocument();
  });

  it('words a refused comparison, in French too', async () => {
    const user = userEvent.setup();
    installFetch({
      'GET /api/batch/compare': () => errorResponse(404, 'BASELINE_NOT_FOUND', 'No such baseline batch.'),
      'GET /api/batch/status': () => errorResponse(404, 'BATCH_NOT_FOUND', 'gone'),
    });
    await open(user, { lang: 'fr' });

    const alert = await screen.findByTestId('compare-error');
    expect(alert).toHaveTextContent('La comparaison n’a pas pu être chargée');
    expect(alert).not.toHaveTextContent('No such baseline batch.');
    // Without the baseline's name, its id stands in.
    expect(screen.getByRole('heading', { level: 4 })).toHaveTextContent(BASELINE);
  });
});

describe('a running batch’s comparison', () => {
  it('is read again when the batch’s status changes', async () => {
    const user = userEvent.setup();
    let items = [compared(2)];
    const fetch = installFetch({
      ...routes(),
      'GET /api/batch/compare': () => jsonResponse(200, { batchId: 'b2', baselineBatchId: BASELINE, columns: [], items }),
    });
    const batch = batchSummary({ batchId: 'b2', status: 'processing', baselineBatchId: BASELINE });
    const { rerender } = renderPage(<CompareView batch={batch} />);
    await user.click(screen.getByTestId('compare-toggle'));
    expect(await screen.findByText('Showing 1 of 1 rows.')).toBeInTheDocument();

    items = [compared(2), compared(3)];
    rerender(
      <LanguageProvider initialLang="en">
        <CompareView batch={{ ...batch, status: 'processed' }} />
      </LanguageProvider>,
    );

    expect(await screen.findByText('Showing 2 of 2 rows.')).toBeInTheDocument();
    expect(fetch.requests.filter((r) => r.path === '/api/batch/compare')).toHaveLength(2);
  });
});
