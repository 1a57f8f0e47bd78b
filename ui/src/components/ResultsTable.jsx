// The results of one batch as a table, readable while the batch runs: a column picker
// (the file's own columns and every result column), a search, filters by row status,
// blocking stage, answer type and analyzer flag, sorting by row number or response time, pages of 50
// rows, and a row opened in full (answer, citation and the other turns of its
// conversation). Paged, filtered, searched and sorted by the server
// (GET /api/batch/results?format=json&offset=&limit=...): a batch of 100,000 rows is never
// loaded whole into the page.

import { Fragment, useCallback, useEffect, useId, useRef, useState } from 'react';
import { getResultsPage } from '../api.js';
import { errorSentence, rowErrorSentence } from '../errors.js';
import { formatCount } from '../format.js';
import { hasKey, labelOr, languageName } from '../i18n.js';
import { useLanguage } from '../LanguageContext.jsx';
import {
  ANSWER_TYPES,
  BLOCKED_STAGES,
  ROW_STATUSES,
  SERVER_PAGE_SIZE,
  cellValue,
  chatColumn,
  columnsOf,
  defaultColumns,
  fieldColumn,
  fieldOf,
  flagChoices,
  rowsOf,
  safeHttpUrl,
  serverPage,
  sortParam,
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

const SEARCH_DELAY_MS = 300;

/** The text typed in the search, once the typing has paused (one request, not one per key). */
function useSettled(value, delay = SEARCH_DELAY_MS) {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), delay);
    return () => clearTimeout(timer);
  }, [value, delay]);
  return settled;
}

function FilterSelect({ id, label, value, onChange, allLabel, choices, testId }) {
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <select id={id} className="input" value={value} data-testid={testId} onChange={(e) => onChange(e.target.value)}>
        <option value="">{allLabel}</option>
        {choices.map(([choice, text]) => (
          <option key={choice} value={choice}>
            {text}
          </option>
        ))}
      </select>
    </div>
  );
}

