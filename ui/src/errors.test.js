import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DETAILED_SENTENCES, errorSentence, errorSentenceKey, rowErrorSentence } from './errors.js';
import { DICTIONARIES } from './i18n.js';

const LIB = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'lib');

/** Every `code="..."` raised in the Python sources and every class default of lib/errors.py. */
function codesRaisedByTheServer() {
  const codes = new Set();
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.py')) {
        const text = readFileSync(path, 'utf8');
        for (const match of text.matchAll(/code="([A-Z_]+)"/g)) codes.add(match[1]);
        if (name === 'errors.py') for (const match of text.matchAll(/^\s+code = "([A-Z_]+)"/gm)) codes.add(match[1]);
      }
    }
  };
  walk(LIB);
  return [...codes].sort();
}

/** Codes raised by name rather than as `code="..."`, and the ones the brief announces. */
const OTHER_CODES = [
  'INVALID_BATCH_NAME',
  'PROVIDER_NOT_CONFIGURED',
  'MISSING_FILE',
  'NO_SUCH_ROUTE',
  'CLIENT_DISCONNECTED',
  'HEADERS_TOO_LARGE',
  'BLOCKED',
  'CHAT_NOT_FOUND',
  'BUDGET_EXCEEDED',
  'DATABASE_UNAVAILABLE',
  'SHEET_TOO_LARGE',
  'ROW_NUMBER_OUT_OF_RANGE',
  'COLUMN_OUT_OF_RANGE',
  'CONTENT_FILTER',
  'MALFORMED_STAGE_REPLY',
  'REQUEST_TIMEOUT',
  'URI_TOO_LONG',
  'NOT_IMPLEMENTED',
  'HTTP_VERSION_NOT_SUPPORTED',
  'HTTP_ERROR',
  'NETWORK_ERROR',
];

describe('every error code the API can return', () => {
  const fromServer = (() => {
    try {
      return codesRaisedByTheServer();
    } catch {
      return []; // the UI built on its own, without the Python tree beside it
    }
  })();

  it.each([...new Set([...fromServer, ...OTHER_CODES])].map((code) => [code]))(
    '%s has a sentence in English and French',
    (code) => {
      expect(DICTIONARIES.en[`error.${code}`]).toEqual(expect.any(String));
      expect(DICTIONARIES.fr[`error.${code}`]).toEqual(expect.any(String));
      expect(DICTIONARIES.fr[`error.${code}`]).not.toBe(DICTIONARIES.en[`error.${code}`]);
    },
  );

  it('finds the codes in the Python sources when they are there', () => {
    if (fromServer.length === 0) return;
    expect(fromServer).toEqual(expect.arrayContaining(['MISSING_QUESTION_COLUMN', 'BATCH_FINISHED', 'INTERNAL']));
  });

  it.each(Object.entries(DETAILED_SENTENCES).flatMap(([code, variants]) => variants.map(([suffix]) => [code, suffix])))(
    'the detailed sentence %s.%s exists in both languages',
    (code, suffix) => {
      expect(DICTIONARIES.en[`error.${code}.${suffix}`]).toEqual(expect.any(String));
      expect(DICTIONARIES.fr[`error.${code}.${suffix}`]).toEqual(expect.any(String));
    },
  );
});

