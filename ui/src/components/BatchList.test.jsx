import { act, fireEvent, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TOKEN_KEY } from '../auth.js';
import { batchSummary, errorResponse, installFetch, jsonResponse } from '../test/fakeFetch.js';
import { LanguageProvider } from '../LanguageContext.jsx';
import { renderPage } from '../test/render.jsx';
import BatchList from './BatchList.jsx';

beforeEach(() => {
  sessionStorage.setItem(TOKEN_KEY, 'tok');
});

afterEach(() => {
  vi.useRealTimers();
});

const row = (batchId) => screen.getByTestId(`batch-row-${batchId}`);

describe('an empty list', () => {
  it('says there are no batches yet', async () => {
    installFetch({ 'GET /api/batch/list': () => jsonResponse(200, []) });

    renderPage(<BatchList />);

    expect(await screen.findByText('You have no batches yet. Upload a file to start one.')).toBeInTheDocument();
    expect(screen.queryByRole('progressbar')).not.toBeInTheDocument();
  });

  it('shows the error of a list that cannot be loaded', async () => {
    installFetch({ 'GET /api/batch/list': () => errorResponse(403, 'FORBIDDEN', 'Your role may not use batches.') });

    renderPage(<BatchList />);

    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent('The list of batches could not be loaded: You are not allowed to do this.');
    expect(alert).not.toHaveTextContent('FORBIDDEN');
  });
});

describe('a batch in progress', () => {
  const running = batchSummary({
    status: 'processing',
    processedItems: 3,
    failedItems: 1,
    totalItems: 10,
    percentComplete: 40,
    etaSeconds: 75,
    startedAt: '2025-03-01T10:00:01Z',
  });

  it('shows one progress bar in segments, a legend with counts, the percent and the ETA', async () => {
    installFetch({ 'GET /api/batch/list': () => jsonResponse(200, [running]) });

    renderPage(<BatchList />);

    const card = await screen.findByTestId('batch-row-b1');
    expect(card).toHaveAttribute('data-status', 'processing');
    const bar = within(card).getByRole('progressbar', { name: 'Progress of Passport questions' });
    expect(bar).toHaveAttribute('aria-valuenow', '40');
    expect(bar).toHaveAttribute('aria-valuemin', '0');
    expect(bar).toHaveAttribute('aria-valuemax', '100');
    expect(bar).toHaveAttribute('aria-valuetext', '3 answered, 0 blocked, 1 failed, 0 cancelled of 10');
    expect(within(card).getByTestId('batch-percent')).toHaveTextContent('4 of 10 rows finished (40%)');
    const legend = within(card).getByRole('list', { name: 'Rows of Passport questions' });
    expect(
      within(legend)
        .getAllByRole('listitem')
        .map((item) => item.textContent),
    ).toEqual(['Answered: 3', 'Blocked: 0', 'Failed: 1', 'Cancelled: 0', 'Waiting: 6', 'Total: 10']);
    expect(within(card).getByTestId('batch-eta')).toHaveTextContent('Time left: about 1 min 15 s');
    expect(within(card).getByTestId('batch-status')).toHaveTextContent('Processing');
    expect(within(card).getByRole('button', { name: 'Cancel batch' })).toBeInTheDocument();
    expect(within(card).queryByTestId('batch-duration')).not.toBeInTheDocument();
  });

  it('says the ETA is being estimated while it is unknown', async () => {
    installFetch({ 'GET /api/batch/list': () => jsonResponse(200, [{ ...running, etaSeconds: null }]) });

    renderPage(<BatchList />);

    expect(await screen.findByTestId('batch-eta')).toHaveTextContent('Time left: estimating…');
  });

  it('polls the status until the batch finishes, then stops and announces it', async () => {
    vi.useFakeTimers();
    const answers = [
      { ...running, processedItems: 7, failedItems: 0, percentComplete: 70, etaSeconds: 10 },
      {
        ...running,
        status: 'processed',
        processedItems: 10,
        failedItems: 0,
        percentComplete: 100,
        etaSeconds: null,
        completedAt: '2025-03-01T10:00:43Z',
      },
    ];
    const fetch = installFetch({
      'GET /api/batch/list': () => jsonResponse(200, [running]),
      'GET /api/batch/status': () => jsonResponse(200, answers.shift()),
    });
    const announce = vi.fn();

    renderPage(<BatchList announce={announce} />);
    await act(async () => {});
    expect(row('b1')).toHaveAttribute('data-status', 'processing');

    await act(() => vi.advanceTimersByTimeAsync(1500));
    expect(within(row('b1')).getByRole('progressbar')).toHaveAttribute('aria-valuenow', '70');
    expect(announce).toHaveBeenLastCalledWith('Batch “Passport questions”: Processing, 70% complete.');

    await act(() => vi.advanceTimersByTimeAsync(1500));
    expect(row('b1')).toHaveAttribute('data-status', 'processed');
    expect(within(row('b1')).getByRole('progressbar')).toHaveAttribute('aria-valuenow', '100');
    expect(within(row('b1')).getByTestId('batch-duration')).toHaveTextContent('Duration: 42 s');
    expect(announce).toHaveBeenLastCalledWith('Batch “Passport questions”: Finished, 100% complete.');

    await act(() => vi.advanceTimersByTimeAsync(10_000));
    const statusCalls = fetch.requests.filter((request) => request.path === '/api/batch/status');
    expect(statusCalls.map((request) => request.query.batchId)).toEqual(['b1', 'b1']);
    expect(statusCalls[0].headers.Authorization).toBe('Bearer tok');
  });

  it('polls much less often while the tab is hidden', async () => {
    vi.useFakeTimers();
    const hidden = vi.spyOn(document, 'hidden', 'get').mockReturnValue(true);
    const fetch = installFetch({
      'GET /api/batch/list': () => jsonResponse(200, [running]),
      'GET /api/batch/status': () => jsonResponse(200, running),
    });

    renderPage(<BatchList />);
    await act(async () => {});
    await act(() => vi.advanceTimersByTimeAsync(9000));
    const polls = () => fetch.requests.filter((request) => request.path === '/api/batch/status').length;
    expect(polls()).toBe(0);

    // Back in view: it polls at once.
    hidden.mockReturnValue(false);
    await act(async () => {
      document.dispatchEvent(new Event('visibilitychange'));
    });
    expect(polls()).toBe(1);
  });
});

