import { describe, expect, it } from 'vitest';
import { MAX_BACKOFF_MS, nextDelay } from './usePolling.js';

const base = { intervalMs: 1500, hiddenIntervalMs: 15_000 };

describe('nextDelay', () => {
  it('polls every interval while the page is visible', () => {
    expect(nextDelay({ ...base, hidden: false, failures: 0 })).toBe(1500);
  });

  it('backs off while the page is hidden', () => {
    expect(nextDelay({ ...base, hidden: true, failures: 0 })).toBe(15_000);
  });

  it('doubles the wait after each failure, up to a cap', () => {
    expect(nextDelay({ ...base, hidden: false, failures: 1 })).toBe(3000);
    expect(nextDelay({ ...base, hidden: false, failures: 2 })).toBe(6000);
    expect(nextDelay({ ...base, hidden: false, failures: 10 })).toBe(MAX_BACKOFF_MS);
    expect(nextDelay({ ...base, hidden: true, failures: 1 })).toBe(15_000);
  });
});
