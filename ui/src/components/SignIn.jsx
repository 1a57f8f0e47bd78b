// The signed-out state: a short explanation and a field to paste a token.

import { useId, useState } from 'react';
import { useLanguage } from '../LanguageContext.jsx';

export default function SignIn({ reason, onSignIn }) {
  const { t } = useLanguage();
  const [value, setValue] = useState('');
  const [missing, setMissing] = useState(false);
  const fieldId = useId();
  const hintId = `${fieldId}-hint`;
  const errorId = `${fieldId}-error`;

  const onSubmit = (event) => {
    event.preventDefault();
    if (!value.trim()) {
      setMissing(true);
      return;
    }
    onSignIn(value.trim());
  };

  return (
    <section className="panel signin" aria-labelledby="signin-heading" data-testid="signin">
      <h2 id="signin-heading">{t('signin.heading')}</h2>
      {reason === 'expired' && (
        <p className="notice notice--warning" role="alert" data-testid="signin-reason">
          {t('signin.expired')}
        </p>
      )}
      {reason === 'signedOut' && (
        <p className="notice notice--info" role="status" data-testid="signin-reason">
          {t('signin.signedOut')}
        </p>
      )}
      <p>{t('signin.explain')}</p>
      <form onSubmit={onSubmit} noValidate>
        <div className="field">
          <label htmlFor={fieldId}>{t('signin.tokenLabel')}</label>
          <p id={hintId} className="field__hint">
            {t('signin.tokenHint')}
          </p>
          {missing && (
            <p id={errorId} className="field__error">
              {t('signin.required')}
            </p>
          )}
          <input
            id={fieldId}
            type="password"
            className="input input--wide"
            autoComplete="off"
            spellCheck={false}
            value={value}
            aria-invalid={missing || undefined}
            aria-describedby={missing ? `${hintId} ${errorId}` : hintId}
            onChange={(event) => {
              setValue(event.target.value);
              setMissing(false);
            }}
          />
        </div>
        <button type="submit" className="button">
          {t('signin.submit')}
        </button>
      </form>
    </section>
  );
}