describe('errorSentence', () => {
  const missingColumn = {
    status: 400,
    code: 'MISSING_QUESTION_COLUMN',
    message: 'No question column found. Name one column…',
    details: { accepted: ['REDACTEDQUESTION', 'QUESTION', 'PROBLEM DETAILS'], found: ['Name', 'Email'] },
  };

  it('words the details of a missing question column', () => {
    expect(errorSentence(missingColumn, 'en')).toBe(
      'No question column. Accepted names: REDACTEDQUESTION, QUESTION, PROBLEM DETAILS; this file has: Name, Email.',
    );
    expect(errorSentence(missingColumn, 'fr')).toBe(
      'Aucune colonne de questions. Noms acceptés : REDACTEDQUESTION, QUESTION, PROBLEM DETAILS; ce fichier contient : Name, Email.',
    );
  });

  it('says "(none)" when the file has no column names', () => {
    expect(errorSentence({ ...missingColumn, details: { ...missingColumn.details, found: [] } })).toMatch(
      /this file has: \(none\)\.$/,
    );
  });

  it('falls back to the plain sentence when the details are missing or of the wrong kind', () => {
    const plain = 'The file has no question column. Name one column REDACTEDQUESTION, QUESTION or PROBLEM DETAILS.';
    expect(errorSentence({ code: 'MISSING_QUESTION_COLUMN' })).toBe(plain);
    expect(errorSentence({ code: 'MISSING_QUESTION_COLUMN', details: { accepted: 'QUESTION', found: 3 } })).toBe(plain);
  });

  it('never shows the server’s English message or JSON', () => {
    const sentence = errorSentence(missingColumn, 'fr');
    expect(sentence).not.toContain(missingColumn.message);
    expect(sentence).not.toMatch(/[{}[\]"]/);
    expect(sentence).not.toContain('accepted');
    expect(sentence).not.toContain('HTTP');
  });

  it.each([
    [
      { code: 'ROW_HAS_EXTRA_CELLS', details: { row: 12, columns: 3, cells: 5 } },
      'Row 12 has 5 cells but the header has 3 columns.',
      'La ligne 12 compte 5 cellules, mais l’en-tête a 3 colonnes.',
    ],
    [
      { code: 'CELL_TOO_LONG', details: { row: 7, column: 'QUESTION', maxChars: 10000 } },
      'Row 7, column “QUESTION” is longer than 10,000 characters. Shorten it.',
      'Ligne 7, colonne « QUESTION » : la cellule dépasse 10\u00a0000 caractères. Raccourcissez-la.',
    ],
    [
      { code: 'CELL_TOO_LONG', details: { row: 7 } },
      'Row 7 has a cell that is far too long.',
      'La ligne 7 contient une cellule beaucoup trop longue.',
    ],
    [
      { code: 'TOO_MANY_ROWS', details: { maxRows: 10000 } },
      'The file has more than 10,000 questions. Split it into files of at most 10,000 rows.',
      'Le fichier compte plus de 10\u00a0000 questions.',
    ],
    [
      { code: 'PAYLOAD_TOO_LARGE', details: { maxBytes: 4718592 } },
      'The upload is larger than the limit of 4.5 MB.',
      'Le téléversement dépasse la limite de 4,5 Mo.',
    ],
    [
      { code: 'UNKNOWN_PROVIDER', details: { field: 'aiProvider', allowed: ['offline', 'openai'] } },
      'AI provider: this provider is unknown or not configured here. Choose one of: Offline (no network) or OpenAI.',
      'Fournisseur d’IA : ce fournisseur est inconnu ou n’est pas configuré ici. Choisissez parmi : Hors ligne (sans réseau) ou OpenAI.',
    ],
    [
      { code: 'INVALID_FIELD', details: { field: 'concurrency' } },
      'The value of “Rows at once” is not valid.',
      'La valeur de « Lignes simultanées » n’est pas valide.',
    ],
    [
      { code: 'ROLE_NOT_ALLOWED', details: { allowedRoles: ['admin', 'partner'] } },
      'Your role may not use batches; only administrators and partners may.',
      'seuls les administrateurs et partenaires le peuvent.',
    ],
    [
      { code: 'PROVIDER_TIMEOUT', details: { provider: 'anthropic', retryable: true } },
      'Anthropic Claude did not answer in time.',
      'Anthropic Claude n’a pas répondu à temps.',
    ],
    [
      { code: 'BLOCKED', details: { blockedBy: 'piStage1' } },
      'The question was blocked by the assistant’s checks (personal information).',
      'bloquée par les vérifications de l’assistant (renseignements personnels).',
    ],
    [
      { code: 'ROW_NUMBER_OUT_OF_RANGE', details: { maxRow: 1048576 } },
      'past Excel’s last row (1,048,576).',
      'dernière ligne d’Excel (1\u00a0048\u00a0576).',
    ],
    [
      { code: 'BATCH_FINISHED', message: 'The batch is already processed.' },
      'The batch has already finished or been cancelled.',
      'Le lot est déjà terminé ou annulé.',
    ],
  ])('words %j', (error, english, french) => {
    expect(errorSentence(error, 'en')).toContain(english);
    expect(errorSentence(error, 'fr')).toContain(french);
  });

  it('adds how long to wait when the server said so (Retry-After or details)', () => {
    expect(errorSentence({ code: 'CREATE_RATE_LIMITED', details: { retryAfterSeconds: 42 } })).toBe(
      'You have uploaded too many files in the last minute. Try again in 42 s.',
    );
    expect(errorSentence({ code: 'DATABASE_UNAVAILABLE', retryAfterSeconds: 5 }, 'fr')).toBe(
      'La base de données est momentanément indisponible. Réessayez sous peu. Réessayez dans 5 s.',
    );
  });

  it('gives an unknown code a generic sentence that shows the code', () => {
    const error = { status: 418, code: 'TEAPOT_EMPTY', message: 'No tea.', details: { pot: 1 } };

    expect(errorSentence(error, 'en')).toBe(
      'The server refused the request with an error this page does not know (TEAPOT_EMPTY). Try again; if it happens again, give this code to support.',
    );
    expect(errorSentence(error, 'fr')).toContain('une erreur que cette page ne connaît pas (TEAPOT_EMPTY)');
  });

  it('reads an answer without an error envelope by its HTTP status', () => {
    expect(errorSentence({ status: 413, code: 'HTTP_413' })).toBe('The upload is larger than the server accepts.');
    expect(errorSentence({ status: 502, code: 'HTTP_502' })).toBe(
      'The server answered with an unexpected error (HTTP 502). Try again in a moment.',
    );
    expect(errorSentenceKey({ status: 504, code: 'HTTP_504' }, 'fr')).toEqual({
      key: 'error.http',
      params: { status: 504 },
    });
  });

  it('says the server could not be reached on a network failure', () => {
    expect(errorSentence({ status: 0, code: 'NETWORK_ERROR' }, 'fr')).toBe(
      'Le serveur est injoignable. Vérifiez votre connexion et réessayez.',
    );
  });

  it('is empty without an error', () => {
    expect(errorSentence(null)).toBe('');
  });
});

describe('rowErrorSentence', () => {
  it('words the code of a row error given as "CODE: message"', () => {
    expect(rowErrorSentence('PROVIDER_TIMEOUT: offline did not answer in time')).toBe(
      'The AI or search provider did not answer in time.',
    );
    expect(rowErrorSentence('PROVIDER_TIMEOUT: offline did not answer in time', 'fr')).toBe(
      'Le fournisseur d’IA ou de recherche n’a pas répondu à temps.',
    );
  });

  it('words a row error given as an object, with its details', () => {
    expect(rowErrorSentence({ code: 'PROVIDER_ERROR', message: 'x', details: { provider: 'azure' } })).toBe(
      'Azure OpenAI had an error on its side.',
    );
  });

  it('names an unknown code as a row failure, and keeps a text without a code', () => {
    expect(rowErrorSentence('NEW_THING: something')).toBe(
      'This row failed with an error this page does not know (NEW_THING).',
    );
    expect(rowErrorSentence('plain words')).toBe('plain words');
    expect(rowErrorSentence('')).toBe('');
  });
});
