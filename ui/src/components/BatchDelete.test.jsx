import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it } from 'vitest';
import { TOKEN_KEY } from '../auth.js';
import { batchSummary, errorResponse, installFetch, jsonResponse } from '../test/fakeFetch.js';
import { renderPage } from '../test/render.jsx';
import BatchList from './BatchList.jsx';

beforeEach(() => {
  sessionStorage.setItem(TOKEN_KEY, 'tok');
});

const FINISHED = batchSummary({ batchId: 'b1', status: 'processed', totalItems: 5000, processedItems: 5000 });
const OTHER = batchSummary({ batchId: 'b2', name: 'Tax questions', status: 'failed', createdAt: '2025-02-01T10:00:00Z' });

function list(batches, deleteRoute) {
  return installFetch({
    'GET /api/batch/list': () => jsonResponse(200, batches),
    'POST /api/batch/delete': deleteRoute,
  });
}

describe('deleting a finished batch', () => {
  it('is offered for a final batch only', async () => {
    list([FINISHED, batchSummary({ batchId: 'b3', name: 'Running', status: 'processing' })]);
    renderPage(<BatchList />);

    const finished = await screen.findByTestId('batch-row-b1');
    expect(within(finished).getByRole('button', { name: 'Delete' })).toHaveAccessibleDescription('Passport questions');
    expect(within(screen.getByTestId('batch-row-b3')).queryByRole('button', { name: 'Delete' })).toBeNull();
  });

  it('asks first; "No" keeps the batch and sends nothing', async () => {
    const fetch = list([FINISHED]);
    const user = userEvent.setup();
    renderPage(<BatchList />);
    const button = await screen.findByRole('button', { name: 'Delete' });

    await user.click(button);
    const dialog = screen.getByRole('alertdialog', { name: 'Delete this batch?' });
    expect(dialog).toHaveAccessibleDescription(/Passport questions.*5,000 rows/);
    expect(within(dialog).getByRole('button', { name: 'No, keep it' })).toHaveFocus();
    await user.keyboard('{Escape}');

    expect(screen.queryByRole('alertdialog')).toBeNull();
    expect(button).toHaveFocus();
    expect(fetch.requests.some((request) => request.path === '/api/batch/delete')).toBe(false);
  });

  it('deletes on "Yes", calling again while the server has rows left, and the list updates', async () => {
    let calls = 0;
    const fetch = list([FINISHED, OTHER], () => {
      calls += 1;
      return calls < 3
        ? jsonResponse(202, { batchId: 'b1', deleted: false, deletedItems: 2000 })
        : jsonResponse(200, { batchId: 'b1', deleted: true, deletedItems: 1000 });
    });
    const user = userEvent.setup();
    renderPage(<BatchList />);
    await user.click(within(await screen.findByTestId('batch-row-b1')).getByRole('button', { name: 'Delete' }));

    await user.click(screen.getByRole('button', { name: 'Yes, delete the batch' }));

    await waitFor(() => expect(screen.queryByTestId('batch-row-b1')).toBeNull());
    expect(screen.getByTestId('batch-row-b2')).toBeInTheDocument();
    expect(screen.getByTestId('batch-deleted')).toHaveTextContent('Batch “Passport questions” was deleted.');
    expect(screen.getByRole('heading', { name: 'Your batches' })).toHaveFocus();
    const deletes = fetch.requests.filter((request) => request.path === '/api/batch/delete');
    expect(deletes.map((request) => JSON.parse(request.body))).toEqual(Array(3).fill({ batchId: 'b1' }));
  });

  it('shows a batch left half-way as being deleted, with only the action to finish it', async () => {
    const fetch = list([{ ...FINISHED, deleting: true }], () =>
      jsonResponse(200, { batchId: 'b1', deleted: true, deletedItems: 10 }),
    );
    const user = userEvent.setup();
    renderPage(<BatchList />);
    const card = await screen.findByTestId('batch-row-b1');

    expect(within(card).getByTestId('batch-being-deleted')).toHaveTextContent(
      'This batch is being deleted: it leaves the list once all its rows are gone.',
    );
    expect(within(card).queryByRole('button', { name: /View results|Download/ })).toBeNull();
    await user.click(within(card).getByRole('button', { name: 'Finish deleting' }));
    await user.click(screen.getByRole('button', { name: 'Yes, delete the batch' }));

    await waitFor(() => expect(screen.queryByTestId('batch-row-b1')).toBeNull());
    expect(fetch.requests.filter((request) => request.path === '/api/batch/delete')).toHaveLength(1);
  });

  it('says in French that a batch is being deleted', async () => {
    list([{ ...FINISHED, deleting: true }]);
    renderPage(<BatchList />, { lang: 'fr' });

    expect(await screen.findByTestId('batch-being-deleted')).toHaveTextContent('Ce lot est en cours de suppression');
    expect(screen.getByRole('button', { name: 'Terminer la suppression' })).toBeInTheDocument();
  });

  it('says in words why it could not, and keeps the batch (409 in French)', async () => {
    list([FINISHED], () => errorResponse(409, 'BATCH_ACTIVE', 'The batch is processing', { status: 'processing' }));
    const user = userEvent.setup();
    renderPage(<BatchList />, { lang: 'fr' });
    await user.click(await screen.findByRole('button', { name: 'Supprimer' }));

    await user.click(screen.getByRole('button', { name: 'Oui, supprimer le lot' }));

    expect(await screen.findByTestId('batch-action-error')).toHaveTextContent(
      'Le lot n’a pas pu être supprimé : Le lot est encore en cours',
    );
    expect(screen.getByTestId('batch-row-b1')).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Supprimer' })).not.toHaveAttribute('aria-disabled');
  });
});
