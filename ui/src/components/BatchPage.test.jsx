import { act, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it } from 'vitest';
import { TOKEN_KEY } from '../auth.js';
import { batchSummary, errorResponse, installFetch, jsonResponse } from '../test/fakeFetch.js';
import { renderPage } from '../test/render.jsx';
import BatchPage from './BatchPage.jsx';

function jwt(claims) {
  const encode = (value) => btoa(JSON.stringify(value)).replace(/=+$/, '');
  return `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(claims)}.signature`;
}

const PARTNER = jwt({ sub: 'partner', exp: 4102444800 });

afterEach(() => {
  window.history.replaceState(null, '', '/');
});

const listRoute = (batches = []) => ({ 'GET /api/batch/list': () => jsonResponse(200, batches) });

describe('signed out', () => {
  it('explains how to sign in and offers a token field, without calling the API', () => {
    const fetch = installFetch(listRoute());

    renderPage(<BatchPage />);

    expect(screen.getByRole('heading', { name: 'Sign in' })).toBeInTheDocument();
    expect(screen.getByText(/Open the sign-in link printed by the local stack/)).toBeInTheDocument();
    expect(screen.getByLabelText('Access token')).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Sign out' })).not.toBeInTheDocument();
    expect(screen.queryByRole('heading', { name: 'New batch' })).not.toBeInTheDocument();
    expect(fetch).not.toHaveBeenCalled();
  });

  it('signs in with a pasted token', async () => {
    const fetch = installFetch(listRoute());
    const user = userEvent.setup();
    renderPage(<BatchPage />);

    await user.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(screen.getByText('Paste a token to sign in.')).toBeInTheDocument();

    await user.click(screen.getByLabelText('Access token'));
    await user.paste(`  ${PARTNER}  `);
    await user.click(screen.getByRole('button', { name: 'Sign in' }));

    expect(await screen.findByText('You have no batches yet. Upload a file to start one.')).toBeInTheDocument();
    expect(sessionStorage.getItem(TOKEN_KEY)).toBe(PARTNER);
    expect(fetch.requests[0].headers.Authorization).toBe(`Bearer ${PARTNER}`);
    expect(screen.getByTestId('signed-in-user')).toHaveTextContent('Signed in as partner');
  });
});

describe('the #token= link', () => {
  it('signs in, keeps the token in sessionStorage and removes it from the address bar', async () => {
    window.history.replaceState(null, '', `/#token=${PARTNER}`);
    const fetch = installFetch(listRoute([batchSummary({ status: 'processed' })]));

    renderPage(<BatchPage />);

    expect(await screen.findByTestId('batch-row-b1')).toBeInTheDocument();
    expect(sessionStorage.getItem(TOKEN_KEY)).toBe(PARTNER);
    expect(window.location.hash).toBe('');
    expect(window.location.href).not.toContain(PARTNER);
    expect(fetch.requests.every((request) => !request.url.includes(PARTNER))).toBe(true);
    expect(fetch.requests[0].headers.Authorization).toBe(`Bearer ${PARTNER}`);
  });

  it('also works when opened in a tab that already shows the page', async () => {
    installFetch(listRoute());
    renderPage(<BatchPage />);
    expect(screen.getByRole('heading', { name: 'Sign in' })).toBeInTheDocument();

    await act(async () => {
      window.history.replaceState(null, '', `/#token=${PARTNER}`);
      window.dispatchEvent(new HashChangeEvent('hashchange'));
    });

    expect(await screen.findByRole('heading', { name: 'New batch' })).toBeInTheDocument();
    expect(window.location.hash).toBe('');
  });

  it('is refused when the token has already expired', () => {
    window.history.replaceState(null, '', `/#token=${jwt({ sub: 'partner', exp: 1000 })}`);
    installFetch(listRoute());

    renderPage(<BatchPage />);

    expect(screen.getByRole('heading', { name: 'Sign in' })).toBeInTheDocument();
    expect(screen.getByTestId('signin-reason')).toHaveTextContent('Your session has ended or your token was refused.');
    expect(sessionStorage.getItem(TOKEN_KEY)).toBeNull();
  });
});

