// One result row opened in full, under its row in the table: the redacted question, the
// whole answer, the citation and the error, then the other turns of its conversation
// (the rows with the same chat id), in row order.

import { rowErrorSentence } from '../errors.js';
import { useLanguage } from '../LanguageContext.jsx';
import { conversationOf, fieldColumn, questionColumn, safeHttpUrl } from '../results.js';

function Citation({ url }) {
  const { t } = useLanguage();
  const href = safeHttpUrl(url);
  if (href) {
    return (
      <a href={href} target="_blank" rel="noopener noreferrer">
        {href}
      </a>
    );
  }
  return url ? String(url) : t('results.detail.none');
}

export default function ResultDetails({ row, rows, columns, chatKey }) {
  const { lang, t } = useLanguage();
  const key = (field) =>
    (field === 'redactedQuestion' ? questionColumn(columns) : fieldColumn(columns, field)) ?? field;
  const read = (target, field) => target.item[key(field)];
  const turns = conversationOf(rows, row, chatKey);
  const errorText = rowErrorSentence(read(row, 'error'), lang);
  const chatId = chatKey ? String(row.item[chatKey] ?? '').trim() : '';

  return (
    <div className="result-detail" data-testid="result-detail">
      <h5>{t('results.detail.heading', { row: row.rowNumber })}</h5>
      <dl className="result-detail__fields">
        <dt>{t('results.detail.question')}</dt>
        <dd className="result-detail__text">{read(row, 'redactedQuestion') || t('results.detail.none')}</dd>
        <dt>{t('results.detail.answer')}</dt>
        <dd className="result-detail__text" data-testid="result-detail-answer">
          {read(row, 'answer') || t('results.detail.noAnswer')}
        </dd>
        <dt>{t('results.detail.citation')}</dt>
        <dd className="results__link">
          <Citation url={read(row, 'citationUrl')} />
        </dd>
        {errorText && (
          <>
            <dt>{t('results.detail.error')}</dt>
            <dd>{errorText}</dd>
          </>
        )}
      </dl>
      {turns.length > 1 && (
        <div className="result-detail__conversation" data-testid="result-conversation">
          <h6>{t('results.detail.conversation', { chatId, count: turns.length })}</h6>
          <ol>
            {turns.map((turn) => {
              const self = turn.index === row.index;
              return (
                <li
                  key={turn.index}
                  aria-current={self ? 'true' : undefined}
                  className={self ? 'is-current' : undefined}
                >
                  <p className="result-detail__turn">
                    {t(self ? 'results.detail.thisRow' : 'results.detail.turn', { row: turn.rowNumber })}
                  </p>
                  <p className="result-detail__text">{read(turn, 'redactedQuestion')}</p>
                  <p className="result-detail__text result-detail__answer">
                    {read(turn, 'answer') || t('results.detail.noAnswer')}
                  </p>
                </li>
              );
            })}
          </ol>
        </div>
      )}
    </div>
  );
}
