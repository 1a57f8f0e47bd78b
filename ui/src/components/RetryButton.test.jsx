import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { TOKEN_KEY } from '../auth.js';
import { batchSummary, errorResponse, installFetch, jsonResponse } from '../test/fakeFetch.js';
import { LanguageProvider } from '../LanguageContext.jsx';
import { renderPage } from '../test/render.jsx';
import RetryButton, { retryableRows } from './RetryButton.jsx';

beforeEach(() => sessionStorage.setItem(TOKEN_KEY, 'tok'));

const finished = (overrides = {}) =>
  batchSummary({ status: 'completed_with_errors', processedItems: 7, failedItems: 3, ...overrides });

function setup(batch, routes, { lang } = {}) {
  const user = userEvent.setup();
  const onUpdate = vi.fn();
  const fetch = installFetch(routes);
  renderPage(<RetryButton batch={batch} onUpdate={onUpdate} />, { lang });
  return { user, onUpdate, fetch };
}

describe('which rows may run again', () => {
  it.each([
    [{ status: 'completed_with_errors', failedItems: 3, cancelledItems: 2 }, { status: 'failed', count: 3 }],
    [{ status: 'cancelled', failedItems: 0, cancelledItems: 2 }, { status: 'cancelled', count: 2 }],
    [{ status: 'processed', failedItems: 0, cancelledItems: 0 }, null],
    [{ status: 'processing', failedItems: 3, cancelledItems: 0 }, null],
  ])('%j: %j', (batch, rows) => {
    expect(retryableRows(batchSummary(batch))).toEqual(rows);
  });
});

describe('the retry button', () => {
  it('is not there for a running batch or one without failed rows', () => {
    installFetch({});
    const { rerender } = renderPage(<RetryButton batch={finished({ status: 'processing' })} />);
    expect(screen.queryByTestId('retry')).not.toBeInTheDocument();
    rerender(
      <LanguageProvider initialLang="en">
        <RetryButton batch={batchSummary({ status: 'processed', processedItems: 10 })} />
      </LanguageProvider>,
    );
    expect(screen.queryByTestId('retry')).not.toBeInTheDocument();
  });

  it('asks first, then runs the failed rows again and says how many', async () => {
    const { user, onUpdate, fetch } = setup(finished(), {
      'POST /api/batch/retry': () => jsonResponse(200, { batchId: 'b1', status: 'queued', run: 2, rows: 3, statuses: ['failed'] }),
      'GET /api/batch/status': () => jsonResponse(200, finished({ status: 'queued', failedItems: 0 })),
    });

    await user.click(screen.getByRole('button', { name: 'Retry failed rows' }));
    const dialog = screen.getByRole('alertdialog', { name: 'Run the failed rows again?' });
    expect(dialog).toHaveTextContent('The 3 failed rows of “Passport questions” run again in this batch');
    expect(screen.getByRole('button', { name: 'No, leave them' })).toHaveFocus();
    expect(fetch.requests).toHaveLength(0);

    await user.click(screen.getByRole('button', { name: 'Yes, run them again' }));

    expect(await screen.findByTestId('retry-outcome')).toHaveTextContent('3 rows are running again (run 2).');
    expect(screen.getByRole('status')).toBe(screen.getByTestId('retry-outcome'));
    expect(JSON.parse(fetch.requests[0].body)).toEqual({ batchId: 'b1', statuses: ['failed'] });
    expect(onUpdate).toHaveBeenCalledWith({ batchId: 'b1', status: 'queued' });
    await waitFor(() => expect(onUpdate).toHaveBeenLastCalledWith(expect.objectContaining({ status: 'queued', failedItems: 0 })));
    await waitFor(() => expect(screen.getByTestId('retry-outcome')).toHaveFocus());
  });

  it('does nothing when the confirmation is declined', async () => {
    const { user, fetch } = setup(finished(), {});
    await user.click(screen.getByRole('button', { name: 'Retry failed rows' }));
    await user.keyboard('{Escape}');

    expect(screen.queryByRole('alertdialog')).not.toBeInTheDocument();
    expect(fetch.requests).toHaveLength(0);
    expect(screen.getByRole('button', { name: 'Retry failed rows' })).toHaveFocus();
  });

  it('offers the cancelled rows of a cancelled batch', async () => {
    const { user, fetch } = setup(batchSummary({ status: 'cancelled', processedItems: 4, cancelledItems: 6 }), {
      'POST /api/batch/retry': () => jsonResponse(200, { batchId: 'b1', status: 'queued', run: 2, rows: 6 }),
      'GET /api/batch/status': () => jsonResponse(200, batchSummary({ status: 'queued' })),
    });
    await user.click(screen.getByRole('button', { name: 'Run cancelled rows again' }));
    await user.click(screen.getByRole('button', { name: 'Yes, run them again' }));

    expect(await screen.findByTestId('retry-outcome')).toHaveTextContent('6 rows are running again (run 2).');
    expect(JSON.parse(fetch.requests[0].body).statuses).toEqual(['cancelled']);
  });

  it.each([
    ['BATCH_ACTIVE', 'The batch is still running; its rows can run again once it has finished.'],
    ['NOTHING_TO_RETRY', 'No row with that status is left to run again.'],
    ['BUDGET_EXCEEDED', 'The batch has reached its budget of US$0.0500; its rows cannot run again within it.'],
  ])('words the 409 %s for a retry', async (code, sentence) => {
    const { user, onUpdate } = setup(finished({ budgetUsd: 0.05 }), {
      'POST /api/batch/retry': () => errorResponse(409, code, 'server words'),
      'GET /api/batch/status': () => jsonResponse(200, finished({ budgetUsd: 0.05 })),
    });
    await user.click(screen.getByRole('button', { name: 'Retry failed rows' }));
    await user.click(screen.getByRole('button', { name: 'Yes, run them again' }));

    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent(sentence);
    expect(alert).not.toHaveTextContent('server words');
    // A conflict means the page's view of the batch is stale: it reads the status again.
    await waitFor(() => expect(onUpdate).toHaveBeenCalled());
  });

  it('words any other refusal with the page’s error sentences, in French', async () => {
    const { user } = setup(finished(), {
      'POST /api/batch/retry': () => errorResponse(503, 'QUEUE_UNAVAILABLE', 'queue down'),
    }, { lang: 'fr' });
    await user.click(screen.getByRole('button', { name: 'Relancer les lignes échouées' }));
    await user.click(screen.getByRole('button', { name: 'Oui, les relancer' }));

    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent(/^Les lignes n’ont pas pu être relancées : /);
    expect(alert).not.toHaveTextContent('queue down');
  });
});

