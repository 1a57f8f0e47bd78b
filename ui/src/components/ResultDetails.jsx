// One result row opened in full, under its row in the table: the redacted question, the
// whole answer, the citation and the error, then the other turns of its conversation
// (the rows with the same chat id, asked of the server: they may sit on other pages), in
// row order.

import { useEffect, useState } from 'react';
import { getResultsPage } from '../api.js';
import { errorSentence, rowErrorSentence } from '../errors.js';
import { useLanguage } from '../LanguageContext.jsx';
import { conversationOf, fieldColumn, questionColumn, rowsOf, safeHttpUrl } from '../results.js';

const MAX_TURNS = 500; // the server's largest page

/** The rows of one conversation, from the server; [row] alone while loading or without a chat id. */
function useConversation(batchId, row, chatKey) {
  const chatId = chatKey ? String(row.item[chatKey] ?? '').trim() : '';
  const [state, setState] = useState({ rows: null, error: null });
  useEffect(() => {
    if (!chatId || !batchId) return undefined;
    let live = true;
    getResultsPage(batchId, { chat: chatId, limit: MAX_TURNS })
      .then((answer) => live && setState({ rows: rowsOf(answer?.items), error: null }))
      .catch((error) => live && setState({ rows: null, error }));
    return () => {
      live = false;
    };
  }, [batchId, chatId]);
  return { chatId, ...state };
}

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

export default function ResultDetails({ row, rows: given = null, columns, chatKey, batchId }) {
  const { lang, t } = useLanguage();
  const key = (field) =>
    (field === 'redactedQuestion' ? questionColumn(columns) : fieldColumn(columns, field)) ?? field;
  const read = (target, field) => target.item[key(field)];
  const fetched = useConversation(given ? null : batchId, row, chatKey);
  const chatId = fetched.chatId;
  const known = given ?? fetched.rows;
  // The fetched turns are numbered by the server; this row is the one with its row number.
  const self = (turn) => (given ? turn.index === row.index : turn.rowNumber === row.rowNumber);
  const turns = known ? conversationOf(known, known.find(self) ?? row, chatKey) : [row];
  const errorText = rowErrorSentence(read(row, 'error'), lang);

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
      {chatId && !known && !fetched.error && !given && (
        <p role="status" className="field__hint">
          {t('results.conversationLoading')}
        </p>
      )}
      {fetched.error && (
        <p className="notice notice--error" role="alert">
          {t('results.error', { message: errorSentence(fetched.error, lang) })}
        </p>
      )}
      {turns.length > 1 && (
        <div className="result-detail__conversation" data-testid="result-conversation">
          <h6>{t('results.detail.conversation', { chatId, count: turns.length })}</h6>
          <ol>
            {turns.map((turn) => {
              const isRow = self(turn);
              return (
                <li
                  key={turn.index}
                  aria-current={isRow ? 'true' : undefined}
                  className={isRow ? 'is-current' : undefined}
                >
                  <p className="result-detail__turn">
                    {t(isRow ? 'results.detail.thisRow' : 'results.detail.turn', { row: turn.rowNumber })}
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
