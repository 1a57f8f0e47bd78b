import { fireEvent, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { TOKEN_KEY } from '../auth.js';
import { errorResponse, installFetch, jsonResponse } from '../test/fakeFetch.js';
import { renderPage } from '../test/render.jsx';
import { MAX_UPLOAD_BYTES } from '../validation.js';
import BatchUpload from './BatchUpload.jsx';
import LanguageSwitch from './LanguageSwitch.jsx';

beforeEach(() => {
  sessionStorage.setItem(TOKEN_KEY, 'tok');
});

const csv = (name = 'questions-en.csv', text = 'REDACTEDQUESTION\nHow do I renew my passport?\n') =>
  new File([text], name, { type: 'text/csv' });

function setup(options) {
  const user = userEvent.setup({ applyAccept: false });
  const onCreated = vi.fn();
  renderPage(<BatchUpload onCreated={onCreated} options={options} />);
  return { user, onCreated, fileInput: screen.getByLabelText(/Spreadsheet of questions/) };
}

const submit = (user) => user.click(screen.getByRole('button', { name: 'Upload and start' }));

describe('the form', () => {
  it('has labelled controls with the documented defaults', () => {
    setup();

    expect(screen.getByLabelText(/Spreadsheet of questions/)).toHaveAttribute('type', 'file');
    expect(screen.getByLabelText('Batch name')).toHaveValue('');
    expect(screen.getByLabelText('AI provider')).toHaveValue('offline');
    expect(
      within(screen.getByLabelText('AI provider'))
        .getAllByRole('option')
        .map((option) => option.value),
    ).toEqual(['offline', 'openai', 'azure', 'anthropic']);
    expect(screen.getByLabelText('Search provider')).toHaveValue('offline');
    expect(
      within(screen.getByLabelText('Search provider'))
        .getAllByRole('option')
        .map((option) => option.value),
    ).toEqual(['offline', 'google', 'canadaca']);
    expect(screen.getByLabelText('Apply my active prompt overrides')).not.toBeChecked();
  });

  it('names the providers for people, in the page’s language', () => {
    setup();
    const names = (label) =>
      within(screen.getByLabelText(label))
        .getAllByRole('option')
        .map((option) => option.textContent);

    expect(names('AI provider')).toEqual(['Offline (no network)', 'OpenAI', 'Azure OpenAI', 'Anthropic Claude']);
    expect(names('Search provider')).toEqual([
      'Offline (no network)',
      'Google Programmable Search',
      'Canada.ca search',
    ]);
  });

  it('has no language menu: it says answers default to the page language', () => {
    setup();

    expect(screen.queryByLabelText('Language of the questions')).not.toBeInTheDocument();
    expect(screen.queryByRole('combobox', { name: /language/i })).not.toBeInTheDocument();
    expect(screen.getByTestId('upload-lang-note')).toHaveTextContent(
      'Answers default to the page language: English; each question’s own language is detected.',
    );
  });

  it('explains rows at once and the prompt overrides', () => {
    setup();

    expect(screen.getByLabelText('Rows at once')).toHaveAccessibleDescription(
      'How many rows (or conversations) are answered at the same time; higher is faster but uses more of the provider’s quota. From 1 to 32.',
    );
    expect(screen.getByLabelText('Apply my active prompt overrides')).toHaveAccessibleDescription(
      /prompt overrides you have turned on in AI Answers .* standard prompts/,
    );
  });

  it('offers only the providers the server configured, with its defaults', () => {
    setup({
      aiProviders: ['offline', 'openai'],
      searchProviders: ['offline', 'canadaca'],
      defaults: { aiProvider: 'openai', searchProvider: 'canadaca', concurrency: 8 },
      limits: { maxConcurrency: 16 },
    });

    const values = (label) =>
      within(screen.getByLabelText(label))
        .getAllByRole('option')
        .map((option) => option.value);
    expect(values('AI provider')).toEqual(['offline', 'openai']);
    expect(screen.getByLabelText('AI provider')).toHaveValue('openai');
    expect(values('Search provider')).toEqual(['offline', 'canadaca']);
    expect(screen.getByLabelText('Search provider')).toHaveValue('canadaca');
    expect(screen.getByLabelText('Rows at once')).toHaveValue(8);
    expect(screen.getByLabelText('Rows at once')).toHaveAttribute('max', '16');
    expect(screen.getByLabelText('Rows at once')).toHaveAccessibleDescription(/1 to 16/);
  });

  it('names the batch after the chosen file until the user types a name', async () => {
    const { user, fileInput } = setup();

    await user.upload(fileInput, csv('march-questions.csv'));

    expect(screen.getByLabelText('Batch name')).toHaveValue('march-questions');
    expect(screen.getByTestId('upload-selected')).toHaveTextContent('Selected: march-questions.csv');
  });

  it('takes a file dropped on the drop zone', () => {
    setup();
    const file = csv('dropped.csv');

    fireEvent.dragEnter(screen.getByTestId('upload-dropzone'), { dataTransfer: { files: [file] } });
    expect(screen.getByText('Drop the file to select it')).toBeInTheDocument();
    fireEvent.drop(screen.getByTestId('upload-dropzone'), { dataTransfer: { files: [file] } });

    expect(screen.getByTestId('upload-selected')).toHaveTextContent('Selected: dropped.csv');
    expect(screen.getByLabelText('Batch name')).toHaveValue('dropped');
  });
});

describe('checks before uploading', () => {
  it('asks for a file and a name, without calling the server', async () => {
    const fetch = installFetch();
    const { user } = setup();

    await submit(user);

    const summary = screen.getByTestId('upload-validation');
    expect(summary).toHaveTextContent('Choose a .csv or .xlsx file to upload.');
    expect(summary).toHaveTextContent('Enter a batch name.');
    expect(summary).toHaveFocus();
    expect(screen.getByLabelText(/Spreadsheet of questions/)).toHaveAttribute('aria-invalid', 'true');
    expect(screen.getByLabelText('Batch name')).toHaveAttribute('aria-invalid', 'true');
    expect(screen.getByLabelText('Batch name')).toHaveAccessibleDescription('Enter a batch name.');
    expect(fetch).not.toHaveBeenCalled();
  });

  it.each([
    ['notes.txt', 'x', 'The file “notes.txt” is not a .csv or .xlsx file.'],
    ['empty.csv', '', 'The file “empty.csv” is empty.'],
    [
      'big.xlsx',
      new Uint8Array(MAX_UPLOAD_BYTES + 1),
      'The file “big.xlsx” is 4.5 MB (4,718,593 bytes); the limit is 4.5 MB (4,718,592 bytes).',
    ],
  ])('refuses %s', async (name, content, message) => {
    const fetch = installFetch();
    const { user, fileInput } = setup();

    await user.upload(fileInput, new File([content], name));
    await submit(user);

    expect(screen.getByTestId('upload-validation')).toHaveTextContent(message);
    expect(fetch).not.toHaveBeenCalled();
  });

  it('refuses a number of rows at once above the server’s limit', async () => {
    const fetch = installFetch();
    const { user, fileInput } = setup({ limits: { maxConcurrency: 16 } });

    await user.upload(fileInput, csv());
    await user.type(screen.getByLabelText('Rows at once'), '17');
    await submit(user);

    expect(screen.getByTestId('upload-validation')).toHaveTextContent(
      'Rows at once must be a whole number from 1 to 16.',
    );
    expect(screen.getByLabelText('Rows at once')).toHaveAttribute('aria-invalid', 'true');
    expect(fetch).not.toHaveBeenCalled();
  });

  it('refuses a name longer than 200 characters', async () => {
    const fetch = installFetch();
    const { user, fileInput } = setup();

    await user.upload(fileInput, csv());
    await user.clear(screen.getByLabelText('Batch name'));
    await user.click(screen.getByLabelText('Batch name'));
    await user.paste('n'.repeat(201));
    await submit(user);

    expect(screen.getByTestId('upload-validation')).toHaveTextContent(
      'The batch name has 201 characters; the limit is 200.',
    );
    expect(fetch).not.toHaveBeenCalled();
  });
});

describe('uploading', () => {
  it('posts every field, with the page language as lang, and shows the new batch and its warnings', async () => {
    const fetch = installFetch({
      'POST /api/batch/create': () =>
        jsonResponse(202, {
          batchId: '65f0c0ffee',
          status: 'queued',
          totalItems: 14,
          warnings: ['Row 5: the question is blank; the row was skipped.'],
        }),
    });
    const { user, fileInput, onCreated } = setup();

    await user.upload(fileInput, csv());
    await user.clear(screen.getByLabelText('Batch name'));
    await user.type(screen.getByLabelText('Batch name'), '  Passports  ');
    await user.selectOptions(screen.getByLabelText('AI provider'), 'anthropic');
    await user.selectOptions(screen.getByLabelText('Search provider'), 'google');
    await user.click(screen.getByLabelText('Apply my active prompt overrides'));
    await submit(user);

    const success = await screen.findByTestId('upload-success');
    expect(success).toHaveTextContent('Batch “Passports” created.');
    expect(within(success).getByTestId('upload-batch-id')).toHaveTextContent('65f0c0ffee');
    expect(success).toHaveTextContent('14 rows queued.');
    // The warning is not inside the green box: it has its own.
    expect(within(success).queryByTestId('upload-warnings')).not.toBeInTheDocument();
    expect(screen.getByTestId('upload-warnings')).toHaveTextContent('Row 5: the question is blank');
    expect(onCreated).toHaveBeenCalledWith(expect.objectContaining({ batchId: '65f0c0ffee' }));

    const [request] = fetch.requests;
    expect(request.method).toBe('POST');
    expect(request.url).toBe('/api/batch/create');
    expect(request.headers.Authorization).toBe('Bearer tok');
    const form = request.body;
    expect(form.get('file').name).toBe('questions-en.csv');
    expect(form.get('batchName')).toBe('Passports');
    expect(form.get('aiProvider')).toBe('anthropic');
    expect(form.get('searchProvider')).toBe('google');
    expect(form.get('lang')).toBe('en');
    expect(form.get('applyOverrides')).toBe('true');
    expect(form.has('concurrency')).toBe(false); // left empty: the server's default

    // The form is ready for the next file.
    expect(screen.getByLabelText('Batch name')).toHaveValue('');
    expect(screen.getByTestId('upload-selected')).toHaveTextContent('No file selected');
  });

  it('sends the rows at once the user chose', async () => {
    const fetch = installFetch({
      'POST /api/batch/create': () => jsonResponse(202, { batchId: 'c16', status: 'queued', totalItems: 1 }),
    });
    const { user, fileInput } = setup({ defaults: { concurrency: 4 }, limits: { maxConcurrency: 32 } });

    await user.upload(fileInput, csv());
    await user.clear(screen.getByLabelText('Rows at once'));
    await user.type(screen.getByLabelText('Rows at once'), '16');
    await submit(user);

    await screen.findByTestId('upload-success');
    expect(fetch.requests[0].body.get('concurrency')).toBe('16');
  });

  it('says what is wrong in a sentence built from the error’s details, with its code for reference', async () => {
    installFetch({
      'POST /api/batch/create': () =>
        errorResponse(400, 'MISSING_QUESTION_COLUMN', 'No question column found. Name one column…', {
          accepted: ['REDACTEDQUESTION', 'QUESTION', 'PROBLEM DETAILS'],
          found: ['Name', 'Email'],
        }),
    });
    const { user, fileInput, onCreated } = setup();

    await user.upload(fileInput, csv('people.csv'));
    await submit(user);

    const alert = await screen.findByTestId('upload-error');
    expect(alert).toHaveAttribute('role', 'alert');
    expect(within(alert).getByTestId('upload-error-message')).toHaveTextContent(
      'No question column. Accepted names: REDACTEDQUESTION, QUESTION, PROBLEM DETAILS; this file has: Name, Email.',
    );
    expect(within(alert).getByTestId('upload-error-code')).toHaveTextContent('Error code: MISSING_QUESTION_COLUMN');
    expect(alert).not.toHaveTextContent('HTTP');
    expect(alert).not.toHaveTextContent('accepted');
    expect(alert).not.toHaveTextContent('["Name","Email"]');
    expect(alert).not.toHaveTextContent('No question column found');
    expect(onCreated).not.toHaveBeenCalled();
    expect(screen.queryByTestId('upload-success')).not.toBeInTheDocument();
  });

  it('shows a 413 from the server too', async () => {
    installFetch({
      'POST /api/batch/create': () => errorResponse(413, 'PAYLOAD_TOO_LARGE', 'The upload is larger than 4.5 MB.'),
    });
    const { user, fileInput } = setup();

    await user.upload(fileInput, csv());
    await submit(user);

    expect(await screen.findByTestId('upload-error-message')).toHaveTextContent(
      'The upload is larger than the server accepts.',
    );
    expect(screen.getByTestId('upload-error-code')).toHaveTextContent('PAYLOAD_TOO_LARGE');
  });

  it('disables the button while the upload runs', async () => {
    let finish;
    installFetch({
      'POST /api/batch/create': () =>
        new Promise((resolve) => {
          finish = () => resolve(jsonResponse(202, { batchId: 'x', status: 'queued', totalItems: 1, warnings: [] }));
        }),
    });
    const { user, fileInput } = setup();

    await user.upload(fileInput, csv());
    await submit(user);

    expect(screen.getByRole('button', { name: 'Uploading…' })).toBeDisabled();
    finish();
    expect(await screen.findByRole('button', { name: 'Upload and start' })).toBeEnabled();
  });
});

describe('after an upload', () => {
  const created = (warnings = []) =>
    installFetch({
      'POST /api/batch/create': () => jsonResponse(202, { batchId: 'new1', status: 'queued', totalItems: 3, warnings }),
    });

  async function uploadOne(user, fileInput) {
    await user.upload(fileInput, csv());
    await submit(user);
    return screen.findByTestId('upload-success');
  }

  it('links the success message to the new batch’s card', async () => {
    created();
    const onShowBatch = vi.fn();
    const user = userEvent.setup();
    renderPage(<BatchUpload onShowBatch={onShowBatch} />);

    const success = await uploadOne(user, screen.getByLabelText(/Spreadsheet of questions/));
    const link = within(success).getByRole('link', { name: 'Go to the batch in the list' });
    expect(link).toHaveAttribute('href', '#batch-heading-new1');

    await user.click(link);
    expect(onShowBatch).toHaveBeenCalledWith('new1');
  });

  it('can be dismissed, and the focus returns to the form', async () => {
    created();
    const { user, fileInput } = setup();

    await uploadOne(user, fileInput);
    await user.click(screen.getByRole('button', { name: 'Dismiss the message about the new batch' }));

    expect(screen.queryByTestId('upload-success')).not.toBeInTheDocument();
    expect(screen.getByRole('heading', { name: 'New batch' })).toHaveFocus();
  });

  it('shows warnings in their own amber box, strings and objects alike, with the rows concerned', async () => {
    created([
      'Row 5: the question is blank; the row was skipped.',
      { rowNumber: 9, code: 'BLANK_QUESTION', message: 'The question is blank; the row was skipped.' },
    ]);
    const { user, fileInput } = setup();

    const success = await uploadOne(user, fileInput);

    const box = screen.getByTestId('upload-warnings-box');
    expect(success).not.toContainElement(box);
    expect(box).toHaveClass('notice--warning');
    expect(box).toHaveAttribute('role', 'status');
    expect(within(box).getByRole('heading', { name: 'Warnings about the file' })).toBeInTheDocument();
    expect(within(box).getByTestId('upload-warning-rows')).toHaveTextContent('Rows concerned: 5, 9.');
    expect(
      within(box)
        .getAllByRole('listitem')
        .map((item) => item.textContent),
    ).toEqual([
      'Row 5: the question is blank; the row was skipped.',
      'Row 9: the question is blank; the row was skipped.',
    ]);
    expect(box).not.toHaveTextContent('{');

    await user.click(within(box).getByRole('button', { name: 'Dismiss the warnings about the file' }));
    expect(screen.queryByTestId('upload-warnings-box')).not.toBeInTheDocument();
    expect(screen.getByTestId('upload-success')).toBeInTheDocument();
  });

  it('words the warnings in French', async () => {
    created(['Row 5: the question is blank; the row was skipped.']);
    const user = userEvent.setup({ applyAccept: false });
    renderPage(<BatchUpload />, { lang: 'fr' });

    await user.upload(screen.getByLabelText(/Tableur de questions/), csv());
    await user.click(screen.getByRole('button', { name: 'Téléverser et lancer' }));

    const box = await screen.findByTestId('upload-warnings-box');
    expect(box).toHaveTextContent('Lignes concernées : 5.');
    expect(box).toHaveTextContent('Ligne 5 : la question est vide; la ligne a été ignorée.');
  });
});

describe('the page language', () => {
  it('is the language sent, and follows the language switch', async () => {
    const fetch = installFetch({
      'POST /api/batch/create': () => jsonResponse(202, { batchId: 'x', status: 'queued', totalItems: 1 }),
    });
    const user = userEvent.setup({ applyAccept: false });
    renderPage(
      <>
        <LanguageSwitch />
        <BatchUpload />
      </>,
    );

    await user.click(screen.getByRole('button', { name: 'Afficher cette page en français' }));
    expect(screen.getByTestId('upload-lang-note')).toHaveTextContent(
      'Les réponses sont par défaut dans la langue de la page : français; la langue de chaque question est détectée.',
    );
    await user.upload(screen.getByLabelText(/Tableur de questions/), csv());
    await user.click(screen.getByRole('button', { name: 'Téléverser et lancer' }));

    await screen.findByTestId('upload-success');
    expect(fetch.requests[0].body.get('lang')).toBe('fr');
  });
});
