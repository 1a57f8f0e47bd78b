import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it } from 'vitest';
import { TOKEN_KEY } from '../auth.js';
import { installFetch, jsonResponse } from '../test/fakeFetch.js';
import { renderPage } from '../test/render.jsx';
import ResultsTable from './ResultsTable.jsx';

beforeEach(() => {
  sessionStorage.setItem(TOKEN_KEY, 'tok');
});

// The file had chatId, REDACTEDQUESTION, URL and ticket; the results follow.
const COLUMNS = [
  'rowNumber',
  'chatId',
  'REDACTEDQUESTION',
  'URL',
  'ticket',
  'status',
  'redactedQuestion',
  'answer',
  'citationUrl',
  'error',
  'interactionId',
];

function item(n, overrides = {}) {
  return {
    rowNumber: n + 1,
    chatId: `chat-${Math.floor((n - 1) / 2)}`,
    REDACTEDQUESTION: `Question ${n}`,
    URL: 'https://www.canada.ca/en.html',
    ticket: `T-${n}`,
    status: 'succeeded',
    redactedQuestion: `Question ${n}`,
    answer: `Answer ${n}`,
    citationUrl: `https://www.canada.ca/en/page-${n}.html`,
    error: null,
    interactionId: `i${n}`,
    ...overrides,
  };
}

const SMALL = [
  item(1),
  item(2, { answer: 'The second turn of the first chat, answered in full with every word of it.' }),
  item(3, { status: 'failed', answer: null, citationUrl: null, error: 'PROVIDER_TIMEOUT: offline did not answer' }),
  item(4, { status: 'blocked', answer: null, citationUrl: null, redactedQuestion: 'My SIN is XXX' }),
];

/**
 * The server's side of a page (lib/results_page.py), as the wire shows it: filters,
 * search over the question and the answer, sort by row number or time, offset and limit.
 */
function pageOfServer(items, query) {
  const listed = (name) => (query[name] ? query[name].split(',') : null);
  const statuses = listed('status');
  const stages = listed('blockedBy');
  const types = listed('answerType');
  const needle = (query.q || '').toLocaleLowerCase();
  const flags = listed('flag')?.map((flag) => flag.split('='));
  const flagged = (row) =>
    flags.some(([column, value]) =>
      value === undefined ? Boolean(row[column]) : String(row[column]).toLowerCase() === value.toLowerCase(),
    );
  let rows = items.filter(
    (row) =>
      (!statuses || statuses.includes(row.status)) &&
      (!stages || stages.includes(row.blockedBy)) &&
      (!types || types.includes(row.answerType)) &&
      (!query.chat || row.chatId === query.chat) &&
      (!flags || flagged(row)) &&
      (!needle || `${row.redactedQuestion ?? ''}\n${row.answer ?? ''}`.toLocaleLowerCase().includes(needle)),
  );
  const sort = query.sort || 'rowNumber';
  const field = sort.replace(/^-/, '');
  rows = [...rows].sort((a, b) => (a[field] ?? Infinity) - (b[field] ?? Infinity));
  if (sort.startsWith('-')) rows.reverse();
  const offset = Number(query.offset || 0);
  const limit = Number(query.limit || 100);
  return { total: rows.length, offset, limit, items: rows.slice(offset, offset + limit) };
}

function show(items, { lang = 'en', columns = COLUMNS } = {}) {
  const fetch = installFetch({
    'GET /api/batch/results': ({ query }) =>
      jsonResponse(200, { batchId: 'b1', status: 'processed', columns, ...pageOfServer(items, query) }),
  });
  renderPage(<ResultsTable batchId="b1" name="Passports" active={false} />, { lang });
  const user = userEvent.setup();
  user.fetch = fetch;
  return user;
}

const bodyRows = () => within(screen.getByRole('table')).getAllByTestId('result-row');
const firstCells = () => bodyRows().map((row) => within(row).getAllByRole('cell')[1].textContent);

