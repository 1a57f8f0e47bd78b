// Calls `callback` again and again while `enabled`: every `intervalMs` while the page is
// visible, every `hiddenIntervalMs` while `document.hidden`, at once when the page
// becomes visible again, and less often after failures (the callback throws).

import { useEffect, useRef } from 'react';

export const MAX_BACKOFF_MS = 30_000;

/** The delay before the next call: hidden pages wait longer, failures double the wait. */
export function nextDelay({ hidden, failures, intervalMs, hiddenIntervalMs }) {
  const base = hidden ? Math.max(hiddenIntervalMs, intervalMs) : intervalMs;
  if (failures <= 0) return base;
  return Math.min(MAX_BACKOFF_MS, Math.max(base, intervalMs * 2 ** failures));
}

export function usePolling(callback, { enabled, intervalMs = 1500, hiddenIntervalMs = 15_000 }) {
  const saved = useRef(callback);
  useEffect(() => {
    saved.current = callback;
  }, [callback]);

  useEffect(() => {
    if (!enabled) return undefined;
    let timer = null;
    let stopped = false;
    let running = false;
    let failures = 0;

    const schedule = () => {
      clearTimeout(timer);
      const delay = nextDelay({ hidden: document.hidden, failures, intervalMs, hiddenIntervalMs });
      timer = setTimeout(run, delay);
    };

    async function run() {
      if (running || stopped) return;
      running = true;
      try {
        await saved.current();
        failures = 0;
      } catch {
        failures += 1;
      } finally {
        running = false;
        if (!stopped) schedule();
      }
    }

    const onVisibilityChange = () => {
      if (document.hidden) {
        schedule();
      } else if (!running) {
        clearTimeout(timer);
        run();
      }
    };

    schedule();
    document.addEventListener('visibilitychange', onVisibilityChange);
    return () => {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisibilityChange);
    };
  }, [enabled, intervalMs, hiddenIntervalMs]);
}
