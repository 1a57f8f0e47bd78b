// The upload form: a spreadsheet (picked or dropped), a name, the providers, how many
// rows run at once and the prompt-overrides choice. The batch's language is the page's
// (sent as `lang`, following the language switch); the server detects each question's
// own. Checks the obvious mistakes first, then posts the multipart form to
// /api/batch/create and shows the new batch (with a link to its card, dismissible), the
// file's warnings in their own box, or the server's error as a sentence.
// `options` (GET /api/batch/options) narrows the providers to those this deployment
// has configured and gives the defaults and limits; without it every provider is offered.
// A file past the request cap (4.5 MB on Vercel) goes straight to object storage where
// the deployment has it: a presigned form from /api/batch/upload-url, posted with
// XMLHttpRequest so that its progress shows in a bar, then create with the `uploadId`.

import { useEffect, useRef, useState } from 'react';
import { buildCreateForm, createBatch, postToStorage, requestUploadUrl, uploadContentType } from '../api.js';
import { errorSentence } from '../errors.js';
import { formatBytes, formatCount } from '../format.js';
import { providerName } from '../i18n.js';
import { useLanguage } from '../LanguageContext.jsx';
import { DEFAULT_EVALUATION, EVALUATION_FIELD_IDS, analyzersOffered, appendEvaluationFields, maxTrialsOf, validateEvaluation } from '../evaluation.js';
import EvaluationFields from './EvaluationFields.jsx';
import PipelineChoice, { appendPipeline, pipelineValue } from './PipelineChoice.jsx';
import { MAX_CONCURRENCY, MAX_UPLOAD_BYTES, goesDirect, nameFromFile, validateUpload } from '../validation.js';
import { normalizeWarning, warningRows, warningSentence } from '../warnings.js';

export const AI_PROVIDERS = ['offline', 'openai', 'azure', 'anthropic'];
export const SEARCH_PROVIDERS = ['offline', 'google', 'canadaca'];
const ACCEPT = '.csv,.xlsx,text/csv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';
const FIELD_IDS = { file: 'upload-file', batchName: 'upload-name', concurrency: 'upload-concurrency', ...EVALUATION_FIELD_IDS };
const DEFAULT_MAX_ROWS = 10_000; // MAX_BATCH_ROWS by default (lib/settings.py)

/** The upload limits of this deployment (GET /api/batch/options), with the request cap as the default. */
export function uploadLimits(options) {
  const limits = options?.limits ?? {};
  const direct = options?.directUploads ? Number(limits.maxUploadBytesDirect) || 0 : 0;
  return {
    maxBytes: Number(limits.maxUploadBytes) || MAX_UPLOAD_BYTES,
    maxRows: Number(limits.maxBatchRows) || DEFAULT_MAX_ROWS,
    maxDirectBytes: direct,
    maxDirectRows: direct ? Number(limits.maxBatchRowsDirect) || 0 : 0,
  };
}

/** A bar for the file's journey to storage: a labelled <progress>, with the bytes sent in words. */
export function UploadProgress({ name, loaded, total }) {
  const { lang, t } = useLanguage();
  const percent = total > 0 ? Math.min(100, Math.floor((loaded / total) * 100)) : 0;
  const done = total > 0 && loaded >= total;
  return (
    <div className="upload-progress" data-testid="upload-progress">
      <label htmlFor="upload-progress-bar" id="upload-progress-label">
        {t('upload.progressLabel', { name })}
      </label>
      <progress
        id="upload-progress-bar"
        className="upload-progress__bar"
        max={100}
        value={percent}
        aria-valuetext={`${percent}%`}
        aria-describedby="upload-progress-text"
      />
      <p id="upload-progress-text" className="field__hint" aria-live="polite" data-testid="upload-progress-text">
        {done
          ? t('upload.progressDone')
          : t('upload.progressText', {
              sent: formatBytes(loaded, lang),
              size: formatBytes(total, lang),
              percent: formatCount(percent, lang),
            })}
      </p>
    </div>
  );
}

/** The choices offered: the server's list when it sent one, else every known value. */
function choicesFrom(list, known) {
  const offered = Array.isArray(list) ? list.filter((value) => known.includes(value)) : [];
  return offered.length > 0 ? offered : known;
}