describe('the results table', () => {
  it('shows row, status, question, answer, citation and error at first, in the page’s words', async () => {
    show(SMALL);

    const table = await screen.findByRole('table', { name: 'Results of Passports: rows 1 to 4 of 4' });
    const headers = within(table)
      .getAllByRole('columnheader')
      .map((header) => header.textContent.replace(/[↕▲▼]/g, ''));
    expect(headers).toEqual(['Details', 'Row', 'Status', 'Question (redacted)', 'Answer', 'Citation', 'Error']);
    const [, , third, fourth] = bodyRows();
    expect(third).toHaveTextContent('Failed');
    expect(third).toHaveTextContent('The AI or search provider did not answer in time.');
    expect(fourth).toHaveTextContent('Blocked');
  });

  it('gives the scrolling box a name of its own, not the results section’s', async () => {
    show(SMALL);

    await screen.findByRole('table');
    const regions = screen.getAllByRole('region');
    expect(
      regions.map((region) => region.getAttribute('aria-label') || region.getAttribute('aria-labelledby')),
    ).toEqual(['results-heading-b1', 'Table of Passports (scrolls)']);
    expect(screen.getByRole('region', { name: 'Results of Passports' })).toContainElement(
      screen.getByRole('region', { name: 'Table of Passports (scrolls)' }),
    );
  });

  it('lets the reader pick columns: the chatId, the URL and the file’s own columns too', async () => {
    const user = show(SMALL);
    await screen.findByRole('table');

    await user.click(screen.getByRole('button', { name: 'Choose columns (6 of 11 shown)' }));
    const fileGroup = screen.getByRole('group', { name: 'Columns of your file' });
    expect(
      within(fileGroup)
        .getAllByRole('checkbox')
        .map((box) => box.labels[0].textContent),
    ).toEqual(['chatId', 'REDACTEDQUESTION', 'URL', 'ticket']);
    await user.click(within(fileGroup).getByRole('checkbox', { name: 'ticket' }));
    await user.click(within(fileGroup).getByRole('checkbox', { name: 'URL' }));
    await user.click(
      within(screen.getByRole('group', { name: 'Result columns' })).getByRole('checkbox', { name: 'Error' }),
    );

    const headers = within(screen.getByRole('table'))
      .getAllByRole('columnheader')
      .map((header) => header.textContent.replace(/[↕▲▼]/g, ''));
    expect(headers).toEqual(['Details', 'Row', 'URL', 'ticket', 'Status', 'Question (redacted)', 'Answer', 'Citation']);
    expect(within(bodyRows()[0]).getByRole('link', { name: 'https://www.canada.ca/en.html' })).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Choose columns (7 of 11 shown)' })).toHaveAttribute(
      'aria-expanded',
      'true',
    );
  });

  it('asks the server for rows of one status, stage or answer type, and searches the text there', async () => {
    const user = show(SMALL);
    await screen.findByRole('table');

    await user.selectOptions(screen.getByLabelText('Row status'), 'failed');
    await waitFor(() => expect(firstCells()).toEqual(['4']));
    expect(screen.getByTestId('results-count')).toHaveTextContent('1 of 4 rows shown.');
    expect(user.fetch.requests.at(-1).query).toMatchObject({ status: 'failed', offset: '0', limit: '50' });

    await user.selectOptions(screen.getByLabelText('Row status'), '');
    await user.selectOptions(screen.getByLabelText('Blocked by'), 'piStage1');
    await screen.findByTestId('results-no-match');
    expect(user.fetch.requests.at(-1).query).toMatchObject({ blockedBy: 'piStage1' });
    await user.selectOptions(screen.getByLabelText('Blocked by'), '');

    await user.type(screen.getByLabelText('Search the rows'), 'sin is');
    await waitFor(() => expect(firstCells()).toEqual(['5']));
    expect(user.fetch.requests.at(-1).query).toMatchObject({ q: 'sin is' });
    const searches = user.fetch.requests.filter((request) => request.query.q);
    expect(searches).toHaveLength(1); // one request once the typing paused, not one a key

    await user.clear(screen.getByLabelText('Search the rows'));
    await user.type(screen.getByLabelText('Search the rows'), 'nothing like this');
    expect(await screen.findByTestId('results-no-match')).toHaveTextContent('No row matches this search or filter.');
    expect(screen.queryByRole('table')).not.toBeInTheDocument();
  });

  it('filters on an analyzer flag on the server, offering only the flags of the batch’s analyzers', async () => {
    const columns = [...COLUMNS, 'refusal.detected', 'refusal.flagged', 'refusal.error', 'similarity.label'];
    const items = [
      item(1, { 'refusal.flagged': false, 'similarity.label': 'same-meaning' }),
      item(2, { 'refusal.flagged': true, 'similarity.label': 'meaning-drift' }),
      item(3, { 'refusal.flagged': true, 'similarity.label': 'same-meaning' }),
      item(4, { 'refusal.flagged': null, 'similarity.label': 'meaning-drift' }),
    ];
    const user = show(items, { columns });
    await screen.findByRole('table');
    const select = screen.getByLabelText('Analyzer flag');
    expect(within(select).getAllByRole('option').map((option) => option.textContent)).toEqual([
      'Any row',
      'refusal not as expected',
      'meaning drifted from the reference',
    ]);

    await user.selectOptions(select, 'refusal.flagged');
    await waitFor(() => expect(firstCells()).toEqual(['3', '4']));
    expect(user.fetch.requests.at(-1).query).toMatchObject({ flag: 'refusal.flagged', offset: '0' });
    expect(screen.getByTestId('results-count')).toHaveTextContent('2 of 4 rows shown.');

    await user.selectOptions(select, 'similarity.label=meaning-drift');
    await waitFor(() => expect(firstCells()).toEqual(['3', '5']));
    expect(user.fetch.requests.at(-1).query).toMatchObject({ flag: 'similarity.label=meaning-drift' });
  });

  it('offers no flag filter for a batch run without analyzers', async () => {
    show(SMALL);
    await screen.findByRole('table');
    expect(screen.queryByLabelText('Analyzer flag')).toBeNull();
    expect(screen.queryByTestId('results-flag-filter')).toBeNull();
  });

  it('sorts by row number or time on the server, says so to assistive technology, and no other column', async () => {
    const user = show(
      SMALL.map((row, index) => ({ ...row, responseTimeMs: [900, 100, null, 500][index] })),
      { columns: [...COLUMNS, 'responseTimeMs'] },
    );
    await screen.findByRole('table');
    await user.click(screen.getByRole('button', { name: /^Choose columns/ }));
    await user.click(screen.getByRole('checkbox', { name: 'Response time (ms)' }));

    expect(screen.getByRole('columnheader', { name: /^Row/ })).toHaveAttribute('aria-sort', 'ascending');
    await user.click(screen.getByRole('button', { name: /^Row/ }));
    expect(screen.getByRole('columnheader', { name: /^Row/ })).toHaveAttribute('aria-sort', 'descending');
    await waitFor(() => expect(firstCells()).toEqual(['5', '4', '3', '2']));
    expect(user.fetch.requests.at(-1).query.sort).toBe('-rowNumber');

    await user.click(screen.getByRole('button', { name: /^Response time/ }));
    expect(screen.getByRole('columnheader', { name: /^Row/ })).not.toHaveAttribute('aria-sort');
    await waitFor(() => expect(firstCells()).toEqual(['3', '5', '2', '4']));
    expect(user.fetch.requests.at(-1).query.sort).toBe('responseTimeMs');
    expect(within(screen.getByRole('columnheader', { name: 'Status' })).queryByRole('button')).toBeNull();
  });

  it('pages through the rows 50 at a time, asking the server for each page only', async () => {
    const user = show(Array.from({ length: 120 }, (_, index) => item(index + 1)));
    await screen.findByRole('table');

    expect(bodyRows()).toHaveLength(50);
    expect(screen.getByText('Page 1 of 3')).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Previous page' })).toBeDisabled();

    await user.click(screen.getByRole('button', { name: 'Next page' }));
    await screen.findByText('Page 2 of 3');
    await user.click(screen.getByRole('button', { name: 'Next page' }));
    await screen.findByText('Page 3 of 3');
    expect(bodyRows()).toHaveLength(20);
    expect(firstCells()[0]).toBe('102');
    expect(screen.getByRole('table', { name: 'Results of Passports: rows 101 to 120 of 120' })).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Next page' })).toBeDisabled();
    expect(user.fetch.requests.map((request) => request.query.offset)).toEqual(['0', '50', '100']);

    // A new search starts again from the first page.
    await user.type(screen.getByLabelText('Search the rows'), 'Answer 1');
    await waitFor(() => expect(screen.getByTestId('results-count')).toHaveTextContent('32 of 120 rows shown.'));
    expect(firstCells()[0]).toBe('2');
    expect(screen.queryByTestId('results-pager')).not.toBeInTheDocument();
  });

  it('opens a row in full: the whole answer, the citation and the other turns of its conversation', async () => {
    const user = show(SMALL);
    await screen.findByRole('table');

    const open = screen.getByRole('button', { name: 'Show row 3 in full' });
    await user.click(open);

    expect(open).toHaveAttribute('aria-expanded', 'true');
    expect(open).toHaveAccessibleName('Hide the details of row 3');
    const detail = screen.getByTestId('result-detail');
    expect(document.getElementById(open.getAttribute('aria-controls'))).toContainElement(detail);
    expect(within(detail).getByRole('heading', { name: 'Row 3 in full' })).toBeInTheDocument();
    expect(within(detail).getByTestId('result-detail-answer')).toHaveTextContent(
      'The second turn of the first chat, answered in full with every word of it.',
    );
    expect(within(detail).getByRole('link', { name: 'https://www.canada.ca/en/page-2.html' })).toBeInTheDocument();
    const conversation = await within(detail).findByTestId('result-conversation');
    expect(user.fetch.requests.at(-1).query).toMatchObject({ chat: 'chat-0', limit: '500' });
    expect(within(conversation).getByRole('heading')).toHaveTextContent('Conversation chat-0: 2 turns');
    const turns = within(conversation).getAllByRole('listitem');
    expect(turns.map((turn) => turn.querySelector('.result-detail__turn').textContent)).toEqual([
      'Row 2',
      'Row 3 (this row)',
    ]);
    expect(turns[1]).toHaveAttribute('aria-current', 'true');

    await user.click(open);
    expect(screen.queryByTestId('result-detail')).not.toBeInTheDocument();
  });

  it('reads in French', async () => {
    const user = show(SMALL, { lang: 'fr' });

    await screen.findByRole('table', { name: 'Résultats de Passports : lignes 1 à 4 sur 4' });
    expect(bodyRows()[0]).toHaveTextContent('Répondue');
    expect(bodyRows()[2]).toHaveTextContent('Le fournisseur d’IA ou de recherche n’a pas répondu à temps.');
    expect(screen.getByLabelText('Rechercher dans les lignes')).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Afficher la ligne 2 en entier' }));
    expect(screen.getByRole('heading', { name: 'Ligne 2 en entier' })).toBeInTheDocument();
  });
});
