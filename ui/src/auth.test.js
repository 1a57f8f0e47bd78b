import { describe, expect, it, vi } from 'vitest';
import {
  TOKEN_KEY,
  clearToken,
  consumeTokenFromFragment,
  getToken,
  isExpired,
  onAuthChange,
  readClaims,
  setToken,
} from './auth.js';

function jwt(claims) {
  const encode = (value) => btoa(JSON.stringify(value)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  return `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(claims)}.signature`;
}

describe('the #token= fragment', () => {
  it('is stored in sessionStorage and removed from the address bar', () => {
    window.history.replaceState(null, '', '/batches?x=1#token=abc.def.ghi');

    expect(consumeTokenFromFragment()).toBe(true);

    expect(sessionStorage.getItem(TOKEN_KEY)).toBe('abc.def.ghi');
    expect(window.location.hash).toBe('');
    expect(window.location.pathname + window.location.search).toBe('/batches?x=1');
  });

  it('keeps other fragment parameters', () => {
    window.history.replaceState(null, '', '/#token=t1&section=list');

    consumeTokenFromFragment();

    expect(window.location.hash).toBe('#section=list');
    expect(getToken()).toBe('t1');
  });

  it('does nothing without a token', () => {
    window.history.replaceState(null, '', '/#top');

    expect(consumeTokenFromFragment()).toBe(false);
    expect(window.location.hash).toBe('#top');
    expect(getToken()).toBeNull();
  });
});

describe('the stored token', () => {
  it('tells listeners about sign-in and sign-out', () => {
    const listener = vi.fn();
    const unsubscribe = onAuthChange(listener);

    setToken('  tok  ');
    clearToken('signedOut');
    unsubscribe();
    setToken('other');

    expect(listener.mock.calls).toEqual([
      [{ signedIn: true, reason: null }],
      [{ signedIn: false, reason: 'signedOut' }],
    ]);
    expect(getToken()).toBe('other');
  });

  it('ignores an empty token', () => {
    setToken('   ');
    expect(getToken()).toBeNull();
  });
});

describe('claims', () => {
  it('are read from a JWT for display', () => {
    expect(readClaims(jwt({ sub: 'partner', exp: 2000000000 }))).toEqual({ sub: 'partner', exp: 2000000000 });
  });

  it('are null for something that is not a JWT', () => {
    expect(readClaims('not-a-jwt')).toBeNull();
    expect(readClaims('a.%%%.c')).toBeNull();
    expect(readClaims(null)).toBeNull();
  });

  it('tell when a token has expired', () => {
    const now = Date.UTC(2025, 0, 1);
    expect(isExpired(jwt({ exp: now / 1000 - 1 }), now)).toBe(true);
    expect(isExpired(jwt({ exp: now / 1000 + 60 }), now)).toBe(false);
    expect(isExpired(jwt({ sub: 'no exp' }), now)).toBe(false);
    expect(isExpired('opaque-token', now)).toBe(false);
  });
});
