// One progress bar for a batch, drawn in segments: answered, blocked, failed and
// cancelled rows, each in its own colour (cancelled also striped), the rest empty for the
// rows still waiting. Assistive technology reads it as role=progressbar whose
// aria-valuetext names every count; the legend under it shows the same counts as text.

import { OUTCOMES, formatCount } from '../format.js';
import { useLanguage } from '../LanguageContext.jsx';

/** The width of each segment, in percent of the bar, for the rows of `progress` (batchProgress). */
export function segmentWidths(progress) {
  const widths = {};
  for (const outcome of OUTCOMES) {
    widths[outcome] = progress.total > 0 ? (progress[outcome] / progress.total) * 100 : 0;
  }
  return widths;
}

export default function ProgressBar({ progress, status, label, legendLabel, trialsNote }) {
  const { lang, t } = useLanguage();
  const number = (value) => formatCount(value, lang);
  const widths = segmentWidths(progress);
  const valueText = t('progress.valueText', {
    answered: number(progress.answered),
    blocked: number(progress.blocked),
    failed: number(progress.failed),
    cancelled: number(progress.cancelled),
    total: number(progress.total),
  });
  const legend = [...OUTCOMES, ...(progress.waiting > 0 ? ['waiting'] : [])];

  return (
    <div className="progress-block">
      <div
        className={`progress progress--${status}`}
        role="progressbar"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={progress.percent}
        aria-valuetext={valueText}
        data-testid="batch-progress"
      >
        {OUTCOMES.filter((outcome) => progress[outcome] > 0).map((outcome) => (
          <div
            key={outcome}
            className={`progress__segment progress__segment--${outcome}`}
            style={{ width: `${widths[outcome]}%` }}
            data-testid={`progress-segment-${outcome}`}
          />
        ))}
      </div>
      <ul className="progress-legend" aria-label={legendLabel} data-testid="batch-counts">
        {legend.map((outcome) => (
          <li key={outcome} className="progress-legend__item" data-testid={`legend-${outcome}`}>
            <span className={`swatch swatch--${outcome}`} aria-hidden="true" />
            {t('batch.legendItem', { label: t(`outcome.${outcome}`), count: number(progress[outcome]) })}
          </li>
        ))}
        <li className="progress-legend__item progress-legend__total">
          {t('batch.total', { total: number(progress.total) })}
          {trialsNote ? ` (${trialsNote})` : ''}
        </li>
      </ul>
    </div>
  );
}