describe('a finished batch', () => {
  it('shows its final status and duration, without polling or a cancel button', async () => {
    vi.useFakeTimers();
    const done = batchSummary({
      status: 'completed_with_errors',
      processedItems: 8,
      failedItems: 2,
      percentComplete: 100,
      startedAt: '2025-03-01T10:00:00Z',
      completedAt: '2025-03-01T10:02:05Z',
    });
    const fetch = installFetch({ 'GET /api/batch/list': () => jsonResponse(200, [done]) });

    renderPage(<BatchList />);
    await act(async () => {});

    const card = row('b1');
    expect(card).toHaveAttribute('data-status', 'completed_with_errors');
    expect(within(card).getByTestId('batch-status')).toHaveTextContent('Finished with errors');
    expect(within(card).getByTestId('batch-duration')).toHaveTextContent('Duration: 2 min 5 s');
    expect(within(card).queryByRole('button', { name: 'Cancel batch' })).not.toBeInTheDocument();
    expect(within(card).getByRole('button', { name: 'Download CSV' })).toBeInTheDocument();
    expect(within(card).getByRole('button', { name: 'Download Excel' })).toBeInTheDocument();
    expect(within(card).getByRole('button', { name: 'Download JSON' })).toBeInTheDocument();

    await act(() => vi.advanceTimersByTimeAsync(10_000));
    expect(fetch.requests.map((request) => request.path)).toEqual(['/api/batch/list']);
  });

  it.each([
    ['processed', 'Finished'],
    ['cancelling', 'Cancelling'],
    ['cancelled', 'Cancelled'],
    ['failed', 'Failed'],
  ])('labels the status %s as %j', async (status, label) => {
    installFetch({ 'GET /api/batch/list': () => jsonResponse(200, [batchSummary({ status })]) });

    renderPage(<BatchList />);

    expect(await screen.findByTestId('batch-status')).toHaveTextContent(label);
  });

  it('lists batches newest first', async () => {
    installFetch({
      'GET /api/batch/list': () =>
        jsonResponse(200, [
          batchSummary({ batchId: 'old', name: 'Old', createdAt: '2025-01-01T00:00:00Z', status: 'processed' }),
          batchSummary({ batchId: 'new', name: 'New', createdAt: '2025-02-01T00:00:00Z', status: 'processed' }),
        ]),
    });

    renderPage(<BatchList />);

    await screen.findByTestId('batch-row-new');
    expect(screen.getAllByRole('heading', { level: 3 }).map((heading) => heading.textContent)).toEqual(['New', 'Old']);
  });
});

