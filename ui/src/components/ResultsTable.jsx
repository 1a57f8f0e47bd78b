// The results of one batch as a table, readable while the batch runs: a column picker
// (the file's own columns and every result column), a search, a filter by row status,
// sorting by any column, pages of 50 rows, and a row opened in full (answer, citation and
// the other turns of its conversation). All client-side over the JSON results.

import { Fragment, useCallback, useEffect, useId, useMemo, useState } from 'react';
import { getResults } from '../api.js';
import { errorSentence, rowErrorSentence } from '../errors.js';
import { formatCount } from '../format.js';
import { hasKey, labelOr, languageName } from '../i18n.js';
import { useLanguage } from '../LanguageContext.jsx';
import {
  ROW_STATUSES,
  cellValue,
  chatColumn,
  columnsOf,
  defaultColumns,
  fieldColumn,
  fieldOf,
  filterRows,
  pageOf,
  rowsOf,
  safeHttpUrl,
  sortRows,
  urlColumn,
} from '../results.js';
import ColumnPicker from './ColumnPicker.jsx';
import ResultDetails from './ResultDetails.jsx';

export { safeHttpUrl };

const LINK_FIELDS = ['citationUrl', 'aiCitationUrl', 'departmentUrl'];
const NUMBER_FIELDS = ['rowNumber', 'trial', 'inputTokens', 'outputTokens', 'responseTimeMs'];
const LONG_TEXT_FIELDS = ['redactedQuestion', 'englishQuestion', 'answer', 'englishAnswer', 'error'];

/** A column's heading: the page's name for a result field, the file's own header as written. */
export function columnLabel(t, columns, column) {
  const field = fieldOf(columns, column);
  if (!field || !hasKey(`results.col.${field}`)) return column;
  const label = t(`results.col.${field}`);
  return column === field ? label : t('results.resultSuffix', { label });
}