describe('signed in', () => {
  it('composes the upload form, the list and a polite live region', async () => {
    sessionStorage.setItem(TOKEN_KEY, PARTNER);
    installFetch(listRoute());

    renderPage(<BatchPage />);

    expect(screen.getByRole('heading', { level: 1 })).toHaveTextContent('AI Answers — Batch processing');
    expect(screen.getByRole('heading', { name: 'New batch' })).toBeInTheDocument();
    expect(screen.getByRole('heading', { name: 'Your batches' })).toBeInTheDocument();
    expect(screen.getByTestId('live-region')).toHaveAttribute('aria-live', 'polite');
    await screen.findByTestId('batch-list-empty');
  });

  it('reads the upload options once and offers only the configured providers', async () => {
    sessionStorage.setItem(TOKEN_KEY, PARTNER);
    const fetch = installFetch({
      ...listRoute(),
      'GET /api/batch/options': () =>
        jsonResponse(200, {
          aiProviders: ['offline', 'anthropic'],
          searchProviders: ['offline'],
          defaults: { aiProvider: 'anthropic', searchProvider: 'offline', concurrency: 12 },
          limits: { maxConcurrency: 32, maxBatchRows: 10000, maxUploadBytes: 4718592, maxNameChars: 200 },
        }),
    });

    renderPage(<BatchPage />);

    await waitFor(() => expect(screen.getByLabelText('AI provider')).toHaveValue('anthropic'));
    expect(screen.queryByRole('option', { name: 'OpenAI' })).not.toBeInTheDocument();
    expect(screen.getByRole('option', { name: 'Anthropic Claude' })).toBeInTheDocument();
    expect(screen.getByLabelText('Rows at once')).toHaveValue(12);
    const reads = fetch.requests.filter((request) => request.path === '/api/batch/options');
    expect(reads).toHaveLength(1);
    expect(reads[0].headers.Authorization).toBe(`Bearer ${PARTNER}`);
  });

  it('offers every provider when the options cannot be read', async () => {
    sessionStorage.setItem(TOKEN_KEY, PARTNER);
    installFetch({ ...listRoute(), 'GET /api/batch/options': () => errorResponse(503, 'UNAVAILABLE', 'Down.') });

    renderPage(<BatchPage />);

    await screen.findByTestId('batch-list-empty');
    expect(screen.getAllByRole('option').map((option) => option.value)).toEqual(
      expect.arrayContaining(['openai', 'azure', 'anthropic', 'google', 'canadaca']),
    );
    expect(screen.getByRole('heading', { name: 'New batch' })).toBeInTheDocument();
  });

  it('refreshes the list after an upload', async () => {
    sessionStorage.setItem(TOKEN_KEY, PARTNER);
    let batches = [];
    const fetch = installFetch({
      'GET /api/batch/list': () => jsonResponse(200, batches),
      'POST /api/batch/create': () => {
        batches = [batchSummary({ batchId: 'fresh', name: 'Fresh batch' })];
        return jsonResponse(202, { batchId: 'fresh', status: 'queued', totalItems: 10, warnings: [] });
      },
    });
    const user = userEvent.setup();
    renderPage(<BatchPage />);
    await screen.findByTestId('batch-list-empty');

    await user.upload(screen.getByLabelText(/Spreadsheet of questions/), new File(['q'], 'fresh.csv'));
    await user.click(screen.getByRole('button', { name: 'Upload and start' }));

    expect(await screen.findByTestId('batch-row-fresh')).toBeInTheDocument();
    expect(fetch.requests.filter((request) => request.path === '/api/batch/list')).toHaveLength(2);
  });

  it('offers a batch as baseline as soon as the list sees it end, without the baseline list being focused', async () => {
    sessionStorage.setItem(TOKEN_KEY, PARTNER);
    let running = batchSummary({ batchId: 'spring', name: 'Spring run', status: 'processing', processedItems: 4 });
    const fetch = installFetch({
      'GET /api/batch/list': () => jsonResponse(200, [running]),
      'GET /api/batch/status': () => jsonResponse(200, running),
    });
    const user = userEvent.setup();
    renderPage(<BatchPage />);
    await screen.findByTestId('batch-row-spring');
    await user.click(screen.getByRole('button', { name: 'Evaluation options' }));
    expect(await screen.findByText('You have no finished batch to compare with yet.')).toBeInTheDocument();
    const listReads = () => fetch.requests.filter((request) => request.path === '/api/batch/list').length;
    const before = listReads();

    running = { ...running, status: 'processed', processedItems: 10 };

    expect(await screen.findByRole('option', { name: /Spring run/ }, { timeout: 5000 })).toBeInTheDocument();
    expect(screen.getByLabelText('Baseline batch')).not.toHaveFocus();
    expect(listReads()).toBe(before + 1);
  });

  it('takes the reader from the success message to the new batch’s card', async () => {
    sessionStorage.setItem(TOKEN_KEY, PARTNER);
    let batches = [batchSummary({ batchId: 'older', name: 'Older batch', status: 'processed' })];
    installFetch({
      'GET /api/batch/list': () => jsonResponse(200, batches),
      'POST /api/batch/create': () => {
        batches = [
          batchSummary({ batchId: 'fresh', name: 'Fresh batch', createdAt: '2025-04-01T00:00:00Z' }),
          ...batches,
        ];
        return jsonResponse(202, { batchId: 'fresh', status: 'queued', totalItems: 10, warnings: [] });
      },
    });
    const user = userEvent.setup();
    renderPage(<BatchPage />);
    await screen.findByTestId('batch-row-older');
    await user.type(screen.getByLabelText('Search by name'), 'older');

    await user.upload(screen.getByLabelText(/Spreadsheet of questions/), new File(['q'], 'fresh.csv'));
    await user.click(screen.getByRole('button', { name: 'Upload and start' }));
    await user.click(await screen.findByRole('link', { name: 'Go to the batch in the list' }));

    await waitFor(() => expect(screen.getByRole('heading', { name: 'Fresh batch' })).toHaveFocus());
  });

  it('returns to the signed-out state with a message when the API answers 401', async () => {
    sessionStorage.setItem(TOKEN_KEY, PARTNER);
    installFetch({ 'GET /api/batch/list': () => errorResponse(401, 'UNAUTHORIZED', 'Token expired.') });

    renderPage(<BatchPage />);

    expect(await screen.findByRole('heading', { name: 'Sign in' })).toBeInTheDocument();
    expect(screen.getByTestId('signin-reason')).toHaveTextContent(
      'Your session has ended or your token was refused. Sign in again.',
    );
    expect(sessionStorage.getItem(TOKEN_KEY)).toBeNull();
  });

  it('signs out with the button', async () => {
    sessionStorage.setItem(TOKEN_KEY, PARTNER);
    installFetch(listRoute());
    const user = userEvent.setup();
    renderPage(<BatchPage />);

    await user.click(screen.getByRole('button', { name: 'Sign out' }));

    expect(screen.getByRole('heading', { name: 'Sign in' })).toBeInTheDocument();
    expect(screen.getByTestId('signin-reason')).toHaveTextContent('You are signed out.');
    expect(sessionStorage.getItem(TOKEN_KEY)).toBeNull();
  });
});