describe('the results table', () => {
  it('shows every row with status, redacted question, answer, citation link and error', async () => {
    installFetch({
      'GET /api/batch/list': () => jsonResponse(200, [batchSummary({ status: 'completed_with_errors' })]),
      'GET /api/batch/results': () =>
        jsonResponse(200, {
          batchId: 'b1',
          status: 'completed_with_errors',
          items: [
            {
              chatId: 'c1',
              status: 'succeeded',
              REDACTEDQUESTION: 'My SIN is 123 456 789',
              redactedQuestion: 'My SIN is XXX',
              answer: 'Apply online.',
              citationUrl: 'https://www.canada.ca/en/services.html',
              error: '',
              interactionId: 'i1',
            },
            {
              chatId: 'c2',
              status: 'failed',
              redactedQuestion: 'Second?',
              answer: '',
              citationUrl: 'javascript:alert(1)',
              error: { code: 'PROVIDER_TIMEOUT', message: 'The AI provider timed out.' },
              interactionId: 'i2',
            },
          ],
        }),
    });
    const user = userEvent.setup();

    renderPage(<BatchList />);
    await user.click(await screen.findByRole('button', { name: 'View results' }));

    const table = await screen.findByRole('table', { name: /Results of Passport questions/ });
    const rows = within(table).getAllByRole('row').slice(1);
    expect(rows).toHaveLength(2);
    expect(rows[0]).toHaveTextContent('Answered');
    expect(rows[0]).toHaveTextContent('My SIN is XXX');
    expect(rows[0]).not.toHaveTextContent('123 456 789');
    expect(rows[0]).toHaveTextContent('Apply online.');
    expect(within(rows[0]).getByRole('link')).toHaveAttribute('href', 'https://www.canada.ca/en/services.html');
    expect(rows[1]).toHaveTextContent('The AI or search provider did not answer in time.');
    expect(rows[1]).not.toHaveTextContent('PROVIDER_TIMEOUT');
    expect(within(rows[1]).queryByRole('link')).not.toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Hide results' })).toHaveAttribute('aria-expanded', 'true');
  });
});

