import { describe, expect, it } from 'vitest';
import {
  chatColumn,
  columnsOf,
  conversationOf,
  defaultColumns,
  fieldColumn,
  fieldOf,
  filterRows,
  pageOf,
  questionColumn,
  rowsOf,
  safeHttpUrl,
  sortRows,
  splitColumns,
  urlColumn,
} from './results.js';

// As the server sends them: the file's columns (its own chatId among them), then the results.
const COLUMNS = [
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

describe('columns', () => {
  it('come from the server’s list, with a row number the table adds when the server has none', () => {
    expect(columnsOf({ columns: COLUMNS, items: [] })).toEqual(['rowNumber', ...COLUMNS]);
    expect(columnsOf({ columns: ['rowNumber', 'status'], items: [] })).toEqual(['rowNumber', 'status']);
  });

  it('come from the rows’ keys when the server sends no list (an older server)', () => {
    expect(
      columnsOf({
        items: [
          { status: 'succeeded', answer: 'a' },
          { status: 'failed', error: 'x' },
        ],
      }),
    ).toEqual(['rowNumber', 'status', 'answer', 'error']);
  });

  it('are split into the file’s own and the result columns', () => {
    const columns = columnsOf({ columns: [...COLUMNS, 'refusal.detected'] });
    expect(splitColumns(columns)).toEqual({
      fileColumns: ['chatId', 'REDACTEDQUESTION', 'URL', 'ticket'],
      resultColumns: [
        'rowNumber',
        'status',
        'redactedQuestion',
        'answer',
        'citationUrl',
        'error',
        'interactionId',
        'refusal.detected',
      ],
    });
  });

  it('read a result whose name the file already uses from its " (result)" column', () => {
    const columns = ['answer', 'status', 'answer (result)'];
    expect(fieldColumn(columns, 'answer')).toBe('answer (result)');
    expect(fieldOf(columns, 'answer')).toBeNull();
    expect(fieldOf(columns, 'answer (result)')).toBe('answer');
    expect(fieldColumn(columns, 'citationUrl')).toBeNull();
  });

  it('show row, status, question, answer, citation and error first', () => {
    expect(defaultColumns(columnsOf({ columns: COLUMNS }))).toEqual([
      'rowNumber',
      'status',
      'redactedQuestion',
      'answer',
      'citationUrl',
      'error',
    ]);
  });

  it('show the file’s own (masked) question column when the results have no redactedQuestion', () => {
    expect(questionColumn(['QUESTION', 'status', 'answer'])).toBe('QUESTION');
    expect(questionColumn(['Problem Details', 'REDACTEDQUESTION'])).toBe('REDACTEDQUESTION');
    expect(questionColumn(['QUESTION', 'redactedQuestion'])).toBe('redactedQuestion');
    expect(
      defaultColumns(['rowNumber', 'chatId', 'REDACTEDQUESTION', 'status', 'answer', 'citationUrl', 'error']),
    ).toEqual(['rowNumber', 'status', 'REDACTEDQUESTION', 'answer', 'citationUrl', 'error']);
  });

  it('find the conversation and URL columns however the file spells them', () => {
    expect(chatColumn(['Chat ID', 'QUESTION'])).toBe('Chat ID');
    expect(chatColumn(['QUESTION', 'status', 'chatId'])).toBe('chatId');
    expect(urlColumn(['QUESTION', 'referring_url'])).toBe('referring_url');
    expect(urlColumn(['QUESTION'])).toBeNull();
  });
});

const ITEMS = [
  { rowNumber: 2, chatId: 'c1', status: 'succeeded', redactedQuestion: 'Passport renewal?', answer: 'Apply online.' },
  {
    rowNumber: 3,
    chatId: 'c2',
    status: 'failed',
    redactedQuestion: 'Tax forms?',
    answer: null,
    error: 'PROVIDER_TIMEOUT: x',
  },
  { rowNumber: 4, chatId: 'c1', status: 'blocked', redactedQuestion: 'And my SIN XXX?', answer: null },
  { rowNumber: 5, chatId: '', status: 'succeeded', redactedQuestion: 'Benefits?', answer: 'See EI.' },
];

describe('rows', () => {
  const rows = rowsOf(ITEMS);

  it('are numbered by the server, or by position when it sends no rowNumber', () => {
    expect(rows.map((row) => row.rowNumber)).toEqual([2, 3, 4, 5]);
    expect(rowsOf([{ a: 1 }, { a: 2 }]).map((row) => row.rowNumber)).toEqual([1, 2]);
  });

  it('are filtered by status and by a case-insensitive search of every cell', () => {
    expect(filterRows(rows, { status: 'succeeded' }).map((row) => row.rowNumber)).toEqual([2, 5]);
    expect(filterRows(rows, { query: 'PASSPORT' }).map((row) => row.rowNumber)).toEqual([2]);
    expect(filterRows(rows, { query: 'timeout' }).map((row) => row.rowNumber)).toEqual([3]);
    expect(filterRows(rows, { status: 'failed', query: 'passport' })).toEqual([]);
  });

  it('are sorted by a column, numbers as numbers and empty cells last, either way', () => {
    expect(sortRows(rows, 'rowNumber', 'descending').map((row) => row.rowNumber)).toEqual([5, 4, 3, 2]);
    expect(sortRows(rows, 'answer').map((row) => row.rowNumber)).toEqual([2, 5, 3, 4]);
    expect(sortRows(rows, 'answer', 'descending').map((row) => row.rowNumber)).toEqual([5, 2, 3, 4]);
    expect(sortRows(rows, null)).toBe(rows);
  });

  it('come in pages of 50', () => {
    const many = rowsOf(Array.from({ length: 120 }, (_, index) => ({ n: index })));
    expect(pageOf(many, 1)).toMatchObject({ page: 1, pages: 3, from: 1, to: 50 });
    expect(pageOf(many, 3)).toMatchObject({ page: 3, from: 101, to: 120 });
    expect(pageOf(many, 3).rows).toHaveLength(20);
    expect(pageOf(many, 9).page).toBe(3);
    expect(pageOf([], 1)).toMatchObject({ page: 1, pages: 1, from: 0, to: 0 });
  });

  it('of one conversation are the rows with the same chat id, in row order', () => {
    expect(conversationOf(rows, rows[2], 'chatId').map((row) => row.rowNumber)).toEqual([2, 4]);
    expect(conversationOf(rows, rows[3], 'chatId')).toEqual([rows[3]]);
    expect(conversationOf(rows, rows[0], null)).toEqual([rows[0]]);
  });
});

describe('safeHttpUrl', () => {
  it('keeps web links only', () => {
    expect(safeHttpUrl('https://www.canada.ca/en.html')).toBe('https://www.canada.ca/en.html');
    expect(safeHttpUrl('javascript:alert(1)')).toBeNull();
    expect(safeHttpUrl('not a url')).toBeNull();
    expect(safeHttpUrl(null)).toBeNull();
  });
});
