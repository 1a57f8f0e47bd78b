import { render } from '@testing-library/react';
import { LanguageProvider } from '../LanguageContext.jsx';

/** Renders `ui` inside the language provider (English unless told). */
export function renderPage(ui, { lang = 'en' } = {}) {
  return render(<LanguageProvider initialLang={lang}>{ui}</LanguageProvider>);
}