export default function BatchUpload({ onCreated, onShowBatch, options = null, endedCount = 0 }) {
  const { lang, t } = useLanguage();
  const aiChoices = choicesFrom(options?.aiProviders, AI_PROVIDERS);
  const searchChoices = choicesFrom(options?.searchProviders, SEARCH_PROVIDERS);
  const maxConcurrency = options?.limits?.maxConcurrency || MAX_CONCURRENCY;
  const limits = uploadLimits(options);
  const [sending, setSending] = useState(null); // {name, loaded, total} while a file goes to storage
  const [file, setFile] = useState(null);
  const [batchName, setBatchName] = useState('');
  const [nameEdited, setNameEdited] = useState(false);
  const [aiProvider, setAiProvider] = useState('offline');
  const [searchProvider, setSearchProvider] = useState('offline');
  const [applyOverrides, setApplyOverrides] = useState(false);
  const [concurrency, setConcurrency] = useState('');
  const [pipeline, setPipeline] = useState('local');
  const [evaluation, setEvaluation] = useState(DEFAULT_EVALUATION);
  const edited = useRef({ ai: false, search: false, concurrency: false });
  const [problems, setProblems] = useState([]);
  const [submitting, setSubmitting] = useState(false);
  const [serverError, setServerError] = useState(null);
  const [created, setCreated] = useState(null);
  const [warnings, setWarnings] = useState([]);
  const [dragging, setDragging] = useState(false);
  const fileInput = useRef(null);
  const summary = useRef(null);
  const heading = useRef(null);

  useEffect(() => {
    if (problems.length > 0) summary.current?.focus();
  }, [problems]);

  // The deployment's defaults, once they arrive, for every choice the user has not made yet.
  useEffect(() => {
    const defaults = options?.defaults;
    if (!defaults) return;
    if (!edited.current.ai && typeof defaults.aiProvider === 'string') setAiProvider(defaults.aiProvider);
    if (!edited.current.search && typeof defaults.searchProvider === 'string') {
      setSearchProvider(defaults.searchProvider);
    }
    if (!edited.current.concurrency && Number.isInteger(defaults.concurrency)) {
      setConcurrency(String(defaults.concurrency));
    }
  }, [options]);

  // A choice the server does not offer (not configured here) falls back to the first one offered.
  const aiValue = aiChoices.includes(aiProvider) ? aiProvider : aiChoices[0];
  const searchValue = searchChoices.includes(searchProvider) ? searchProvider : searchChoices[0];

  const chooseFile = (chosen) => {
    setFile(chosen || null);
    setCreated(null);
    setWarnings([]);
    setServerError(null);
    setProblems((current) => current.filter((problem) => problem.field !== 'file'));
    if (chosen && !nameEdited) setBatchName(nameFromFile(chosen.name));
  };

  const onDrop = (event) => {
    event.preventDefault();
    setDragging(false);
    const dropped = event.dataTransfer?.files?.[0];
    if (!dropped) return;
    try {
      // Keep the native input in step where the browser allows it.
      fileInput.current.files = event.dataTransfer.files;
    } catch {
      // the file lives in state either way
    }
    chooseFile(dropped);
  };

  const onSubmit = async (event) => {
    event.preventDefault();
    setCreated(null);
    setWarnings([]);
    setServerError(null);
    const found = validateUpload(
      { file, batchName, concurrency, maxConcurrency, maxBytes: limits.maxBytes, maxDirectBytes: limits.maxDirectBytes },
      lang,
    );
    found.push(...validateEvaluation(evaluation, { maxTrials: maxTrialsOf(options), analyzers: analyzersOffered(options) }));
    setProblems(found);
    if (found.length > 0) return;
    setSubmitting(true);
    try {
      let uploadId = null;
      if (goesDirect(file, limits)) {
        setSending({ name: file.name, loaded: 0, total: file.size });
        const presigned = await requestUploadUrl({
          fileName: file.name,
          size: file.size,
          contentType: uploadContentType(file.name),
        });
        await postToStorage(presigned, file, {
          onProgress: (loaded, total) => setSending({ name: file.name, loaded, total }),
        });
        uploadId = presigned.uploadId;
      }
      const result = await createBatch(
        appendPipeline(appendEvaluationFields(buildCreateForm({
          file,
          uploadId,
          batchName: batchName.trim(),
          aiProvider: aiValue,
          searchProvider: searchValue,
          lang,
          applyOverrides,
          concurrency: concurrency.trim(),
        }), evaluation), pipelineValue(options, pipeline)),
      );
      setCreated({ ...result, name: batchName.trim() });
      setWarnings(Array.isArray(result?.warnings) ? result.warnings.map(normalizeWarning) : []);
      setFile(null);
      setBatchName('');
      setNameEdited(false);
      if (fileInput.current) fileInput.current.value = '';
      onCreated?.(result);
    } catch (error) {
      setServerError(error);
    } finally {
      setSubmitting(false);
      setSending(null);
    }
  };

  const problemFor = (field) => problems.find((problem) => problem.field === field);
  const fileProblem = problemFor('file');
  const nameProblem = problemFor('batchName');
  const concurrencyProblem = problemFor('concurrency');
  const message = (problem) => t(problem.key, problem.params);
  // After a dismissal the box is gone: the focus goes back to the top of the form.
  const dismiss = (clear) => {
    clear();
    heading.current?.focus();
  };

  return (
    <section className="panel upload" aria-labelledby="upload-heading" data-testid="batch-upload">
      <h2 id="upload-heading" tabIndex={-1} ref={heading}>
        {t('upload.heading')}
      </h2>

      {problems.length > 0 && (
        <div className="error-summary" role="alert" tabIndex={-1} ref={summary} data-testid="upload-validation">
          <h3>{t('upload.errorSummary')}</h3>
          <ul>
            {problems.map((problem) => (
              <li key={problem.key}>
                <a href={`#${FIELD_IDS[problem.field]}`}>{message(problem)}</a>
              </li>
            ))}
          </ul>
        </div>
      )}

      <form onSubmit={onSubmit} noValidate>
        <div className={`field${fileProblem ? ' field--invalid' : ''}`}>
          <label htmlFor="upload-file">{t('upload.file')}</label>
          <p id="upload-file-hint" className="field__hint" data-testid="upload-limits">
            {t(limits.maxDirectBytes > limits.maxBytes ? 'upload.fileHintDirect' : 'upload.fileHint', {
              maxSize: formatBytes(limits.maxBytes, lang),
              maxRows: formatCount(limits.maxRows, lang),
              directSize: formatBytes(limits.maxDirectBytes, lang),
              directRows: formatCount(limits.maxDirectRows, lang),
            })}
          </p>
          {fileProblem && (
            <p id="upload-file-error" className="field__error">
              {message(fileProblem)}
            </p>
          )}
          <div
            className={`dropzone${dragging ? ' dropzone--active' : ''}`}
            data-testid="upload-dropzone"
            onDragEnter={(event) => {
              event.preventDefault();
              setDragging(true);
            }}
            onDragOver={(event) => {
              event.preventDefault();
              if (event.dataTransfer) event.dataTransfer.dropEffect = 'copy';
            }}
            onDragLeave={(event) => {
              if (!event.currentTarget.contains(event.relatedTarget)) setDragging(false);
            }}
            onDrop={onDrop}
          >
            <p className="dropzone__text" aria-hidden="true">
              {dragging ? t('upload.dropActive') : t('upload.drop')}
            </p>
            {/* The native input stays focusable (Enter or Space opens the picker) but is
                drawn as a translatable button, since browsers label it in their own language. */}
            <input
              id="upload-file"
              ref={fileInput}
              className="visually-hidden file-input"
              type="file"
              name="file"
              accept={ACCEPT}
              aria-invalid={fileProblem ? true : undefined}
              aria-describedby={`upload-file-hint${fileProblem ? ' upload-file-error' : ''} upload-file-selected`}
              onChange={(event) => chooseFile(event.target.files?.[0])}
            />
            <span
              className="button button--secondary file-button"
              aria-hidden="true"
              onClick={() => fileInput.current?.click()}
            >
              {t('upload.choose')}
            </span>
            <span id="upload-file-selected" className="dropzone__selected" data-testid="upload-selected">
              {file
                ? t('upload.selected', { name: file.name, size: formatBytes(file.size, lang) })
                : t('upload.noFile')}
            </span>
          </div>
        </div>

        <div className={`field${nameProblem ? ' field--invalid' : ''}`}>
          <label htmlFor="upload-name">{t('upload.name')}</label>
          {nameProblem && (
            <p id="upload-name-error" className="field__error">
              {message(nameProblem)}
            </p>
          )}
          <input
            id="upload-name"
            type="text"
            className="input input--wide"
            value={batchName}
            aria-invalid={nameProblem ? true : undefined}
            aria-describedby={nameProblem ? 'upload-name-error' : undefined}
            onChange={(event) => {
              setBatchName(event.target.value);
              setNameEdited(true);
            }}
          />
        </div>

        <p id="upload-lang-note" className="field__note" data-testid="upload-lang-note">
          {t('upload.langNote', { language: t(`language.inSentence.${lang}`) })}
        </p>
        <div className="field-row">
          <ProviderSelect
            id="upload-ai"
            label={t('upload.aiProvider')}
            value={aiValue}
            choices={aiChoices}
            onChoose={(value) => {
              edited.current.ai = true;
              setAiProvider(value);
            }}
          />
          <ProviderSelect
            id="upload-search"
            label={t('upload.searchProvider')}
            value={searchValue}
            choices={searchChoices}
            onChoose={(value) => {
              edited.current.search = true;
              setSearchProvider(value);
            }}
          />
        </div>

        <PipelineChoice options={options} value={pipeline} onChoose={setPipeline} />

        <div className={`field${concurrencyProblem ? ' field--invalid' : ''}`}>
          <label htmlFor="upload-concurrency">{t('upload.concurrency')}</label>
          <p id="upload-concurrency-hint" className="field__hint">
            {t('upload.concurrencyHint', { max: maxConcurrency })}
          </p>
          {concurrencyProblem && (
            <p id="upload-concurrency-error" className="field__error">
              {message(concurrencyProblem)}
            </p>
          )}
          <input
            id="upload-concurrency"
            type="number"
            inputMode="numeric"
            min="1"
            max={maxConcurrency}
            step="1"
            className="input input--narrow"
            value={concurrency}
            aria-invalid={concurrencyProblem ? true : undefined}
            aria-describedby={`upload-concurrency-hint${concurrencyProblem ? ' upload-concurrency-error' : ''}`}
            onChange={(e) => {
              edited.current.concurrency = true;
              setConcurrency(e.target.value);
              setProblems((current) => current.filter((problem) => problem.field !== 'concurrency'));
            }}
          />
        </div>

        <div className="field">
          <div className="field--checkbox">
            <input
              id="upload-overrides"
              type="checkbox"
              checked={applyOverrides}
              aria-describedby="upload-overrides-hint"
              onChange={(e) => setApplyOverrides(e.target.checked)}
            />
            <label htmlFor="upload-overrides">{t('upload.overrides')}</label>
          </div>
          <p id="upload-overrides-hint" className="field__hint field__hint--checkbox">
            {t('upload.overridesHint')}
          </p>
        </div>

        <EvaluationFields
          values={evaluation}
          onChange={setEvaluation}
          options={options}
          problems={problems}
          endedCount={endedCount}
        />

        <button type="submit" className="button" disabled={submitting} aria-busy={submitting || undefined}>
          {submitting ? t('upload.submitting') : t('upload.submit')}
        </button>
        {sending && <UploadProgress {...sending} />}
      </form>

      {serverError && <UploadError error={serverError} />}
      {created && (
        <UploadCreated created={created} onShowBatch={onShowBatch} onDismiss={() => dismiss(() => setCreated(null))} />
      )}
      {warnings.length > 0 && <UploadWarnings warnings={warnings} onDismiss={() => dismiss(() => setWarnings([]))} />}
    </section>
  );
}

