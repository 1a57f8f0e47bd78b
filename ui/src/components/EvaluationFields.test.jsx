import { fireEvent, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { useState } from 'react';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { TOKEN_KEY } from '../auth.js';
import { DEFAULT_EVALUATION, evaluationFormFields, validateEvaluation } from '../evaluation.js';
import { batchSummary, errorResponse, installFetch, jsonResponse } from '../test/fakeFetch.js';
import { renderPage } from '../test/render.jsx';
import BatchUpload from './BatchUpload.jsx';
import EvaluationFields, { BASELINE_REFRESH_MS } from './EvaluationFields.jsx';

const DONE = '0123456789abcdef01234567';
const OPTIONS = {
  maxTrials: 8,
  analyzers: [
    { name: 'refusal', needsModel: false },
    { name: 'citation', needsModel: false },
    { name: 'similar-answer', needsModel: true },
    { name: 'expert-scorer', needsModel: true },
  ],
};
const BATCHES = [
  batchSummary({ batchId: 'aaaaaaaaaaaaaaaaaaaaaaaa', name: 'Running', status: 'processing', processedItems: 2 }),
  batchSummary({ batchId: DONE, name: 'Spring run', status: 'processed', processedItems: 10 }),
];

beforeEach(() => sessionStorage.setItem(TOKEN_KEY, 'tok'));

/** The fields as the upload form holds them: values in state, checked on "submit". */
function Form({ options = OPTIONS, onValues = () => {} }) {
  const [values, setValues] = useState(DEFAULT_EVALUATION);
  const [problems, setProblems] = useState([]);
  return (
    <form
      noValidate
      onSubmit={(event) => {
        event.preventDefault();
        setProblems(validateEvaluation(values, { maxTrials: options?.maxTrials }));
        onValues(values);
      }}
    >
      <EvaluationFields
        values={values}
        options={options}
        problems={problems}
        onChange={(next) => {
          setValues(next);
          onValues(next);
        }}
      />
      <button type="submit">Check</button>
    </form>
  );
}

function setup({ batches = BATCHES, options, lang } = {}) {
  const user = userEvent.setup();
  const fetch = installFetch({ 'GET /api/batch/list': () => jsonResponse(200, batches) });
  let latest = DEFAULT_EVALUATION;
  renderPage(<Form options={options} onValues={(v) => (latest = v)} />, { lang });
  fireEvent.click(screen.getByTestId('evaluation-toggle'));
  return { user, fetch, values: () => latest };
}

describe('the evaluation fields', () => {
  it('are closed at first and read nothing; opened, they say what a closed section still sends', async () => {
    const user = userEvent.setup();
    const fetch = installFetch({ 'GET /api/batch/list': () => jsonResponse(200, BATCHES) });
    renderPage(<Form />);
    const toggle = screen.getByRole('button', { name: 'Evaluation options' });
    expect(toggle).toHaveAttribute('aria-expanded', 'false');
    expect(toggle).toHaveAccessibleDescription(/Run the questions as an evaluation/);
    expect(screen.queryByLabelText('Trials')).not.toBeInTheDocument();
    expect(fetch.requests).toHaveLength(0);

    await user.click(toggle);
    expect(toggle).toHaveAttribute('aria-expanded', 'true');
    await user.clear(screen.getByLabelText('Trials'));
    await user.type(screen.getByLabelText('Trials'), '3');
    await user.click(screen.getByLabelText('Citation'));
    await user.type(screen.getByLabelText('Budget (US dollars)'), '2');
    await user.click(toggle);

    expect(toggle).toHaveAccessibleDescription(/Chosen: 3 trials, Citation, a budget of US\$2\.00\.$/);
    expect(fetch.requests).toHaveLength(1);
  });

  it('open by themselves when one of their fields has a problem', async () => {
    const user = userEvent.setup();
    installFetch({ 'GET /api/batch/list': () => jsonResponse(200, BATCHES) });
    renderPage(<Form />);
    await user.click(screen.getByRole('button', { name: 'Evaluation options' }));
    await user.type(screen.getByLabelText('Budget (US dollars)'), 'lots');
    await user.click(screen.getByRole('button', { name: 'Evaluation options' }));
    await user.click(screen.getByRole('button', { name: 'Check' }));

    expect(screen.getByLabelText('Budget (US dollars)')).toHaveAttribute('aria-invalid', 'true');
    expect(screen.getByRole('button', { name: 'Evaluation options' })).toHaveAttribute('aria-expanded', 'true');
  });

  it('explain each field in one line, linked to it', async () => {
    setup();
    const trials = screen.getByLabelText('Trials');
    expect(trials).toHaveValue(1);
    expect(trials).toHaveAccessibleDescription(/each time in a new chat.*From 1 to 8\./);
    expect(screen.getByRole('group', { name: 'Analyzers' })).toHaveAccessibleDescription(/Checks made on every answer/);
    expect(screen.getByLabelText('Refusal')).toHaveAccessibleDescription(/expectedOutcome \(or BLOCK\)/);
    expect(screen.getByLabelText('Similar answer')).toHaveAccessibleDescription(/adds to the cost/);
    expect(screen.getByLabelText('Citation')).not.toHaveAccessibleDescription(/adds to the cost/);
    expect(screen.getByLabelText('Baseline batch')).toHaveAccessibleDescription(/earlier finished batch of the same file/);
    expect(screen.getByLabelText('Budget (US dollars)')).toHaveAccessibleDescription(/leave it empty for no limit/);
    await screen.findByRole('option', { name: /Spring run/ });
  });

  it('offer as baseline only the caller’s finished batches', async () => {
    const { fetch } = setup();
    const select = screen.getByLabelText('Baseline batch');
    expect(await within(select).findByRole('option', { name: /^Spring run — .* \(10 rows\)$/ })).toHaveValue(DONE);
    expect(within(select).getAllByRole('option').map((o) => o.value)).toEqual(['', DONE]);
    expect(fetch.requests.map((r) => r.path)).toEqual(['/api/batch/list']);
  });

  it('say when there is no batch to compare with', async () => {
    setup({ batches: [BATCHES[0]] });
    await screen.findByText('You have no finished batch to compare with yet.');
    expect(screen.getByTestId('baseline-state')).not.toHaveTextContent('Loading');
  });

  it('say the list could not be read, without the server’s words', async () => {
    const user = userEvent.setup();
    installFetch({ 'GET /api/batch/list': () => errorResponse(503, 'DATABASE_UNAVAILABLE', 'mongo down') });
    renderPage(<Form />);
    await user.click(screen.getByRole('button', { name: 'Evaluation options' }));
    const state = screen.getByTestId('baseline-state');
    await screen.findByText(/Your finished batches could not be loaded/);
    expect(state).not.toHaveTextContent('mongo down');
  });

  it('keep the values the form sends', async () => {
    const { user, values } = setup();
    const trials = screen.getByLabelText('Trials');
    await user.clear(trials);
    await user.type(trials, '3');
    await user.click(screen.getByLabelText('Expert scorer'));
    await user.click(screen.getByLabelText('Similar answer'));
    await user.selectOptions(screen.getByLabelText('Baseline batch'), await screen.findByRole('option', { name: /Spring run/ }));
    await user.type(screen.getByLabelText('Budget (US dollars)'), '2.50');

    expect(evaluationFormFields(values())).toEqual([
      ['trials', '3'],
      ['analyzers', 'similar-answer,expert-scorer'],
      ['baselineBatchId', DONE],
      ['budgetUsd', '2.5'],
    ]);
    await user.click(screen.getByLabelText('Expert scorer'));
    expect(values().analyzers).toEqual(['similar-answer']);
  });

  it('read the list again when it is focused a while later, so a batch finished since is offered', async () => {
    const user = userEvent.setup();
    let batches = [BATCHES[0]];
    const fetch = installFetch({ 'GET /api/batch/list': () => jsonResponse(200, batches) });
    const now = vi.spyOn(Date, 'now');
    now.mockReturnValue(1_000_000);
    renderPage(<Form />);
    await user.click(screen.getByRole('button', { name: 'Evaluation options' }));
    expect(await screen.findByText('You have no finished batch to compare with yet.')).toBeInTheDocument();

    batches = [{ ...BATCHES[0], status: 'processed' }, BATCHES[1]];
    screen.getByLabelText('Baseline batch').focus();
    expect(fetch.requests).toHaveLength(1); // just read: not again at once
    screen.getByLabelText('Trials').focus();
    now.mockReturnValue(1_000_000 + BASELINE_REFRESH_MS);
    await user.click(screen.getByLabelText('Baseline batch'));

    expect(await screen.findByRole('option', { name: /Spring run/ })).toBeInTheDocument();
    expect(screen.getByRole('option', { name: /Running/ })).toBeInTheDocument();
    expect(fetch.requests).toHaveLength(2);
  });

  it('say a baseline needs a judging analyzer to be judged', async () => {
    const { user } = setup();
    await user.selectOptions(screen.getByLabelText('Baseline batch'), await screen.findByRole('option', { name: /Spring run/ }));
    expect(screen.getByTestId('baseline-state')).toHaveTextContent('Choose Similar answer or Expert scorer');
    await user.click(screen.getByLabelText('Expert scorer'));
    expect(screen.getByTestId('baseline-state')).not.toHaveTextContent('Choose Similar answer');
  });

  it('show each problem beside its field, linked to it', async () => {
    const { user } = setup();
    const trials = screen.getByLabelText('Trials');
    await user.clear(trials);
    await user.type(trials, '12');
    await user.type(screen.getByLabelText('Budget (US dollars)'), 'lots');
    await user.click(screen.getByRole('button', { name: 'Check' }));

    expect(trials).toHaveAttribute('aria-invalid', 'true');
    expect(trials).toHaveAccessibleDescription(/Trials must be a whole number from 1 to 8\./);
    expect(screen.getByLabelText('Budget (US dollars)')).toHaveAccessibleDescription(
      /The budget must be an amount of US dollars above 0, like 5 or 12.50\./,
    );
  });

  it('offer only the analyzers the deployment lists, and its most trials', async () => {
    setup({ options: { maxTrials: 3, analyzers: [{ name: 'refusal', needsModel: false }] } });
    expect(screen.getAllByRole('checkbox').map((box) => box.value)).toEqual(['refusal']);
    expect(screen.getByLabelText('Trials')).toHaveAttribute('max', '3');
    await screen.findByRole('option', { name: /Spring run/ });
  });

  it('are in French on a French page', async () => {
    setup({ lang: 'fr' });
    expect(screen.getByRole('group', { name: 'Évaluation (facultatif)' })).toBeInTheDocument();
    expect(screen.getByLabelText('Essais')).toHaveAccessibleDescription(/De 1 à 8\./);
    expect(screen.getByLabelText('Réponse semblable')).toBeInTheDocument();
    expect(screen.getByLabelText('Budget (dollars américains)')).toBeInTheDocument();
    expect(await screen.findByRole('option', { name: /^Spring run — .* \(10 lignes\)$/ })).toBeInTheDocument();
  });
});

describe('in the upload form', () => {
  const csv = () => new File(['REDACTEDQUESTION\nHow do I renew my passport?\n'], 'questions.csv', { type: 'text/csv' });

  it('send the chosen evaluation as create’s form fields', async () => {
    const user = userEvent.setup({ applyAccept: false });
    const fetch = installFetch({
      'GET /api/batch/list': () => jsonResponse(200, BATCHES),
      'POST /api/batch/create': () => jsonResponse(202, { batchId: 'bbbbbbbbbbbbbbbbbbbbbbbb', status: 'queued', totalItems: 1, warnings: [] }),
    });
    renderPage(<BatchUpload options={OPTIONS} />);
    await user.upload(screen.getByLabelText(/Spreadsheet of questions/), csv());
    await user.click(screen.getByRole('button', { name: 'Evaluation options' }));
    await user.clear(screen.getByLabelText('Trials'));
    await user.type(screen.getByLabelText('Trials'), '2');
    await user.click(screen.getByLabelText('Similar answer'));
    await user.click(screen.getByLabelText('Expert scorer'));
    await user.selectOptions(screen.getByLabelText('Baseline batch'), await screen.findByRole('option', { name: /Spring run/ }));
    await user.type(screen.getByLabelText('Budget (US dollars)'), '0.75');
    await user.click(screen.getByRole('button', { name: 'Upload and start' }));

    await screen.findByTestId('upload-success');
    const form = fetch.requests.find((r) => r.path === '/api/batch/create').body;
    expect(form.get('trials')).toBe('2');
    expect(form.get('analyzers')).toBe('similar-answer,expert-scorer');
    expect(form.get('baselineBatchId')).toBe(DONE);
    expect(form.get('budgetUsd')).toBe('0.75');
    expect(form.get('batchName')).toBe('questions');
  });

  it('send none of them for a plain upload', async () => {
    const user = userEvent.setup({ applyAccept: false });
    const fetch = installFetch({
      'POST /api/batch/create': () => jsonResponse(202, { batchId: 'bbbbbbbbbbbbbbbbbbbbbbbb', status: 'queued', totalItems: 1, warnings: [] }),
    });
    renderPage(<BatchUpload options={OPTIONS} />);
    await user.upload(screen.getByLabelText(/Spreadsheet of questions/), csv());
    await user.click(screen.getByRole('button', { name: 'Upload and start' }));

    await screen.findByTestId('upload-success');
    const form = fetch.requests.find((r) => r.path === '/api/batch/create').body;
    for (const name of ['trials', 'analyzers', 'baselineBatchId', 'budgetUsd']) expect(form.has(name)).toBe(false);
  });

  it('list an evaluation problem in the form’s error summary, linked to its field, and send nothing', async () => {
    const user = userEvent.setup({ applyAccept: false });
    const fetch = installFetch({ 'GET /api/batch/list': () => jsonResponse(200, BATCHES) });
    renderPage(<BatchUpload options={OPTIONS} />);
    await user.upload(screen.getByLabelText(/Spreadsheet of questions/), csv());
    await user.click(screen.getByRole('button', { name: 'Evaluation options' }));
    await user.clear(screen.getByLabelText('Trials'));
    await user.type(screen.getByLabelText('Trials'), '9');
    await user.click(screen.getByRole('button', { name: 'Upload and start' }));

    const summary = await screen.findByTestId('upload-validation');
    expect(within(summary).getByRole('link', { name: 'Trials must be a whole number from 1 to 8.' })).toHaveAttribute(
      'href',
      '#upload-trials',
    );
    expect(fetch.requests.some((r) => r.path === '/api/batch/create')).toBe(false);
  });
});