describe('the language switch', () => {
  it('shows French labels and sets <html lang>, then back to English', async () => {
    sessionStorage.setItem(TOKEN_KEY, PARTNER);
    installFetch(
      listRoute([
        batchSummary({ status: 'processed', startedAt: '2025-03-01T10:00:00Z', completedAt: '2025-03-01T10:01:00Z' }),
      ]),
    );
    const user = userEvent.setup();
    renderPage(<BatchPage />);
    await screen.findByTestId('batch-row-b1');

    await user.click(screen.getByRole('button', { name: 'Afficher cette page en français' }));

    expect(document.documentElement.lang).toBe('fr');
    expect(document.title).toBe('Réponses IA — Traitement par lots');
    expect(screen.getByRole('heading', { level: 1 })).toHaveTextContent('Réponses IA — Traitement par lots');
    expect(screen.getByRole('heading', { name: 'Nouveau lot' })).toBeInTheDocument();
    expect(screen.getByRole('heading', { name: 'Vos lots' })).toBeInTheDocument();
    expect(screen.getByLabelText('Nom du lot')).toBeInTheDocument();
    expect(screen.getByLabelText('Fournisseur d’IA')).toBeInTheDocument();
    expect(screen.getByLabelText('Appliquer mes remplacements de requêtes actifs')).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Téléverser et lancer' })).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Télécharger CSV' })).toBeInTheDocument();
    expect(screen.getByTestId('batch-status')).toHaveTextContent('Terminé');
    expect(screen.getByTestId('upload-lang-note')).toHaveTextContent('langue de la page : français');
    expect(screen.getByTestId('batch-duration')).toHaveTextContent('Durée : 1 min');
    expect(screen.getByRole('button', { name: 'Se déconnecter' })).toBeInTheDocument();
    expect(localStorage.getItem('aiAnswers.lang')).toBe('fr');

    await user.click(screen.getByRole('button', { name: 'Display this page in English' }));

    expect(document.documentElement.lang).toBe('en');
    expect(screen.getByRole('heading', { name: 'New batch' })).toBeInTheDocument();
  });

  it('translates the sign-in state and the validation messages', async () => {
    installFetch(listRoute());
    const user = userEvent.setup();
    renderPage(<BatchPage />, { lang: 'fr' });

    expect(screen.getByRole('heading', { name: 'Connexion' })).toBeInTheDocument();
    expect(screen.getByLabelText('Jeton d’accès')).toBeInTheDocument();
    await user.click(screen.getByLabelText('Jeton d’accès'));
    await user.paste(PARTNER);
    await user.click(screen.getByRole('button', { name: 'Se connecter' }));
    await screen.findByTestId('batch-list-empty');

    await user.click(screen.getByRole('button', { name: 'Téléverser et lancer' }));

    await waitFor(() =>
      expect(screen.getByTestId('upload-validation')).toHaveTextContent(
        'Choisissez un fichier .csv ou .xlsx à téléverser.',
      ),
    );
    expect(screen.getByTestId('upload-validation')).toHaveTextContent('Entrez un nom de lot.');
  });
});