describe('one row', () => {
  it('is worded as one row', async () => {
    const { user } = setup(finished({ failedItems: 1 }), {
      'POST /api/batch/retry': () => jsonResponse(200, { batchId: 'b1', status: 'queued', run: 3, rows: 1 }),
      'GET /api/batch/status': () => jsonResponse(200, finished({ status: 'queued', failedItems: 0 })),
    });
    await user.click(screen.getByRole('button', { name: 'Retry failed rows' }));
    expect(screen.getByRole('alertdialog')).toHaveTextContent('The failed row of “Passport questions” runs again');
    await user.click(screen.getByRole('button', { name: 'Yes, run them again' }));
    expect(await screen.findByTestId('retry-outcome')).toHaveTextContent('1 row is running again (run 3).');
  });
});

describe('after the rows ran again', () => {
  it('says the run has finished once the batch is final again', async () => {
    const user = userEvent.setup();
    installFetch({
      'POST /api/batch/retry': () => jsonResponse(200, { batchId: 'b1', status: 'queued', run: 2, rows: 3 }),
      'GET /api/batch/status': () => jsonResponse(200, finished({ status: 'queued', failedItems: 0 })),
    });
    const { rerender } = renderPage(<RetryButton batch={finished()} />);
    await user.click(screen.getByRole('button', { name: 'Retry failed rows' }));
    await user.click(screen.getByRole('button', { name: 'Yes, run them again' }));
    expect(await screen.findByTestId('retry-outcome')).toHaveTextContent('3 rows are running again (run 2).');

    rerender(
      <LanguageProvider initialLang="en">
        <RetryButton batch={finished({ status: 'processing', failedItems: 0 })} />
      </LanguageProvider>,
    );
    expect(screen.getByTestId('retry-outcome')).toHaveTextContent('3 rows are running again (run 2).');
    rerender(
      <LanguageProvider initialLang="en">
        <RetryButton batch={finished({ status: 'processed', processedItems: 10, failedItems: 0 })} />
      </LanguageProvider>,
    );
    expect(screen.getByTestId('retry-outcome')).toHaveTextContent('Run 2 has finished.');
    expect(screen.queryByRole('button', { name: 'Retry failed rows' })).not.toBeInTheDocument();
  });
});

describe('a batch whose cost reached its budget', () => {
  const spent = () =>
    batchSummary({
      status: 'cancelled',
      processedItems: 2,
      cancelledItems: 2,
      budgetUsd: 0.002,
      estimatedCostUsd: 0.0028,
      stopReason: 'BUDGET_EXCEEDED',
    });

  it('runs its rows again only within a higher budget, asked for beside the button', async () => {
    const { user, fetch } = setup(spent(), {
      'POST /api/batch/retry': () => jsonResponse(200, { batchId: 'b1', status: 'queued', run: 2, rows: 2 }),
      'GET /api/batch/status': () => jsonResponse(200, batchSummary({ status: 'queued' })),
    });
    const field = screen.getByLabelText('New budget (US dollars)');
    expect(field).toHaveAccessibleDescription(/has cost US\$0\.0028 of its US\$0\.0020 budget/);

    await user.click(screen.getByRole('button', { name: 'Run cancelled rows again' }));
    expect(field).toHaveFocus();
    expect(field).toHaveAttribute('aria-invalid', 'true');
    expect(field).toHaveAccessibleDescription(/Give a budget above what the batch has already cost/);
    await user.type(field, '0.001');
    await user.click(screen.getByRole('button', { name: 'Run cancelled rows again' }));
    expect(screen.queryByRole('alertdialog')).not.toBeInTheDocument();
    expect(fetch.requests).toHaveLength(0);

    await user.clear(field);
    await user.type(field, '0.01');
    await user.click(screen.getByRole('button', { name: 'Run cancelled rows again' }));
    expect(screen.getByRole('alertdialog')).toHaveTextContent('Its budget becomes US$0.0100.');
    await user.click(screen.getByRole('button', { name: 'Yes, run them again' }));

    expect(await screen.findByTestId('retry-outcome')).toHaveTextContent('2 rows are running again (run 2).');
    expect(JSON.parse(fetch.requests[0].body)).toEqual({ batchId: 'b1', statuses: ['cancelled'], budgetUsd: 0.01 });
  });

  it('asks for the budget in French too', () => {
    setup(spent(), {}, { lang: 'fr' });
    expect(screen.getByLabelText('Nouveau budget (dollars américains)')).toHaveAccessibleDescription(
      /a coûté 0,0028\s\$\sUS de son budget de 0,0020\s\$\sUS/,
    );
  });
});
