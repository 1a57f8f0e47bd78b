"""Pipelines a batch row can be sent through (design §6: the pipeline is a port).

- `local`: `lib.chat.service.ChatProcessingService`, the stages of ai-answers.md §1 in
  this service.
- `ai-answers`: `lib.pipelines.ai_answers.AIAnswersPipeline`, the row sent to a deployed
  AI Answers over its chat endpoint (ai-answers.md §6).

Both hand back a `lib.chat.service.ChatResult` with the same answer fields, so a result
row looks the same whichever pipeline answered it.
"""

from __future__ import annotations

LOCAL = "local"
AI_ANSWERS = "ai-answers"
PIPELINES = (LOCAL, AI_ANSWERS)
