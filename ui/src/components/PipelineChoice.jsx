// Which pipeline answers the batch's rows: this service's own (`local`, the default) or a
// deployed AI Answers (`ai-answers`). Offered only when GET /api/batch/options lists
// `ai-answers` in `pipelines` (the deployment has AI_ANSWERS_URL): elsewhere the field
// is not drawn and the form sends no `pipeline`, so the server's default applies.

import { useLanguage } from '../LanguageContext.jsx';

export const PIPELINES = ['local', 'ai-answers'];

/** The pipelines a user may choose between here: [] when there is nothing to choose. */
export function pipelinesOffered(options) {
  const listed = Array.isArray(options?.pipelines) ? options.pipelines : [];
  return listed.includes('ai-answers') ? PIPELINES : [];
}

/** The pipeline the form sends: `chosen` when it is offered, else `local`. */
export function pipelineValue(options, chosen) {
  return pipelinesOffered(options).includes(chosen) ? chosen : 'local';
}

/** Adds `pipeline` to the create form, only for a pipeline other than the default. */
export function appendPipeline(form, pipeline) {
  if (pipeline && pipeline !== 'local') form.set('pipeline', pipeline);
  return form;
}

export default function PipelineChoice({ options, value, onChoose }) {
  const { t } = useLanguage();
  const choices = pipelinesOffered(options);
  if (choices.length === 0) return null;
  return (
    <div className="field" data-testid="upload-pipeline">
      <label htmlFor="upload-pipeline">{t('upload.pipeline')}</label>
      <p id="upload-pipeline-hint" className="field__hint">
        {t('upload.pipelineHint')}
      </p>
      <select
        id="upload-pipeline"
        className="input"
        value={pipelineValue(options, value)}
        aria-describedby="upload-pipeline-hint"
        onChange={(event) => onChoose(event.target.value)}
      >
        {choices.map((choice) => (
          <option key={choice} value={choice}>
            {t(`upload.pipeline.${choice}`)}
          </option>
        ))}
      </select>
    </div>
  );
}
