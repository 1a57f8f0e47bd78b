// The whole page: header with the language switch and sign-out, then either the sign-in
// form or the upload form and the list of the caller's batches.

import { useCallback, useEffect, useState } from 'react';
import { getOptions } from '../api.js';
import { readClaims } from '../auth.js';
import { useLanguage } from '../LanguageContext.jsx';
import { useSession } from '../useSession.js';
import BatchList from './BatchList.jsx';
import BatchUpload from './BatchUpload.jsx';
import LanguageSwitch from './LanguageSwitch.jsx';
import SignIn from './SignIn.jsx';

export default function BatchPage() {
  const { t } = useLanguage();
  const { token, reason, signIn, signOut } = useSession();
  const [refreshKey, setRefreshKey] = useState(0);
  const [announcement, setAnnouncement] = useState('');
  const [options, setOptions] = useState(null);

  // What this deployment offers an upload (configured providers, defaults, limits), read
  // once per sign-in; if it cannot be read, the form offers every provider.
  useEffect(() => {
    setOptions(null);
    if (!token) return undefined;
    let current = true;
    getOptions()
      .then((found) => current && setOptions(found))
      .catch(() => {});
    return () => {
      current = false;
    };
  }, [token]);

  const onCreated = useCallback(() => setRefreshKey((key) => key + 1), []);
  // How many batches the list has seen end: the form's baseline list reads itself again.
  const [endedCount, setEndedCount] = useState(0);
  const onBatchEnded = useCallback(() => setEndedCount((count) => count + 1), []);
  // A new object each time, so that asking twice for the same batch focuses it twice.
  const [focusRequest, setFocusRequest] = useState(null);
  const onShowBatch = useCallback((batchId) => setFocusRequest({ batchId }), []);
  const claims = readClaims(token);
  const user = claims?.name || claims?.email || claims?.sub;

  return (
    <>
      <a className="skip-link" href="#main">
        {t('app.skipLink')}
      </a>
      <header className="site-header">
        <div className="site-header__inner">
          <p className="site-header__brand">{t('app.brand')}</p>
          <div className="site-header__actions">
            <LanguageSwitch />
            {token && (
              <>
                <span className="site-header__user" data-testid="signed-in-user">
                  {user ? t('auth.signedInAs', { user }) : t('auth.signedIn')}
                </span>
                <button type="button" className="button button--secondary" onClick={signOut}>
                  {t('auth.signOut')}
                </button>
              </>
            )}
          </div>
        </div>
      </header>
      <main id="main" className="page" tabIndex={-1}>
        <h1>{t('app.title')}</h1>
        <p className="page__intro">{t('app.intro')}</p>
        {token ? (
          // Keyed by token: another user's sign-in starts from a clean page.
          <div key={token} className="page__content">
            <BatchUpload onCreated={onCreated} onShowBatch={onShowBatch} options={options} endedCount={endedCount} />
            <BatchList
              refreshKey={refreshKey}
              announce={setAnnouncement}
              focusRequest={focusRequest}
              onBatchEnded={onBatchEnded}
            />
          </div>
        ) : (
          <SignIn reason={reason} onSignIn={signIn} />
        )}
        <div className="visually-hidden" aria-live="polite" aria-atomic="true" data-testid="live-region">
          {token ? announcement : ''}
        </div>
      </main>
    </>
  );
}
