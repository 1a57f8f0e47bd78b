import { describe, expect, it } from 'vitest';
import { MAX_UPLOAD_BYTES, extensionOf, goesDirect, nameFromFile, validateUpload } from './validation.js';

const fileOf = (name, size) => ({ name, size });
const keys = (problems) => problems.map((problem) => problem.key);

describe('validateUpload', () => {
  it('accepts a CSV or XLSX file with a name', () => {
    expect(validateUpload({ file: fileOf('q.csv', 10), batchName: 'Batch' })).toEqual([]);
    expect(validateUpload({ file: fileOf('Q.XLSX', MAX_UPLOAD_BYTES), batchName: 'Batch' })).toEqual([]);
  });

  it.each([
    [null, 'validation.fileRequired'],
    [fileOf('notes.txt', 10), 'validation.fileType'],
    [fileOf('old.xls', 10), 'validation.fileType'],
    [fileOf('csv', 10), 'validation.fileType'],
    [fileOf('empty.csv', 0), 'validation.fileEmpty'],
    [fileOf('big.csv', MAX_UPLOAD_BYTES + 1), 'validation.fileTooLarge'],
  ])('refuses the file %j', (file, key) => {
    expect(keys(validateUpload({ file, batchName: 'Batch' }))).toEqual([key]);
  });

  it('needs a name of 1 to 200 characters, after trimming', () => {
    const file = fileOf('q.csv', 10);
    expect(keys(validateUpload({ file, batchName: '   ' }))).toEqual(['validation.nameRequired']);
    expect(validateUpload({ file, batchName: 'x'.repeat(200) })).toEqual([]);
    expect(validateUpload({ file, batchName: 'x'.repeat(201) })).toEqual([
      { field: 'batchName', key: 'validation.nameTooLong', params: { count: 201 } },
    ]);
  });

  it('reports the file and the name together', () => {
    expect(keys(validateUpload({ file: null, batchName: '' }))).toEqual([
      'validation.fileRequired',
      'validation.nameRequired',
    ]);
  });

  it('takes an empty concurrency (the server default) or a whole number from 1 to the maximum', () => {
    const upload = { file: fileOf('q.csv', 10), batchName: 'b' };
    for (const concurrency of ['', '1', ' 16 ', '32']) {
      expect(validateUpload({ ...upload, concurrency })).toEqual([]);
    }
    for (const concurrency of ['0', '33', '2.5', '-1', 'four', '1e1']) {
      expect(validateUpload({ ...upload, concurrency })).toEqual([
        { field: 'concurrency', key: 'validation.concurrency', params: { max: 32 } },
      ]);
    }
    expect(keys(validateUpload({ ...upload, concurrency: '9', maxConcurrency: 8 }))).toEqual([
      'validation.concurrency',
    ]);
  });

  it('gives the size of a file that is too large', () => {
    const [problem] = validateUpload({ file: fileOf('big.csv', 6 * 1024 * 1024), batchName: 'b' });
    expect(problem.params).toEqual({
      name: 'big.csv',
      size: '6 MB',
      bytes: '6,291,456',
      limitSize: '4.5 MB',
      limit: '4,718,592',
    });
  });

  it('lets a file past the request cap go straight to storage where the deployment allows it', () => {
    const big = fileOf('big.csv', 6 * 1024 * 1024);
    const limits = { maxBytes: 4_718_592, maxDirectBytes: 100 * 1024 * 1024 };
    expect(validateUpload({ file: big, batchName: 'b', ...limits })).toEqual([]);
    expect(goesDirect(big, limits)).toBe(true);
    expect(goesDirect(fileOf('small.csv', 1000), limits)).toBe(false);
    expect(goesDirect(big, { maxBytes: 4_718_592, maxDirectBytes: 0 })).toBe(false);
    const huge = fileOf('huge.csv', 101 * 1024 * 1024);
    const [problem] = validateUpload({ file: huge, batchName: 'b', ...limits });
    expect(problem.key).toBe('validation.fileTooLarge');
    expect(problem.params.limitSize).toBe('100 MB');
  });
});

describe('file names', () => {
  it('give the extension and a default batch name', () => {
    expect(extensionOf('a.b.CSV')).toBe('.csv');
    expect(extensionOf('README')).toBe('');
    expect(nameFromFile('questions-en.csv')).toBe('questions-en');
    expect(nameFromFile(`${'n'.repeat(250)}.csv`)).toHaveLength(200);
  });
});