/** What a cell shows: a badge, a link, a sentence for an error, a number, or the text. */
export function Cell({ columns, column, row, urlKey }) {
  const { lang, t } = useLanguage();
  const field = fieldOf(columns, column);
  const value = cellValue(row, column);
  if (value === null || value === undefined || value === '') return '';
  if (field === 'status') {
    return <span className={`badge badge--${value}`}>{labelOr(t, `item.${value}`, String(value))}</span>;
  }
  if (field === 'error') return rowErrorSentence(value, lang);
  if (field === 'questionLanguage') return languageName(t, String(value));
  if (field === 'blockedBy') return labelOr(t, `blocked.${value}`, String(value));
  if (NUMBER_FIELDS.includes(field) && typeof value === 'number') return formatCount(value, lang);
  if (LINK_FIELDS.includes(field) || column === urlKey) {
    const href = safeHttpUrl(value);
    if (href) {
      return (
        <a href={href} target="_blank" rel="noopener noreferrer">
          {href}
        </a>
      );
    }
  }
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

function cellClass(columns, column) {
  const field = fieldOf(columns, column);
  if (LONG_TEXT_FIELDS.includes(field)) return 'results__text';
  if (LINK_FIELDS.includes(field)) return 'results__link';
  return undefined;
}

export default function ResultsTable({ batchId, name, active }) {
  const { lang, t } = useLanguage();
  const ids = useId();
  const [results, setResults] = useState(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState(null);
  const [query, setQuery] = useState('');
  const [status, setStatus] = useState('');
  const [page, setPage] = useState(1);
  const [sort, setSort] = useState({ column: null, direction: 'ascending' });
  const [chosen, setChosen] = useState(null); // null: the default columns
  const [expanded, setExpanded] = useState(() => new Set());

  const load = useCallback(async () => {
    setLoading(true);
    setError(null);
    try {
      const answer = await getResults(batchId);
      setResults({ columns: columnsOf(answer), rows: rowsOf(answer?.items) });
    } catch (caught) {
      setError(caught);
    } finally {
      setLoading(false);
    }
  }, [batchId]);

  useEffect(() => {
    load();
  }, [load]);

  const columns = results?.columns ?? [];
  const rows = results?.rows ?? [];
  const statusKey = fieldColumn(columns, 'status') ?? 'status';
  const chatKey = chatColumn(columns);
  const urlKey = urlColumn(columns);
  const visible = (chosen ?? defaultColumns(columns)).filter((column) => columns.includes(column));
  const ordered = columns.filter((column) => visible.includes(column));

  const matching = useMemo(
    () => sortRows(filterRows(rows, { status, query, statusColumn: statusKey }), sort.column, sort.direction),
    [rows, status, query, statusKey, sort],
  );
  const current = pageOf(matching, page);

  const toggleRow = (index) =>
    setExpanded((open) => {
      const next = new Set(open);
      if (next.has(index)) next.delete(index);
      else next.add(index);
      return next;
    });

  const sortBy = (column) =>
    setSort((now) => ({
      column,
      direction: now.column === column && now.direction === 'ascending' ? 'descending' : 'ascending',
    }));

  const headingId = `results-heading-${batchId}`;
  const number = (value) => formatCount(value, lang);

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
      {loading && !results && <p role="status">{t('results.loading')}</p>}
      {error && (
        <p className="notice notice--error" role="alert">
          {t('results.error', { message: errorSentence(error, lang) })}
        </p>
      )}
      {results && rows.length === 0 && <p>{t('results.empty')}</p>}
      {rows.length > 0 && (
        <>
          <div className="results__tools">
            <div className="field">
              <label htmlFor={`${ids}-search`}>{t('results.search')}</label>
              <input
                id={`${ids}-search`}
                type="search"
                className="input"
                value={query}
                data-testid="results-search"
                onChange={(event) => {
                  setQuery(event.target.value);
                  setPage(1);
                }}
              />
            </div>
            <div className="field">
              <label htmlFor={`${ids}-status`}>{t('results.statusFilter')}</label>
              <select
                id={`${ids}-status`}
                className="input"
                value={status}
                data-testid="results-status-filter"
                onChange={(event) => {
                  setStatus(event.target.value);
                  setPage(1);
                }}
              >
                <option value="">{t('results.allStatuses')}</option>
                {ROW_STATUSES.map((value) => (
                  <option key={value} value={value}>
                    {t(`item.${value}`)}
                  </option>
                ))}
              </select>
            </div>
          </div>
          <ColumnPicker
            columns={columns}
            visible={visible}
            label={(column) => columnLabel(t, columns, column)}
            onChange={setChosen}
          />
          <p className="results__count" role="status" data-testid="results-count">
            {t('results.matching', { shown: number(matching.length), count: number(rows.length) })}
          </p>
          {matching.length === 0 && <p data-testid="results-no-match">{t('results.noMatch')}</p>}
          {matching.length > 0 && (
            <div
              className="table-scroll"
              tabIndex={0}
              role="region"
              aria-label={t('results.scrollRegion', { name })}
              data-testid="results-scroll"
            >
              <table className="results__table">
                <caption className="visually-hidden">
                  {t('results.caption', {
                    name,
                    from: number(current.from),
                    to: number(current.to),
                    count: number(matching.length),
                  })}
                </caption>
                <thead>
                  <tr>
                    <th scope="col">{t('results.col.details')}</th>
                    {ordered.map((column) => {
                      const sorted = sort.column === column;
                      return (
                        <th key={column} scope="col" aria-sort={sorted ? sort.direction : undefined}>
                          <button type="button" className="sort-button" onClick={() => sortBy(column)}>
                            {columnLabel(t, columns, column)}
                            <span className="sort-button__mark" aria-hidden="true">
                              {sorted ? (sort.direction === 'ascending' ? '▲' : '▼') : '↕'}
                            </span>
                          </button>
                        </th>
                      );
                    })}
                  </tr>
                </thead>
                <tbody>
                  {current.rows.map((row) => {
                    const open = expanded.has(row.index);
                    const detailId = `${ids}-row-${row.index}`;
                    return (
                      <Fragment key={row.index}>
                        <tr data-testid="result-row" data-status={row.item[statusKey]}>
                          <td>
                            <button
                              type="button"
                              className="button button--secondary button--small"
                              aria-expanded={open}
                              aria-controls={open ? detailId : undefined}
                              aria-label={t(open ? 'results.collapseLabel' : 'results.expandLabel', {
                                row: row.rowNumber,
                              })}
                              onClick={() => toggleRow(row.index)}
                            >
                              {t(open ? 'results.collapse' : 'results.expand')}
                            </button>
                          </td>
                          {ordered.map((column) => (
                            <td key={column} className={cellClass(columns, column)}>
                              <Cell columns={columns} column={column} row={row} urlKey={urlKey} />
                            </td>
                          ))}
                        </tr>
                        {open && (
                          <tr id={detailId} className="results__detail-row" data-testid="result-detail-row">
                            <td colSpan={ordered.length + 1}>
                              <ResultDetails row={row} rows={rows} columns={columns} chatKey={chatKey} />
                            </td>
                          </tr>
                        )}
                      </Fragment>
                    );
                  })}
                </tbody>
              </table>
            </div>
          )}
          {current.pages > 1 && (
            <div className="pager" data-testid="results-pager">
              <button
                type="button"
                className="button button--secondary button--small"
                disabled={current.page <= 1}
                onClick={() => setPage(current.page - 1)}
              >
                {t('results.previous')}
              </button>
              <span className="pager__text">{t('results.page', { page: current.page, pages: current.pages })}</span>
              <button
                type="button"
                className="button button--secondary button--small"
                disabled={current.page >= current.pages}
                onClick={() => setPage(current.page + 1)}
              >
                {t('results.next')}
              </button>
            </div>
          )}
        </>
      )}
    </section>
  );
}