describe('cancelling', () => {
  const running = batchSummary({ status: 'processing', processedItems: 2, percentComplete: 20 });

  function routes(cancel) {
    return {
      'GET /api/batch/list': () => jsonResponse(200, [running]),
      'POST /api/batch/cancel': cancel,
      'GET /api/batch/status': () =>
        jsonResponse(200, { ...running, status: 'cancelled', cancelledItems: 8, completedAt: '2025-03-01T10:00:20Z' }),
    };
  }

  it('asks for confirmation in an accessible dialog; "No" changes nothing', async () => {
    const fetch = installFetch(routes(() => jsonResponse(200, { batchId: 'b1', status: 'cancelled' })));
    const user = userEvent.setup();
    renderPage(<BatchList />);
    const cancel = await screen.findByRole('button', { name: 'Cancel batch' });

    await user.click(cancel);

    const dialog = screen.getByRole('alertdialog', { name: 'Cancel this batch?' });
    expect(dialog).toHaveAttribute('aria-modal', 'true');
    expect(dialog).toHaveAccessibleDescription(/Passport questions/);
    expect(within(dialog).getByRole('button', { name: 'No, keep it running' })).toHaveFocus();

    await user.click(within(dialog).getByRole('button', { name: 'No, keep it running' }));

    expect(screen.queryByRole('alertdialog')).not.toBeInTheDocument();
    expect(cancel).toHaveFocus();
    expect(fetch.requests.some((request) => request.path === '/api/batch/cancel')).toBe(false);
    expect(row('b1')).toHaveAttribute('data-status', 'processing');
  });

  it('works from the keyboard: Escape declines, Tab and Enter confirm', async () => {
    const fetch = installFetch(routes(() => jsonResponse(200, { batchId: 'b1', status: 'cancelled' })));
    const user = userEvent.setup();
    renderPage(<BatchList />);
    const cancel = await screen.findByRole('button', { name: 'Cancel batch' });

    cancel.focus();
    await user.keyboard('{Enter}');
    expect(screen.getByRole('alertdialog')).toBeInTheDocument();
    await user.keyboard('{Escape}');
    expect(screen.queryByRole('alertdialog')).not.toBeInTheDocument();
    expect(cancel).toHaveFocus();

    await user.keyboard('{Enter}');
    await user.tab();
    expect(screen.getByRole('button', { name: 'Yes, cancel the batch' })).toHaveFocus();
    await user.tab(); // focus stays inside the dialog
    expect(screen.getByRole('button', { name: 'No, keep it running' })).toHaveFocus();
    await user.tab();
    await user.keyboard('{Enter}');

    await waitFor(() => expect(row('b1')).toHaveAttribute('data-status', 'cancelled'));
    const cancelCall = fetch.requests.find((request) => request.path === '/api/batch/cancel');
    expect(JSON.parse(cancelCall.body)).toEqual({ batchId: 'b1' });
    expect(within(row('b1')).getByTestId('batch-status')).toHaveTextContent('Cancelled');
    expect(within(row('b1')).getByTestId('legend-cancelled')).toHaveTextContent('Cancelled: 8');
    expect(within(row('b1')).getByTestId('batch-percent')).toHaveTextContent('Cancelled: 2 of 10 answered');
    expect(within(row('b1')).queryByRole('button', { name: 'Cancel batch' })).not.toBeInTheDocument();
  });

  it('says in words that the batch had already finished (409)', async () => {
    installFetch(routes(() => errorResponse(409, 'BATCH_FINISHED', 'The batch has already finished.')));
    const user = userEvent.setup();
    renderPage(<BatchList />);

    await user.click(await screen.findByRole('button', { name: 'Cancel batch' }));
    await user.click(screen.getByRole('button', { name: 'Yes, cancel the batch' }));

    const alert = await screen.findByTestId('batch-action-error');
    expect(alert).toHaveTextContent(
      'The batch could not be cancelled: The batch has already finished or been cancelled.',
    );
  });
});

describe('after a cancel', () => {
  const running = batchSummary({ status: 'processing', processedItems: 2, percentComplete: 20 });

  it('keeps reading the batch until the rows that were in flight are counted', async () => {
    vi.useFakeTimers();
    const statuses = [
      { ...running, status: 'cancelled', processedItems: 2, cancelledItems: 6, percentComplete: 80 },
      { ...running, status: 'cancelled', processedItems: 4, cancelledItems: 6, percentComplete: 100 },
    ];
    const fetch = installFetch({
      'GET /api/batch/list': () => jsonResponse(200, [running]),
      'POST /api/batch/cancel': () => jsonResponse(200, { batchId: 'b1', status: 'cancelled' }),
      'GET /api/batch/status': () => jsonResponse(200, statuses.length > 1 ? statuses.shift() : statuses[0]),
    });
    renderPage(<BatchList />);
    await act(async () => {});

    // fireEvent, not userEvent: user-event waits on the faked timers.
    fireEvent.click(screen.getByRole('button', { name: 'Cancel batch' }));
    fireEvent.click(screen.getByRole('button', { name: 'Yes, cancel the batch' }));
    await act(async () => {});
    expect(row('b1')).toHaveAttribute('data-status', 'cancelled');
    expect(within(row('b1')).getByTestId('legend-answered')).toHaveTextContent('Answered: 2');

    await act(() => vi.advanceTimersByTimeAsync(1500));
    expect(within(row('b1')).getByTestId('legend-answered')).toHaveTextContent('Answered: 4');
    expect(within(row('b1')).getByTestId('batch-percent')).toHaveTextContent('Cancelled: 4 of 10 answered');

    await act(() => vi.advanceTimersByTimeAsync(10_000));
    expect(fetch.requests.filter((request) => request.path === '/api/batch/status')).toHaveLength(2);
  });

  it('does not poll a batch that was cancelled before the page opened', async () => {
    vi.useFakeTimers();
    const fetch = installFetch({
      'GET /api/batch/list': () =>
        jsonResponse(200, [batchSummary({ status: 'cancelled', processedItems: 2, cancelledItems: 6 })]),
    });

    renderPage(<BatchList />);
    await act(async () => {});
    await act(() => vi.advanceTimersByTimeAsync(10_000));

    expect(fetch.requests.map((request) => request.path)).toEqual(['/api/batch/list']);
  });
});

