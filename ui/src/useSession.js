// The signed-in state of the page: the token (from a `#token=` link, a pasted token or
// the tab's sessionStorage) and why the page is signed out, if it is.

import { useCallback, useEffect, useState } from 'react';
import { clearToken, consumeTokenFromFragment, getToken, isExpired, onAuthChange, setToken } from './auth.js';

function startingToken() {
  consumeTokenFromFragment();
  const token = getToken();
  if (token && isExpired(token)) {
    clearToken('expired');
    return { token: null, reason: 'expired' };
  }
  return { token, reason: null };
}

/** `{token, reason, signIn(token), signOut()}`; reason is "expired" or "signedOut" when signed out. */
export function useSession() {
  const [state, setState] = useState(startingToken);

  useEffect(() => {
    const unsubscribe = onAuthChange(({ signedIn, reason }) => {
      setState({ token: getToken(), reason: signedIn ? null : reason });
    });
    // A `#token=` link opened in a tab that already shows the page changes only the fragment.
    const onHashChange = () => consumeTokenFromFragment();
    window.addEventListener('hashchange', onHashChange);
    // The fragment may have been taken before this effect subscribed.
    setState((current) => (current.token === getToken() ? current : { token: getToken(), reason: null }));
    return () => {
      unsubscribe();
      window.removeEventListener('hashchange', onHashChange);
    };
  }, []);

  const signIn = useCallback((token) => setToken(token), []);
  const signOut = useCallback(() => clearToken('signedOut'), []);
  return { ...state, signIn, signOut };
}
