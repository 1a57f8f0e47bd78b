import { screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { TOKEN_KEY } from '../auth.js';
import { installFetch, jsonResponse } from '../test/fakeFetch.js';
import { renderPage } from '../test/render.jsx';
import BatchUpload from './BatchUpload.jsx';
import LanguageSwitch from './LanguageSwitch.jsx';

beforeEach(() => {
  sessionStorage.setItem(TOKEN_KEY, 'tok');
});

const csv = () => new File(['REDACTEDQUESTION\nHow do I renew my passport?\n'], 'questions.csv', { type: 'text/csv' });
const CONNECTED = { pipelines: ['local', 'ai-answers'] };

function setup(options, { withSwitch = false } = {}) {
  const user = userEvent.setup({ applyAccept: false });
  renderPage(
    <>
      {withSwitch && <LanguageSwitch />}
      <BatchUpload onCreated={vi.fn()} options={options} />
    </>,
  );
  return { user, fileInput: screen.getByLabelText(/Spreadsheet of questions/) };
}

const created = () =>
  installFetch({ 'POST /api/batch/create': () => jsonResponse(202, { batchId: 'p1', status: 'queued', totalItems: 1 }) });

async function upload(user, fileInput) {
  await user.upload(fileInput, csv());
  await user.click(screen.getByRole('button', { name: 'Upload and start' }));
  await screen.findByTestId('upload-success');
}

describe('the pipeline choice', () => {
  it.each([
    ['no options', null],
    ['options without pipelines', { aiProviders: ['offline'] }],
    ['only the local pipeline', { pipelines: ['local'] }],
  ])('is not offered with %s, and the form sends no pipeline', async (_, options) => {
    const fetch = created();
    const { user, fileInput } = setup(options);

    expect(screen.queryByLabelText('Answers from')).not.toBeInTheDocument();
    await upload(user, fileInput);
    expect(fetch.requests[0].body.has('pipeline')).toBe(false);
  });

  it('is offered when the options list ai-answers, local first and chosen', () => {
    setup(CONNECTED);

    const select = screen.getByLabelText('Answers from');
    expect(select).toHaveValue('local');
    expect(within(select).getAllByRole('option').map((o) => [o.value, o.textContent])).toEqual([
      ['local', 'This service’s pipeline'],
      ['ai-answers', 'The deployed AI Answers'],
    ]);
    expect(select).toHaveAccessibleDescription(/deployed AI Answers this deployment is connected to/);
  });

  it('sends pipeline=ai-answers when the user chooses it', async () => {
    const fetch = created();
    const { user, fileInput } = setup(CONNECTED);

    await user.selectOptions(screen.getByLabelText('Answers from'), 'ai-answers');
    await upload(user, fileInput);
    expect(fetch.requests[0].body.get('pipeline')).toBe('ai-answers');
  });

  it('sends no pipeline for the local one, the server’s default', async () => {
    const fetch = created();
    const { user, fileInput } = setup(CONNECTED);

    await upload(user, fileInput);
    expect(fetch.requests[0].body.has('pipeline')).toBe(false);
  });

  it('speaks French after the language switch', async () => {
    const { user } = setup(CONNECTED, { withSwitch: true });

    await user.click(screen.getByRole('button', { name: 'Afficher cette page en français' }));

    const select = screen.getByLabelText('Source des réponses');
    expect(within(select).getAllByRole('option').map((o) => o.textContent)).toEqual([
      'Le pipeline de ce service',
      'Le déploiement de Réponses IA',
    ]);
  });
});
