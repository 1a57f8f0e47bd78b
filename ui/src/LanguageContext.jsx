// The page's language: a React context that gives components `t(key, params)` and keeps
// `<html lang>` in step with the choice.

import { createContext, useCallback, useContext, useEffect, useMemo, useState } from 'react';
import { LANGUAGES, translate } from './i18n.js';

export const LANG_KEY = 'aiAnswers.lang';

const LanguageContext = createContext({
  lang: 'en',
  setLang: () => {},
  t: (key, params) => translate('en', key, params),
});

function initialLanguage(preferred) {
  if (LANGUAGES.includes(preferred)) return preferred;
  try {
    const stored = localStorage.getItem(LANG_KEY);
    if (LANGUAGES.includes(stored)) return stored;
  } catch {
    // storage may be unavailable; English is the default
  }
  return 'en';
}

/** Provides the language to the tree; `initialLang` overrides the remembered choice. */
export function LanguageProvider({ initialLang, children }) {
  const [lang, setLangState] = useState(() => initialLanguage(initialLang));

  useEffect(() => {
    document.documentElement.lang = lang;
    document.title = translate(lang, 'app.title');
  }, [lang]);

  const setLang = useCallback((next) => {
    if (!LANGUAGES.includes(next)) return;
    setLangState(next);
    try {
      localStorage.setItem(LANG_KEY, next);
    } catch {
      // not remembered; the switch still works for this page
    }
  }, []);

  const value = useMemo(() => ({ lang, setLang, t: (key, params) => translate(lang, key, params) }), [lang, setLang]);
  return <LanguageContext.Provider value={value}>{children}</LanguageContext.Provider>;
}

/** `{lang, setLang, t}` of the nearest LanguageProvider. */
export function useLanguage() {
  return useContext(LanguageContext);
}