describe('downloads', () => {
  it('show the error of a failed download', async () => {
    installFetch({
      'GET /api/batch/list': () => jsonResponse(200, [batchSummary({ status: 'processed' })]),
      'GET /api/batch/results': () => errorResponse(404, 'NOT_FOUND', 'No such batch.'),
    });
    const user = userEvent.setup();
    renderPage(<BatchList />);

    await user.click(await screen.findByRole('button', { name: 'Download Excel' }));

    expect(await screen.findByTestId('batch-action-error')).toHaveTextContent(
      'Download failed: What you asked for was not found.',
    );
  });
});

describe('what became of the rows', () => {
  const cancelled = batchSummary({
    status: 'cancelled',
    totalItems: 3000,
    processedItems: 438,
    failedItems: 2,
    cancelledItems: 2560,
    percentComplete: 100,
    startedAt: '2025-03-01T10:00:00Z',
    completedAt: '2025-03-01T10:20:00Z',
  });

  it('reads a cancelled batch as cancelled, with how many rows were answered, not as done', async () => {
    installFetch({ 'GET /api/batch/list': () => jsonResponse(200, [cancelled]) });

    renderPage(<BatchList />);

    const card = await screen.findByTestId('batch-row-b1');
    expect(within(card).getByTestId('batch-percent')).toHaveTextContent('Cancelled: 438 of 3,000 answered');
    expect(within(card).getByTestId('batch-percent')).not.toHaveTextContent('100%');
    const bar = within(card).getByRole('progressbar');
    expect(bar).toHaveAttribute('aria-valuetext', '438 answered, 0 blocked, 2 failed, 2,560 cancelled of 3,000');
    // One bar, a segment per outcome, each as wide as its share of the rows.
    expect(within(bar).getByTestId('progress-segment-answered').style.width).toBe(`${(438 / 3000) * 100}%`);
    expect(within(bar).getByTestId('progress-segment-failed').style.width).toBe(`${(2 / 3000) * 100}%`);
    expect(within(bar).getByTestId('progress-segment-cancelled').style.width).toBe(`${(2560 / 3000) * 100}%`);
    expect(within(bar).queryByTestId('progress-segment-blocked')).not.toBeInTheDocument();
    expect(within(card).getByTestId('legend-cancelled')).toHaveTextContent('Cancelled: 2,560');
    expect(within(card).queryByTestId('legend-waiting')).not.toBeInTheDocument();
  });

  it('says the same in French', async () => {
    installFetch({ 'GET /api/batch/list': () => jsonResponse(200, [cancelled]) });

    renderPage(<BatchList />, { lang: 'fr' });

    const card = await screen.findByTestId('batch-row-b1');
    expect(within(card).getByTestId('batch-percent')).toHaveTextContent(
      'Annulé : 438 lignes sur 3 000 ont reçu une réponse',
    );
    expect(within(card).getByRole('progressbar')).toHaveAttribute(
      'aria-valuetext',
      '438 répondues, 0 bloquées, 2 échouées, 2\u00a0560 annulées sur 3\u00a0000',
    );
  });

  it('shows blocked rows as blocked, apart from the answered and failed ones', async () => {
    installFetch({
      'GET /api/batch/list': () =>
        jsonResponse(200, [batchSummary({ status: 'processed', processedItems: 7, blockedItems: 2, failedItems: 1 })]),
    });

    renderPage(<BatchList />);

    const card = await screen.findByTestId('batch-row-b1');
    expect(within(card).getByTestId('legend-blocked')).toHaveTextContent('Blocked: 2');
    expect(within(card).getByTestId('progress-segment-blocked').style.width).toBe('20%');
    expect(within(card).getByTestId('batch-percent')).toHaveTextContent('10 of 10 rows finished (100%)');
  });

  it('never shows more rows than the total when the counters overshoot', async () => {
    installFetch({
      'GET /api/batch/list': () =>
        jsonResponse(200, [batchSummary({ status: 'processing', processedItems: 9, failedItems: 3, totalItems: 10 })]),
    });

    renderPage(<BatchList />);

    const card = await screen.findByTestId('batch-row-b1');
    expect(within(card).getByTestId('batch-percent')).toHaveTextContent('10 of 10 rows finished (100%)');
    expect(within(card).getByTestId('legend-failed')).toHaveTextContent('Failed: 1');
  });
});

