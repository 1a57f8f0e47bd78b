import { describe, expect, it } from 'vitest';
import {
  batchDurationSeconds,
  batchProgress,
  canCancel,
  formatBytes,
  formatCount,
  formatDuration,
  isActive,
  isSettling,
  progressSummary,
} from './format.js';
import { translate } from './i18n.js';

describe('batchProgress', () => {
  it.each([
    [
      { totalItems: 10, processedItems: 3, failedItems: 1 },
      { answered: 3, blocked: 0, failed: 1, cancelled: 0, waiting: 6, done: 4, total: 10, percent: 40 },
    ],
    [
      { totalItems: 10, processedItems: 3, failedItems: 1, percentComplete: 45.7 },
      { done: 4, total: 10, percent: 40 },
    ],
    [
      { totalItems: 0, processedItems: 0, failedItems: 0 },
      { done: 0, total: 0, percent: 0, waiting: 0 },
    ],
    [
      { totalItems: 3, processedItems: 5, failedItems: 0 },
      { answered: 3, done: 3, total: 3, percent: 100 },
    ],
    [
      { totalItems: 4, processedItems: 1, failedItems: 0, status: 'cancelled' },
      { done: 1, total: 4, percent: 25 },
    ],
    [
      { totalItems: 15, processedItems: 0, failedItems: 0, cancelledItems: 11, status: 'cancelled' },
      { cancelled: 11, done: 11, total: 15, percent: 73 },
    ],
    [
      { totalItems: 4, processedItems: null, failedItems: undefined },
      { answered: 0, failed: 0, done: 0, total: 4, percent: 0 },
    ],
  ])('of %j is %j', (batch, expected) => {
    expect(batchProgress(batch)).toMatchObject(expected);
  });

  it('counts answered, blocked, failed and cancelled rows apart', () => {
    const batch = { totalItems: 3000, processedItems: 438, blockedItems: 0, failedItems: 2, cancelledItems: 2560 };

    expect(batchProgress(batch)).toEqual({
      answered: 438,
      blocked: 0,
      failed: 2,
      cancelled: 2560,
      waiting: 0,
      done: 3000,
      total: 3000,
      trials: 1,
      percent: 100,
    });
  });

  it('treats a missing blockedItems (an older server) as 0', () => {
    expect(batchProgress({ totalItems: 10, processedItems: 4, failedItems: 1 }).blocked).toBe(0);
  });

  it('never adds up to more than the total when the counters overshoot for a moment', () => {
    const progress = batchProgress({
      totalItems: 10,
      processedItems: 7,
      blockedItems: 2,
      failedItems: 3,
      cancelledItems: 4,
    });

    expect(progress).toMatchObject({
      answered: 7,
      blocked: 2,
      failed: 1,
      cancelled: 0,
      waiting: 0,
      done: 10,
      percent: 100,
    });
    expect(progress.answered + progress.blocked + progress.failed + progress.cancelled).toBe(progress.total);
  });

  it('rounds down, so that 100% means every row is settled', () => {
    expect(batchProgress({ totalItems: 1000, processedItems: 999 }).percent).toBe(99);
  });

  it('takes totalItems as every trial of every row when a batch runs several trials', () => {
    expect(batchProgress({ totalItems: 30, trials: 3, processedItems: 15 })).toMatchObject({
      total: 30,
      done: 15,
      percent: 50,
      trials: 3,
    });
  });
});

describe('progressSummary', () => {
  const counts = { totalItems: 3000, processedItems: 438, failedItems: 2, cancelledItems: 2560 };

  it.each([
    ['queued', 'progress.running'],
    ['processing', 'progress.running'],
    ['cancelling', 'progress.cancelling'],
    ['cancelled', 'progress.cancelled'],
    ['failed', 'progress.failed'],
    ['processed', 'progress.finished'],
    ['completed_with_errors', 'progress.finished'],
  ])('of a %s batch is %s', (status, key) => {
    expect(progressSummary({ ...counts, status }).key).toBe(key);
  });

  it('says how many rows of a cancelled batch were answered', () => {
    const { key, params } = progressSummary({ ...counts, status: 'cancelled' });

    expect(
      translate('en', key, { ...params, answered: formatCount(params.answered), total: formatCount(params.total) }),
    ).toBe('Cancelled: 438 of 3,000 answered');
    expect(
      translate('fr', key, {
        ...params,
        answered: formatCount(params.answered, 'fr'),
        total: formatCount(params.total, 'fr'),
      }),
    ).toBe('Annulé : 438 lignes sur 3\u00a0000 ont reçu une réponse');
  });
});

describe('formatCount', () => {
  it('groups thousands the English and the French way', () => {
    expect(formatCount(2560)).toBe('2,560');
    expect(formatCount(2560, 'fr')).toBe('2\u00a0560');
    expect(formatCount(-3)).toBe('0');
  });
});

describe('batchDurationSeconds', () => {
  it('runs from startedAt to completedAt', () => {
    const batch = {
      status: 'processed',
      createdAt: '2025-03-01T10:00:00Z',
      startedAt: '2025-03-01T10:00:05Z',
      completedAt: '2025-03-01T10:02:10Z',
    };
    expect(batchDurationSeconds(batch)).toBe(125);
  });

  it('falls back to createdAt and updatedAt', () => {
    const batch = { status: 'cancelled', createdAt: '2025-03-01T10:00:00Z', updatedAt: '2025-03-01T10:00:30Z' };
    expect(batchDurationSeconds(batch)).toBe(30);
  });

  it('is null while the batch runs or when times are missing', () => {
    expect(batchDurationSeconds({ status: 'processing', createdAt: '2025-03-01T10:00:00Z' })).toBeNull();
    expect(batchDurationSeconds({ status: 'failed' })).toBeNull();
  });
});

describe('formatDuration', () => {
  it.each([
    [0.4, 'less'],
    [42, '42 s'],
    [60, '1 min'],
    [125, '2 min 5 s'],
    [3600, '1 h'],
    [3725, '1 h 2 min'],
    [null, ''],
    [-1, ''],
  ])('of %s seconds is %j', (seconds, expected) => {
    expect(formatDuration(seconds, 'less')).toBe(expected);
  });
});

describe('formatBytes', () => {
  it('uses English and French units', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(4_718_592)).toBe('4.5 MB');
    expect(formatBytes(4_718_592, 'fr')).toBe('4,5 Mo');
  });
});

describe('isActive and canCancel', () => {
  const statuses = ['queued', 'processing', 'cancelling', 'processed', 'completed_with_errors', 'cancelled', 'failed'];

  it('is active until final: queued, processing and cancelling', () => {
    expect(statuses.map(isActive)).toEqual([true, true, true, false, false, false, false]);
  });

  it('may be cancelled only while queued or processing', () => {
    expect(statuses.map(canCancel)).toEqual([true, true, false, false, false, false, false]);
  });
});

describe('isSettling', () => {
  it('is true for a cancelled batch whose rows in flight are not counted yet', () => {
    expect(isSettling({ status: 'cancelled', totalItems: 15, processedItems: 0, cancelledItems: 11 })).toBe(true);
    expect(isSettling({ status: 'cancelled', totalItems: 15, processedItems: 4, cancelledItems: 11 })).toBe(false);
    expect(isSettling({ status: 'processed', totalItems: 15, processedItems: 4 })).toBe(false);
  });
});
