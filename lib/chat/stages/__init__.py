"""The AI Answers pipeline, one module per stage (ai-answers.md §1), composed by `pipeline.run_pipeline`.

Every stage has the same shape:

- a frozen input dataclass (`RulesInput`, `PiiInput`, `LanguageInput`, …);
- a typed result (`RulesResult`, `PiiResult`, `LanguageResult`, …), or `base.Blocked`
  when the stage refuses the question by design (blocks are results, not errors);
- `run(inp, [ai | search], …)`, given the providers it needs (the ports of
  `lib.providers.base`). A stage that calls a model has its prompt
  (`SYSTEM_PROMPT`, `build_request`) and a strict parser (`parse_reply` /
  `parse_answer`) that raises `base.StageReplyError` (retryable, code
  `MALFORMED_STAGE_REPLY`) for a reply in the wrong shape, and a deterministic twin
  (`run_offline`) used when the AI provider is the offline one (`offline.is_offline`).

Stages, in order: `short_query`, `rules` (redaction stage 1; PII shapes in
`pii_patterns`), `ai_pii` (redaction stage 2; offline shapes in `pii_shapes`),
`language`, `query_rewrite`, `search`, `department`, `answer` (offline composer in
`answer_offline`), `citation`. `outcome` holds what the pipeline returns; `data`
reads the editable data files of `lib/chat/data/`.
"""