describe('a cancelling batch', () => {
  const cancelling = batchSummary({ status: 'cancelling', processedItems: 3, cancelledItems: 5, totalItems: 10 });

  it('says that its rows in flight are finishing, offers no cancel, and is still polled', async () => {
    vi.useFakeTimers();
    const fetch = installFetch({
      'GET /api/batch/list': () => jsonResponse(200, [cancelling]),
      'GET /api/batch/status': () =>
        jsonResponse(200, {
          ...cancelling,
          status: 'cancelled',
          processedItems: 5,
          completedAt: '2025-03-01T10:01:00Z',
        }),
    });

    renderPage(<BatchList />);
    await act(async () => {});

    const card = row('b1');
    expect(within(card).getByTestId('batch-status')).toHaveTextContent('Cancelling');
    expect(within(card).getByTestId('batch-percent')).toHaveTextContent('Cancelling… rows in flight are finishing');
    expect(within(card).queryByRole('button', { name: 'Cancel batch' })).not.toBeInTheDocument();
    expect(within(card).queryByTestId('batch-eta')).not.toBeInTheDocument();

    await act(() => vi.advanceTimersByTimeAsync(1500));
    expect(row('b1')).toHaveAttribute('data-status', 'cancelled');
    expect(within(row('b1')).getByTestId('batch-percent')).toHaveTextContent('Cancelled: 5 of 10 answered');
    expect(fetch.requests.filter((request) => request.path === '/api/batch/status')).toHaveLength(1);
  });

  it('reads in French', async () => {
    installFetch({ 'GET /api/batch/list': () => jsonResponse(200, [cancelling]) });

    renderPage(<BatchList />, { lang: 'fr' });

    const card = await screen.findByTestId('batch-row-b1');
    expect(within(card).getByTestId('batch-status')).toHaveTextContent('Annulation en cours');
    expect(within(card).getByTestId('batch-percent')).toHaveTextContent('Annulation… les lignes en cours se terminent');
  });

  it('is what a cancel answered with "cancelling" shows at once', async () => {
    const running = batchSummary({ status: 'processing', processedItems: 2 });
    installFetch({
      'GET /api/batch/list': () => jsonResponse(200, [running]),
      'POST /api/batch/cancel': () => jsonResponse(200, { batchId: 'b1', status: 'cancelling' }),
      'GET /api/batch/status': () => jsonResponse(200, { ...running, status: 'cancelling' }),
    });
    const user = userEvent.setup();
    renderPage(<BatchList />);

    await user.click(await screen.findByRole('button', { name: 'Cancel batch' }));
    await user.click(screen.getByRole('button', { name: 'Yes, cancel the batch' }));

    await waitFor(() => expect(row('b1')).toHaveAttribute('data-status', 'cancelling'));
    expect(within(row('b1')).queryByRole('button', { name: 'Cancel batch' })).not.toBeInTheDocument();
    expect(screen.getByRole('heading', { name: 'Passport questions' })).toHaveFocus();
  });
});

