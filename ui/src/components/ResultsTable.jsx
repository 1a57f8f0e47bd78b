// The results of one batch as a table, in input order: status, the redacted question,
// the answer, the citation link and the error. Readable while the batch runs.

import { useCallback, useEffect, useState } from 'react';
import { getResults } from '../api.js';
import { labelOr } from '../i18n.js';
import { useLanguage } from '../LanguageContext.jsx';

/** Only web links become anchors: a citation is data from a model, not trusted markup. */
export function safeHttpUrl(value) {
  if (typeof value !== 'string' || !value.trim()) return null;
  try {
    const url = new URL(value.trim());
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch {
    return null;
  }
}

/** An item's error as text: the API may give a string or {code, message}. */
export function errorText(error) {
  if (!error) return '';
  if (typeof error === 'string') return error;
  if (typeof error === 'object') {
    const { code, message } = error;
    if (code && message) return `${code}: ${message}`;
    return message || code || JSON.stringify(error);
  }
  return String(error);
}

export default function ResultsTable({ batchId, name, active }) {
  const { t } = useLanguage();
  const [items, setItems] = useState(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState(null);

  const load = useCallback(async () => {
    setLoading(true);
    setError(null);
    try {
      const results = await getResults(batchId);
      setItems(Array.isArray(results?.items) ? results.items : []);
    } catch (caught) {
      setError(caught);
    } finally {
      setLoading(false);
    }
  }, [batchId]);

  useEffect(() => {
    load();
  }, [load]);

  const headingId = `results-heading-${batchId}`;
  return (
    <section id={`results-${batchId}`} className="results" aria-labelledby={headingId} data-testid="results">
      <div className="results__header">
        <h4 id={headingId}>{t('results.heading', { name })}</h4>
        {(active || error) && (
          <button type="button" className="button button--secondary button--small" onClick={load} disabled={loading}>
            {t('results.refresh')}
          </button>
        )}
      </div>
      {loading && !items && <p role="status">{t('results.loading')}</p>}
      {error && (
        <p className="notice notice--error" role="alert">
          {t('results.error', { code: error.code, message: error.message })}
        </p>
      )}
      {items && items.length === 0 && <p>{t('results.empty')}</p>}
      {items && items.length > 0 && (
        <div className="table-scroll" tabIndex={0} aria-labelledby={headingId} role="region">
          <table className="results__table">
            <caption className="visually-hidden">{t('results.caption', { name, count: items.length })}</caption>
            <thead>
              <tr>
                <th scope="col">{t('results.col.row')}</th>
                <th scope="col">{t('results.col.status')}</th>
                <th scope="col">{t('results.col.question')}</th>
                <th scope="col">{t('results.col.answer')}</th>
                <th scope="col">{t('results.col.citation')}</th>
                <th scope="col">{t('results.col.error')}</th>
              </tr>
            </thead>
            <tbody>
              {items.map((item, index) => {
                const citation = safeHttpUrl(item.citationUrl);
                return (
                  <tr key={item.interactionId || index} data-testid="result-row" data-status={item.status}>
                    <td>{index + 1}</td>
                    <td>
                      <span className={`badge badge--${item.status}`}>
                        {labelOr(t, `item.${item.status}`, item.status)}
                      </span>
                    </td>
                    <td className="results__text">{item.redactedQuestion}</td>
                    <td className="results__text">{item.answer}</td>
                    <td className="results__link">
                      {citation ? (
                        <a href={citation} target="_blank" rel="noopener noreferrer">
                          {citation}
                        </a>
                      ) : (
                        item.citationUrl || ''
                      )}
                    </td>
                    <td className="results__text">{errorText(item.error)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
