"""The fault campaign behind `python -m bench.faults`: a seeded, bounded run of many batches
on the local stack while providers, the queue, the app server and the database misbehave,
followed by a check of the engine's invariants straight from MongoDB.

- `plan`       the campaign's settings and its seeded schedule (pure)
- `providers`  the provider stub's per-request fault rule (5xx, 429, timeouts, malformed, search outages)
- `workload`   question files, uploads and cancels over HTTP, with a user's retries
- `chaos`      SIGKILLs of the app server and stops of the database, at scheduled moments
- `monitor`    watches the batches while they run: progress, recovery times, batches with no live step
- `invariants` the checks made once every batch is final
- `runner`     wires it all: `run_campaign(config) -> CampaignReport`
- `report`     the summary table
"""