describe('names for people', () => {
  it('names providers and the page language instead of showing raw values', async () => {
    installFetch({
      'GET /api/batch/list': () =>
        jsonResponse(200, [batchSummary({ aiProvider: 'azure', searchProvider: 'canadaca', pageLanguage: 'fr' })]),
    });

    renderPage(<BatchList />);

    const card = await screen.findByTestId('batch-row-b1');
    expect(within(card).getByTestId('batch-ai-provider')).toHaveTextContent('Azure OpenAI');
    expect(within(card).getByTestId('batch-search-provider')).toHaveTextContent('Canada.ca search');
    expect(within(card).getByTestId('batch-language')).toHaveTextContent('French');
  });

  it('in French too', async () => {
    installFetch({
      'GET /api/batch/list': () =>
        jsonResponse(200, [batchSummary({ aiProvider: 'offline', searchProvider: 'google' })]),
    });

    renderPage(<BatchList />, { lang: 'fr' });

    const card = await screen.findByTestId('batch-row-b1');
    expect(within(card).getByTestId('batch-ai-provider')).toHaveTextContent('Hors ligne (sans réseau)');
    expect(within(card).getByTestId('batch-search-provider')).toHaveTextContent('Recherche programmable Google');
    expect(within(card).getByTestId('batch-language')).toHaveTextContent('Anglais');
  });
});

describe('a long list', () => {
  const many = Array.from({ length: 23 }, (_, index) =>
    batchSummary({
      batchId: `b${index}`,
      name: index % 2 ? `Odd batch ${index}` : `Even batch ${index}`,
      status: index === 4 ? 'failed' : 'processed',
      createdAt: new Date(Date.UTC(2025, 0, 1 + index)).toISOString(),
    }),
  );
  const headings = () => screen.getAllByRole('heading', { level: 3 }).map((heading) => heading.textContent);

  it('shows the ten newest, then ten more at each "Load more", moving the focus to the first new one', async () => {
    installFetch({ 'GET /api/batch/list': () => jsonResponse(200, many) });
    const user = userEvent.setup();
    renderPage(<BatchList />);

    await screen.findByTestId('batch-row-b22');
    expect(headings()).toHaveLength(10);
    expect(headings()[0]).toBe('Even batch 22');
    expect(screen.getByTestId('batch-list-count')).toHaveTextContent('Showing 10 of 23 batches.');

    await user.click(screen.getByRole('button', { name: 'Load more' }));
    expect(headings()).toHaveLength(20);
    expect(screen.getByRole('heading', { name: 'Even batch 12' })).toHaveFocus();

    await user.click(screen.getByRole('button', { name: 'Load more' }));
    expect(headings()).toHaveLength(23);
    expect(screen.queryByRole('button', { name: 'Load more' })).not.toBeInTheDocument();
  });

  it('searches by name and filters by status', async () => {
    installFetch({ 'GET /api/batch/list': () => jsonResponse(200, many) });
    const user = userEvent.setup();
    renderPage(<BatchList />);
    await screen.findByTestId('batch-row-b22');

    await user.type(screen.getByLabelText('Search by name'), 'odd batch 1');
    expect(headings()).toEqual([
      'Odd batch 19',
      'Odd batch 17',
      'Odd batch 15',
      'Odd batch 13',
      'Odd batch 11',
      'Odd batch 1',
    ]);

    await user.clear(screen.getByLabelText('Search by name'));
    await user.selectOptions(screen.getByLabelText('Status'), 'failed');
    expect(headings()).toEqual(['Even batch 4']);

    await user.selectOptions(screen.getByLabelText('Status'), 'cancelled');
    expect(screen.getByTestId('batch-list-no-match')).toHaveTextContent('No batch matches this search.');
    await user.click(screen.getAllByRole('button', { name: 'Clear the search and filter' })[0]);
    expect(headings()).toHaveLength(10);
  });

  it('brings a batch asked for into view and focuses it, even past a search that hid it', async () => {
    installFetch({ 'GET /api/batch/list': () => jsonResponse(200, many) });
    const user = userEvent.setup();
    const { rerender } = renderPage(<BatchList />);
    await screen.findByTestId('batch-row-b22');
    await user.type(screen.getByLabelText('Search by name'), 'even');

    rerender(
      <LanguageProvider initialLang="en">
        <BatchList focusRequest={{ batchId: 'b1' }} />
      </LanguageProvider>,
    );

    await waitFor(() => expect(screen.getByRole('heading', { name: 'Odd batch 1' })).toHaveFocus());
    expect(screen.getByLabelText('Search by name')).toHaveValue('');
  });
});
