// The caller's bearer token: kept in sessionStorage only, never put in a URL sent to a
// server and never logged. Listeners hear about sign-in and sign-out so that the page
// can return to its signed-out state when any API call answers 401.

export const TOKEN_KEY = 'aiAnswers.token';

const listeners = new Set();

/** The stored token, or null when signed out. */
export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || null;
  } catch {
    return null;
  }
}

/** Stores a token (trimmed) and tells the listeners. */
export function setToken(token) {
  const value = String(token || '').trim();
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  notify({ signedIn: true, reason: null });
}

/** Forgets the token. `reason` ("expired", "signedOut") tells the page what to say. */
export function clearToken(reason = 'signedOut') {
  sessionStorage.removeItem(TOKEN_KEY);
  notify({ signedIn: false, reason });
}

/** Calls `listener({signedIn, reason})` on every change; returns the unsubscribe function. */
export function onAuthChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function notify(event) {
  listeners.forEach((listener) => listener(event));
}

/**
 * Takes a `#token=<jwt>` fragment from the current URL: stores the token and removes the
 * fragment with history.replaceState so that it is neither kept in the address bar nor
 * in the history. Returns true when a token was found.
 */
export function consumeTokenFromFragment(win = window) {
  const hash = win.location.hash || '';
  if (!hash.startsWith('#')) return false;
  const params = new URLSearchParams(hash.slice(1));
  const token = params.get('token');
  if (!token) return false;
  params.delete('token');
  const rest = params.toString();
  const url = win.location.pathname + win.location.search + (rest ? `#${rest}` : '');
  win.history.replaceState(win.history.state, '', url);
  setToken(token);
  return true;
}

/**
 * The token's claims, decoded for display only (the server verifies the signature).
 * Returns null when the token is not a readable JWT.
 */
export function readClaims(token) {
  if (!token) return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

/** True when the token carries an `exp` claim that has passed. */
export function isExpired(token, nowMs = Date.now()) {
  const claims = readClaims(token);
  return Boolean(claims && typeof claims.exp === 'number' && claims.exp * 1000 <= nowMs);
}
