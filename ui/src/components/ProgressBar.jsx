// A progress bar that assistive technology can read: role=progressbar with
// aria-valuenow/valuetext, drawn with plain CSS.

export default function ProgressBar({ percent, label, valueText, status }) {
  return (
    <div
      className={`progress progress--${status}`}
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={percent}
      aria-valuetext={valueText}
      data-testid="batch-progress"
    >
      <div className="progress__fill" style={{ width: `${percent}%` }} />
    </div>
  );
}
