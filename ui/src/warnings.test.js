import { describe, expect, it } from 'vitest';
import { translate } from './i18n.js';
import { normalizeWarning, warningRows, warningSentence } from './warnings.js';

const en = (key, params) => translate('en', key, params);
const fr = (key, params) => translate('fr', key, params);

describe('normalizeWarning', () => {
  it('reads the server’s blank-row sentence', () => {
    expect(normalizeWarning('Row 5: the question is blank; the row was skipped.')).toEqual({
      rowNumber: 5,
      code: 'BLANK_QUESTION',
      message: 'Row 5: the question is blank; the row was skipped.',
      count: null,
    });
  });

  it('reads the "more rows" summary', () => {
    expect(normalizeWarning('12 more rows with a blank question were skipped.')).toMatchObject({
      code: 'MORE_BLANK_QUESTIONS',
      count: 12,
      rowNumber: null,
    });
  });

  it('takes the structured form {rowNumber, code, message}', () => {
    expect(normalizeWarning({ rowNumber: 9, code: 'BLANK_QUESTION', message: 'blank' })).toEqual({
      rowNumber: 9,
      code: 'BLANK_QUESTION',
      message: 'blank',
      count: null,
    });
    expect(normalizeWarning({ rowNumber: 'x', code: 'ODD', message: 'odd' })).toMatchObject({ rowNumber: null });
  });

  it('keeps any other string as its message', () => {
    expect(normalizeWarning('Something else.')).toEqual({
      rowNumber: null,
      code: null,
      message: 'Something else.',
      count: null,
    });
  });
});

describe('warningSentence', () => {
  it.each([
    [
      'Row 5: the question is blank; the row was skipped.',
      'Row 5: the question is blank; the row was skipped.',
      'Ligne 5 : la question est vide; la ligne a été ignorée.',
    ],
    [
      { rowNumber: 9, code: 'BLANK_QUESTION', message: 'x' },
      'Row 9: the question is blank; the row was skipped.',
      'Ligne 9 : la question est vide; la ligne a été ignorée.',
    ],
    [
      '3 more rows with a blank question were skipped.',
      '3 more rows with a blank question were skipped.',
      '3 autres lignes dont la question est vide ont été ignorées.',
    ],
    [{ rowNumber: 4, code: 'NEW_WARNING', message: 'Odd cell.' }, 'Row 4: Odd cell.', 'Ligne 4 : Odd cell.'],
    ['Plain text.', 'Plain text.', 'Plain text.'],
  ])('of %j reads well in both languages', (warning, english, french) => {
    const normalized = normalizeWarning(warning);
    expect(warningSentence(normalized, en)).toBe(english);
    expect(warningSentence(normalized, fr)).toBe(french);
  });
});

describe('warningRows', () => {
  it('lists the rows named, ascending, once each', () => {
    const warnings = [
      'Row 9: the question is blank; the row was skipped.',
      { rowNumber: 3 },
      { rowNumber: 9 },
      'x',
    ].map(normalizeWarning);
    expect(warningRows(warnings)).toEqual([3, 9]);
  });
});
