// The English/French toggle. It names the other language, in that language.

import { useLanguage } from '../LanguageContext.jsx';

export default function LanguageSwitch() {
  const { lang, setLang, t } = useLanguage();
  const other = lang === 'en' ? 'fr' : 'en';
  return (
    <button
      type="button"
      className="button button--link lang-switch"
      lang={other}
      aria-label={t('lang.switchLabel')}
      data-testid="language-switch"
      onClick={() => setLang(other)}
    >
      {t('lang.switch')}
    </button>
  );
}
