import { describe, expect, it } from 'vitest';
import { batchDurationSeconds, batchProgress, formatBytes, formatDuration, isActive, isSettling } from './format.js';

describe('batchProgress', () => {
  it.each([
    [
      { totalItems: 10, processedItems: 3, failedItems: 1 },
      { done: 4, total: 10, percent: 40 },
    ],
    [
      { totalItems: 10, processedItems: 3, failedItems: 1, percentComplete: 45.7 },
      { done: 4, total: 10, percent: 45 },
    ],
    [
      { totalItems: 0, processedItems: 0, failedItems: 0 },
      { done: 0, total: 0, percent: 0 },
    ],
    [
      { totalItems: 3, processedItems: 5, failedItems: 0 },
      { done: 3, total: 3, percent: 100 },
    ],
    [
      { totalItems: 4, processedItems: 3, failedItems: 0, status: 'processed', percentComplete: 75 },
      { done: 3, total: 4, percent: 100 },
    ],
    [
      { totalItems: 4, processedItems: 1, failedItems: 0, status: 'cancelled' },
      { done: 1, total: 4, percent: 25 },
    ],
    [
      {
        totalItems: 15,
        processedItems: 0,
        failedItems: 0,
        cancelledItems: 11,
        percentComplete: 73.3,
        status: 'cancelled',
      },
      { done: 11, total: 15, percent: 73 },
    ],
    [
      { totalItems: 4, processedItems: null, failedItems: undefined },
      { done: 0, total: 4, percent: 0 },
    ],
  ])('of %j is %j', (batch, expected) => {
    expect(batchProgress(batch)).toEqual(expected);
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

describe('isActive', () => {
  it('is true for queued and processing only', () => {
    expect(['queued', 'processing', 'processed', 'completed_with_errors', 'cancelled', 'failed'].map(isActive)).toEqual(
      [true, true, false, false, false, false],
    );
  });
});

describe('isSettling', () => {
  it('is true for a cancelled batch whose rows in flight are not counted yet', () => {
    expect(isSettling({ status: 'cancelled', totalItems: 15, processedItems: 0, cancelledItems: 11 })).toBe(true);
    expect(isSettling({ status: 'cancelled', totalItems: 15, processedItems: 4, cancelledItems: 11 })).toBe(false);
    expect(isSettling({ status: 'processed', totalItems: 15, processedItems: 4 })).toBe(false);
  });
});
