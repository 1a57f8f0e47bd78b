import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { LanguageProvider } from './LanguageContext.jsx';
import BatchPage from './components/BatchPage.jsx';
import './styles.css';

createRoot(document.getElementById('root')).render(
  <StrictMode>
    <LanguageProvider>
      <BatchPage />
    </LanguageProvider>
  </StrictMode>,
);
