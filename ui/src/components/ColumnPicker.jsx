// Which columns the results table shows: a disclosure button that opens two groups of
// checkboxes, the file's own columns and the result columns, in the server's order.

import { useId, useState } from 'react';
import { useLanguage } from '../LanguageContext.jsx';
import { splitColumns } from '../results.js';

export default function ColumnPicker({ columns, visible, label, onChange }) {
  const { t } = useLanguage();
  const ids = useId();
  const [open, setOpen] = useState(false);
  const { fileColumns, resultColumns } = splitColumns(columns);
  const panelId = `${ids}-panel`;

  const toggle = (column, checked) => {
    const next = checked ? [...visible, column] : visible.filter((shown) => shown !== column);
    onChange(columns.filter((candidate) => next.includes(candidate)));
  };

  const group = (legend, list, key) =>
    list.length > 0 && (
      <fieldset className="column-picker__group" key={key}>
        <legend>{legend}</legend>
        {list.map((column, index) => {
          const id = `${ids}-${key}-${index}`;
          return (
            <div className="column-picker__choice" key={column}>
              <input
                id={id}
                type="checkbox"
                checked={visible.includes(column)}
                onChange={(event) => toggle(column, event.target.checked)}
              />
              <label htmlFor={id}>{label(column)}</label>
            </div>
          );
        })}
      </fieldset>
    );

  return (
    <div className="column-picker">
      <button
        type="button"
        className="button button--secondary button--small"
        aria-expanded={open}
        aria-controls={open ? panelId : undefined}
        data-testid="column-picker"
        onClick={() => setOpen((shown) => !shown)}
      >
        {t('results.columns', { shown: visible.length, count: columns.length })}
      </button>
      {open && (
        <div id={panelId} className="column-picker__panel" data-testid="column-picker-panel">
          {group(t('results.fileColumns'), fileColumns, 'file')}
          {group(t('results.resultColumns'), resultColumns, 'result')}
        </div>
      )}
    </div>
  );
}