export default function ResultsTable({ batchId, name, active, pageSize = SERVER_PAGE_SIZE }) {
  const { lang, t } = useLanguage();
  const ids = useId();
  const [page, setPage] = useState(null); // the server's answer for the current page
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState(null);
  const [query, setQuery] = useState('');
  const [filters, setFilters] = useState({ status: '', blockedBy: '', answerType: '', flag: '' });
  const [offset, setOffset] = useState(0);
  const [sort, setSort] = useState({ field: 'rowNumber', direction: 'ascending' });
  const [chosen, setChosen] = useState(null); // null: the default columns
  const [expanded, setExpanded] = useState(() => new Set());
  const [everything, setEverything] = useState(null); // the batch's size with no filter
  const settledQuery = useSettled(query.trim());
  const latest = useRef(0);

  const load = useCallback(async () => {
    const ticket = (latest.current += 1);
    setLoading(true);
    setError(null);
    try {
      const answer = await getResultsPage(batchId, {
        offset,
        limit: pageSize,
        ...filters,
        q: settledQuery,
        sort: sortParam(sort.field, sort.direction),
      });
      if (ticket !== latest.current) return; // a later request overtook this one
      setPage(answer);
      const unfiltered = !settledQuery && !filters.status && !filters.blockedBy && !filters.answerType && !filters.flag;
      if (unfiltered && typeof answer?.total === 'number') setEverything(answer.total);
    } catch (caught) {
      if (ticket === latest.current) setError(caught);
    } finally {
      if (ticket === latest.current) setLoading(false);
    }
  }, [batchId, offset, pageSize, filters, settledQuery, sort]);

  useEffect(() => {
    load();
  }, [load]);

  const setFilter = (key) => (value) => {
    setFilters((now) => ({ ...now, [key]: value }));
    setOffset(0);
  };

  const columns = page ? columnsOf(page) : [];
  const base = page?.offset ?? 0;
  const rows = rowsOf(page?.items).map((row) => ({ ...row, index: base + row.index }));
  const total = typeof page?.total === 'number' ? page.total : rows.length;
  const statusKey = fieldColumn(columns, 'status') ?? 'status';
  const chatKey = chatColumn(columns);
  const urlKey = urlColumn(columns);
  const visible = (chosen ?? defaultColumns(columns)).filter((column) => columns.includes(column));
  const ordered = columns.filter((column) => visible.includes(column));
  const current = serverPage({ total, offset: base, limit: page?.limit ?? pageSize, shown: rows.length });
  const anyFilter = Boolean(settledQuery || filters.status || filters.blockedBy || filters.answerType || filters.flag);
  const flags = flagChoices(columns);
  const hasRows = (everything ?? total) > 0;

  const toggleRow = (index) =>
    setExpanded((open) => {
      const next = new Set(open);
      if (next.has(index)) next.delete(index);
      else next.add(index);
      return next;
    });

  const sortBy = (field) => {
    setSort((now) => ({
      field,
      direction: now.field === field && now.direction === 'ascending' ? 'descending' : 'ascending',
    }));
    setOffset(0);
  };

  const headingId = `results-heading-${batchId}`;
  const number = (value) => formatCount(value, lang);
  const goTo = (target) => setOffset(Math.max(0, (target - 1) * (page?.limit ?? pageSize)));

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
      {loading && !page && <p role="status">{t('results.loading')}</p>}
      {error && (
        <p className="notice notice--error" role="alert">
          {t('results.error', { message: errorSentence(error, lang) })}
        </p>
      )}
      {page && !hasRows && !anyFilter && <p>{t('results.empty')}</p>}
      {page && (hasRows || anyFilter) && (
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
                  setOffset(0);
                }}
              />
            </div>
            <FilterSelect
              id={`${ids}-status`}
              label={t('results.statusFilter')}
              value={filters.status}
              onChange={setFilter('status')}
              allLabel={t('results.allStatuses')}
              choices={ROW_STATUSES.map((value) => [value, t(`item.${value}`)])}
              testId="results-status-filter"
            />
            <FilterSelect
              id={`${ids}-blocked`}
              label={t('results.blockedFilter')}
              value={filters.blockedBy}
              onChange={setFilter('blockedBy')}
              allLabel={t('results.allStages')}
              choices={BLOCKED_STAGES.map((value) => [value, labelOr(t, `blocked.${value}`, value)])}
              testId="results-blocked-filter"
            />
            <FilterSelect
              id={`${ids}-type`}
              label={t('results.answerTypeFilter')}
              value={filters.answerType}
              onChange={setFilter('answerType')}
              allLabel={t('results.allTypes')}
              choices={ANSWER_TYPES.map((value) => [value, labelOr(t, `answerType.${value}`, value)])}
              testId="results-type-filter"
            />
            {flags.length > 0 && (
              <FilterSelect
                id={`${ids}-flag`}
                label={t('results.flagFilter')}
                value={filters.flag}
                onChange={setFilter('flag')}
                allLabel={t('results.allFlags')}
                choices={flags.map((value) => [value, labelOr(t, `flag.${value}`, value)])}
                testId="results-flag-filter"
              />
            )}
          </div>
          <ColumnPicker
            columns={columns}
            visible={visible}
            label={(column) => columnLabel(t, columns, column)}
            onChange={setChosen}
          />
          <p className="results__count" role="status" data-testid="results-count">
            {t('results.matching', { shown: number(total), count: number(everything ?? total) })}
          </p>
          <p className="field__hint">{t('results.sortHint')}</p>
          {total === 0 && <p data-testid="results-no-match">{t('results.noMatch')}</p>}
          {rows.length > 0 && (
            <div
              className="table-scroll"
              tabIndex={0}
              role="region"
              aria-label={t('results.scrollRegion', { name })}
              aria-busy={loading || undefined}
              data-testid="results-scroll"
            >
              <table className="results__table">
                <caption className="visually-hidden">
                  {t('results.caption', {
                    name,
                    from: number(current.from),
                    to: number(current.to),
                    count: number(total),
                  })}
                </caption>
                <thead>
                  <tr>
                    <th scope="col">{t('results.col.details')}</th>
                    {ordered.map((column) => {
                      const field = fieldOf(columns, column);
                      const sortable = sortParam(field) !== null;
                      const sorted = sortable && sort.field === field;
                      const direction = sort.direction;
                      return (
                        <th
                          key={column}
                          scope="col"
                          className={sortable ? undefined : 'results__plain-heading'}
                          aria-sort={sorted ? direction : undefined}
                        >
                          {sortable ? (
                            <button type="button" className="sort-button" onClick={() => sortBy(field)}>
                              {columnLabel(t, columns, column)}
                              <span className="sort-button__mark" aria-hidden="true">
                                {sorted ? (direction === 'ascending' ? '▲' : '▼') : '↕'}
                              </span>
                            </button>
                          ) : (
                            columnLabel(t, columns, column)
                          )}
                        </th>
                      );
                    })}
                  </tr>
                </thead>
                <tbody>
                  {rows.map((row) => {
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
                              <ResultDetails row={row} columns={columns} chatKey={chatKey} batchId={batchId} />
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
                disabled={current.page <= 1 || loading}
                onClick={() => goTo(current.page - 1)}
              >
                {t('results.previous')}
              </button>
              <span className="pager__text" data-testid="results-page">
                {t('results.page', { page: number(current.page), pages: number(current.pages) })}
              </span>
              <button
                type="button"
                className="button button--secondary button--small"
                disabled={current.page >= current.pages || loading}
                onClick={() => goTo(current.page + 1)}
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
