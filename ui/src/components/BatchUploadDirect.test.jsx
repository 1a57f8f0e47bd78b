import { act, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TOKEN_KEY } from '../auth.js';
import { installFetch, jsonResponse } from '../test/fakeFetch.js';
import { renderPage } from '../test/render.jsx';
import BatchUpload from './BatchUpload.jsx';

const OPTIONS = {
  aiProviders: ['offline'],
  searchProviders: ['offline'],
  defaults: { aiProvider: 'offline', searchProvider: 'offline', concurrency: 4 },
  limits: { maxUploadBytes: 4_718_592, maxBatchRows: 10_000, maxUploadBytesDirect: 104_857_600, maxBatchRowsDirect: 100_000 },
  directUploads: true,
};
const PRESIGNED = {
  uploadId: 'up-1',
  url: 'http://127.0.0.1:9000/bucket',
  fields: { key: 'u1/uploads/up-1/big.csv', policy: 'p', 'x-amz-signature': 's' },
  maxBytes: 6_000_000,
};

/** The browser's XMLHttpRequest as storage answers it: records the form, progress is played by the test. */
class FakeStorageRequest {
  static last = null;

  constructor() {
    this.upload = {};
    FakeStorageRequest.last = this;
  }

  open(method, url) {
    this.method = method;
    this.url = url;
  }

  send(body) {
    this.body = body;
  }

  progress(loaded, total) {
    this.upload.onprogress({ loaded, total, lengthComputable: true });
  }

  answer(status) {
    this.status = status;
    this.onload();
  }
}

beforeEach(() => {
  sessionStorage.setItem(TOKEN_KEY, 'tok');
  vi.stubGlobal('XMLHttpRequest', FakeStorageRequest);
});

afterEach(() => {
  vi.unstubAllGlobals();
});

const bigFile = () => {
  const file = new File(['REDACTEDQUESTION\nHow do I renew my passport?\n'], 'big.csv', { type: 'text/csv' });
  Object.defineProperty(file, 'size', { value: 6_000_000 });
  return file;
};

function setup({ lang = 'en', options = OPTIONS } = {}) {
  const fetch = installFetch({
    'POST /api/batch/upload-url': () => jsonResponse(200, PRESIGNED),
    'POST /api/batch/create': () =>
      jsonResponse(202, { batchId: 'b9', status: 'ingesting', totalItems: 80_000, warnings: [] }),
  });
  const onCreated = vi.fn();
  renderPage(<BatchUpload onCreated={onCreated} options={options} />, { lang });
  return { fetch, onCreated, user: userEvent.setup({ applyAccept: false }) };
}

describe('a file past the request cap', () => {
  it('shows the deployment’s real limits', () => {
    setup();
    expect(screen.getByTestId('upload-limits')).toHaveTextContent(
      'Up to 4.5 MB and 10,000 rows; a file past that goes straight to file storage, up to 100 MB and 100,000 rows.',
    );
  });

  it('goes straight to storage with a progress bar, then create takes its uploadId', async () => {
    const { fetch, onCreated, user } = setup();
    await user.upload(screen.getByLabelText(/Spreadsheet of questions/), bigFile());
    await user.click(screen.getByRole('button', { name: 'Upload and start' }));

    await waitFor(() => expect(FakeStorageRequest.last?.body).toBeDefined());
    const asked = fetch.requests.find((request) => request.path === '/api/batch/upload-url');
    expect(JSON.parse(asked.body)).toEqual({ fileName: 'big.csv', size: 6_000_000, contentType: 'text/csv' });
    const posted = FakeStorageRequest.last;
    expect([posted.method, posted.url]).toEqual(['POST', PRESIGNED.url]);
    expect([...posted.body.keys()]).toEqual(['key', 'policy', 'x-amz-signature', 'file']); // the file last

    act(() => posted.progress(2_400_000, 6_000_000));
    const bar = screen.getByRole('progressbar', { name: 'Sending “big.csv” to file storage' });
    expect(bar).toHaveAttribute('value', '40');
    expect(screen.getByTestId('upload-progress-text')).toHaveTextContent('2.3 MB of 5.7 MB sent (40%).');

    act(() => posted.answer(204));
    await waitFor(() => expect(onCreated).toHaveBeenCalled());
    const create = fetch.requests.find((request) => request.path === '/api/batch/create');
    expect(create.body.get('uploadId')).toBe('up-1');
    expect(create.body.get('file')).toBeNull();
    expect(screen.queryByRole('progressbar')).toBeNull();
    expect(screen.getByTestId('upload-success')).toHaveTextContent('80000 rows queued.');
  });

  it('says so in French, and reports storage refusing the file', async () => {
    const { fetch, user } = setup({ lang: 'fr' });
    await user.upload(screen.getByLabelText(/Tableur de questions/), bigFile());
    await user.click(screen.getByRole('button', { name: /Téléverser/ }));
    await waitFor(() => expect(FakeStorageRequest.last?.body).toBeDefined());

    act(() => FakeStorageRequest.last.progress(3_000_000, 6_000_000));
    expect(screen.getByRole('progressbar', { name: 'Envoi de « big.csv » au stockage des fichiers' })).toBeVisible();
    act(() => FakeStorageRequest.last.answer(403));

    expect(await screen.findByTestId('upload-error-message')).toHaveTextContent(
      'Le stockage des fichiers a refusé le fichier.',
    );
    expect(fetch.requests.some((request) => request.path === '/api/batch/create')).toBe(false);
  });

  it('is refused before any request where the deployment has no storage', async () => {
    const { fetch, user } = setup({ options: { ...OPTIONS, directUploads: false } });
    expect(screen.getByTestId('upload-limits')).toHaveTextContent('Up to 4.5 MB and 10,000 rows.');
    await user.upload(screen.getByLabelText(/Spreadsheet of questions/), bigFile());
    await user.click(screen.getByRole('button', { name: 'Upload and start' }));

    expect(await screen.findByTestId('upload-validation')).toHaveTextContent('the limit is 4.5 MB (4,718,592 bytes)');
    expect(fetch.requests).toHaveLength(0);
  });
});