function ProviderSelect({ id, label, value, choices, onChoose }) {
  const { t } = useLanguage();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <select id={id} className="input" value={value} onChange={(e) => onChoose(e.target.value)}>
        {choices.map((choice) => (
          <option key={choice} value={choice}>
            {providerName(t, choice)}
          </option>
        ))}
      </select>
    </div>
  );
}

function DismissButton({ label, onDismiss }) {
  const { t } = useLanguage();
  return (
    <button
      type="button"
      className="button button--secondary button--small notice__dismiss"
      aria-label={label}
      onClick={onDismiss}
    >
      {t('upload.dismiss')}
    </button>
  );
}

function UploadCreated({ created, onShowBatch, onDismiss }) {
  const { t } = useLanguage();
  const name = created.name || created.batchId;
  return (
    <div className="notice notice--success notice--dismissible" role="status" data-testid="upload-success">
      <div className="notice__body">
        <p>
          {t('upload.created', { name })} <code data-testid="upload-batch-id">{created.batchId}</code>
        </p>
        {typeof created.totalItems === 'number' && <p>{t('upload.createdRows', { count: created.totalItems })}</p>}
        <p>
          <a
            href={`#batch-heading-${created.batchId}`}
            data-testid="upload-show-batch"
            onClick={(event) => {
              if (!onShowBatch) return;
              event.preventDefault();
              onShowBatch(created.batchId);
            }}
          >
            {t('upload.showBatch')}
          </a>
        </p>
      </div>
      <DismissButton label={t('upload.dismissSuccess')} onDismiss={onDismiss} />
    </div>
  );
}

function UploadWarnings({ warnings, onDismiss }) {
  const { t } = useLanguage();
  const rows = warningRows(warnings);
  return (
    <div className="notice notice--warning notice--dismissible" role="status" data-testid="upload-warnings-box">
      <div className="notice__body">
        <h3>{t('upload.warnings')}</h3>
        {rows.length > 0 && (
          <p data-testid="upload-warning-rows">{t('upload.warningRows', { rows: rows.join(', ') })}</p>
        )}
        <ul data-testid="upload-warnings">
          {warnings.map((warning, index) => (
            <li key={index}>{warningSentence(warning, t)}</li>
          ))}
        </ul>
      </div>
      <DismissButton label={t('upload.dismissWarnings')} onDismiss={onDismiss} />
    </div>
  );
}

function UploadError({ error }) {
  const { lang, t } = useLanguage();
  return (
    <div className="notice notice--error" role="alert" data-testid="upload-error">
      <h3>{t('upload.failed')}</h3>
      <p data-testid="upload-error-message">{errorSentence(error, lang)}</p>
      {error.code && (
        <p className="notice__meta" data-testid="upload-error-code">
          {t('error.reference', { code: error.code })}
        </p>
      )}
    </div>
  );
}
