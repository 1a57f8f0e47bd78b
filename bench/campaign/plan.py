"""The campaign's settings and its seeded schedule: a pure function of the config.

Every random choice of the campaign (batch sizes and shapes, upload moments, which
batches are cancelled and when, when the app server is killed and the database
stopped, when search is down, which files go straight to object storage and when
storage is away) is drawn here from `random.Random(seed)` (storage's from a generator
of its own, so that the rest of a seed's schedule is what it was before), so a seed names
one campaign. What the stack does in answer (thread timing, which request meets which
fault window) is not reproducible; the schedule is.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Literal

AI_PROVIDERS = ("openai", "azure", "anthropic")
SEARCH_PROVIDERS = ("canadaca", "google", "offline")


@dataclass(frozen=True)
class ProviderFaultRates:
    """Share of AI provider requests answered with each fault (the rest answer normally)."""

    server_error: float = 0.20  # 500/502/503/504
    rate_limited: float = 0.10  # 429 with Retry-After
    read_timeout: float = 0.05  # a reply slower than the app's read timeout
    malformed: float = 0.02  # 200 with a body that is not JSON


@dataclass(frozen=True)
class QueueFaults:
    """What the QStash dev server is told through `POST /__dev/faults`."""

    duplicate: bool = True
    drop_rate: float = 0.10
    latency_ms: float = 50.0
    jitter_ms: float = 1000.0  # random extra delay per delivery: messages overtake each other

    def as_json(self, seed: int) -> dict[str, object]:
        return {"duplicate": self.duplicate, "drop_rate": self.drop_rate, "seed": seed,
                "latency_ms": self.latency_ms, "jitter_ms": self.jitter_ms}


@dataclass(frozen=True)
class CampaignConfig:
    seed: int = 1
    batches: int = 20
    min_rows: int = 5
    max_rows: int = 300
    deadline_seconds: float = 900.0  # everything, stack start to checks
    upload_window_seconds: float = 150.0  # uploads are spread over this
    chaos_window_seconds: float = 200.0  # process faults happen in this
    app_kills: int = 5
    db_stops: int = 3
    cancels: int = 3
    search_outages: int = 4
    conversation_share: float = 0.4  # share of files with `chatId` conversations
    xlsx_share: float = 0.2
    provider_rates: ProviderFaultRates = field(default_factory=ProviderFaultRates)
    queue_faults: QueueFaults = field(default_factory=QueueFaults)
    # Seconds per normal reply; a row makes about 4 model calls (the pipeline's stages).
    stub_latency: tuple[float, float] = (0.02, 0.15)
    concurrency: tuple[int, int] = (2, 6)  # per batch
    # The app's engine, shortened so that a dead step's lease expires within the campaign.
    function_max_duration: int = 10
    step_safety_seconds: float = 4.0
    read_timeout: float = 1.0
    sweep_interval: float = 5.0
    app_down_seconds: tuple[float, float] = (0.3, 3.0)
    db_down_seconds: tuple[float, float] = (2.0, 5.0)
    search_outage_seconds: tuple[float, float] = (2.0, 6.0)
    cancel_after_seconds: tuple[float, float] = (2.0, 15.0)
    # Object storage, behind a proxy that fails it at the wire (tests/support/s3_fault_proxy.py).
    direct_share: float = 0.3  # files posted straight to storage (upload-url), then ingested by steps
    storage_outages: int = 3  # windows in which storage is away (connections dropped or 503 to everything)
    storage_outage_seconds: tuple[float, float] = (2.0, 5.0)
    storage_error_rate: float = 0.03  # outside the windows: S3 requests answered 503 SlowDown
    exports: bool = True  # each final batch's results fetched by link (delivery=url), faults and all
    # The first write of each export fails at storage, every attempt of the SDK's included (1 + 3
    # retries, lib/storage.py), so the request answers 503 and the user asks again: the export
    # must be absent, then whole.
    export_write_failures: int = 4
    # Evaluation runs: a share of the batches have analyzers, trials (each trial its own items,
    # in its own chats) or both; trials only on the smaller half of the batches, to keep the time.
    evaluation_share: float = 0.5
    max_trials: int = 3

    @property
    def lease_seconds(self) -> float:
        return self.function_max_duration + 5  # the app's default STEP_LEASE_SECONDS

    @property
    def no_live_step_limit(self) -> float:
        """How long a batch may sit active with no live lease and no queued step: by then the
        sweep (staleness limit = the lease, one call per period) must have re-kicked it."""
        return self.lease_seconds + 2 * self.sweep_interval + 5

    def app_env(self) -> dict[str, str]:
        return {
            "FUNCTION_MAX_DURATION": str(self.function_max_duration),
            "STEP_SAFETY_SECONDS": str(self.step_safety_seconds),
            "PROVIDER_READ_TIMEOUT": str(self.read_timeout),
            "PROVIDER_CONNECT_TIMEOUT": "2",
            # The provider gate's wait for a slot, scaled down with the step's budget as the
            # other timings are (production: 20 s of a 48 s budget).
            "PROVIDER_WAIT_SECONDS": str(round((self.function_max_duration - self.step_safety_seconds) / 2, 1)),
            # The campaign tests the engine, not the per-user limits: let every upload in.
            "MAX_ACTIVE_BATCHES_PER_USER": "1000",
            "CREATE_RATE_PER_MINUTE": "10000",
            "LOG_LEVEL": "INFO",
        }


def quick_config(seed: int = 1) -> CampaignConfig:
    """The short campaign of the default test run: a few small batches, one of each fault, < 90 s."""
    return CampaignConfig(
        seed=seed, batches=5, min_rows=12, max_rows=40, deadline_seconds=85.0, upload_window_seconds=6.0,
        chaos_window_seconds=16.0, app_kills=1, db_stops=1, cancels=1, search_outages=1,
        stub_latency=(0.04, 0.12), concurrency=(2, 3), function_max_duration=8, step_safety_seconds=3.0,
        sweep_interval=3.0, app_down_seconds=(0.3, 1.0), db_down_seconds=(2.0, 3.0),
        search_outage_seconds=(2.0, 4.0), cancel_after_seconds=(1.5, 3.0),
        storage_outages=2, storage_outage_seconds=(1.5, 3.0), max_trials=2,
    )


@dataclass(frozen=True)
class BatchSpec:
    index: int
    rows: int
    conversations: int  # 0: every row is its own chat
    file_type: Literal["csv", "xlsx"]
    ai_provider: str
    search_provider: str
    lang: Literal["en", "fr"]
    concurrency: int
    user: str
    upload_at: float  # seconds after the campaign's start
    direct: bool = False  # posted straight to object storage, then created with its uploadId
    trials: int = 1  # each question answered this many times, each trial its own items and chats
    analyzers: str = ""  # comma list of analyzers run on each row inside its claim

    @property
    def name(self) -> str:
        return f"faults-{self.index:02d}"

    def form_fields(self) -> dict[str, str]:
        """The create form's fields besides the file (or its uploadId)."""
        fields = {"batchName": self.name, "lang": self.lang, "aiProvider": self.ai_provider,
                  "searchProvider": self.search_provider, "concurrency": str(self.concurrency)}
        if self.trials > 1:
            fields["trials"] = str(self.trials)
        if self.analyzers:
            fields["analyzers"] = self.analyzers
        return fields


@dataclass(frozen=True)
class Cancel:
    batch_index: int
    after_upload: float


@dataclass(frozen=True)
class ProcessFault:
    kind: Literal["app-kill", "db-stop"]
    at: float
    down_seconds: float


@dataclass(frozen=True)
class Window:
    start: float
    end: float

    def __contains__(self, moment: float) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True)
class Schedule:
    batches: list[BatchSpec]
    cancels: list[Cancel]
    process_faults: list[ProcessFault]
    search_outages: list[Window]
    storage_outages: list[Window] = field(default_factory=list)


def make_schedule(config: CampaignConfig, *, db_stops_possible: bool = True) -> Schedule:
    """Draw the whole campaign from the seed."""
    rng = random.Random(config.seed)
    batches = [_batch(rng, config, n) for n in range(config.batches)]
    # Upload moments: the first at once, the rest spread over the window, so most uploads
    # land while earlier batches run.
    moments = sorted(rng.uniform(0, config.upload_window_seconds) for _ in range(config.batches - 1))
    batches = [replace(b, upload_at=at) for b, at in zip(batches, [0.0, *moments], strict=True)]
    # Cancel the bigger batches, so that a cancel has rows left to stop.
    by_size = sorted(batches, key=lambda b: (-b.rows, b.index))[: config.cancels * 2]
    chosen = sorted(rng.sample(by_size, k=min(config.cancels, len(by_size))), key=lambda b: b.index)
    cancels = [Cancel(b.index, rng.uniform(*config.cancel_after_seconds)) for b in chosen]
    faults = [ProcessFault("app-kill", 0.0, rng.uniform(*config.app_down_seconds)) for _ in range(config.app_kills)]
    if db_stops_possible:
        faults += [ProcessFault("db-stop", 0.0, rng.uniform(*config.db_down_seconds)) for _ in range(config.db_stops)]
    rng.shuffle(faults)
    start = min(3.0, config.chaos_window_seconds / 4)
    slots = sorted(rng.uniform(start, config.chaos_window_seconds) for _ in faults)
    faults = [replace(f, at=at) for f, at in zip(faults, slots, strict=True)]
    outages = []
    for _ in range(config.search_outages):
        begin = rng.uniform(0, config.chaos_window_seconds)
        outages.append(Window(begin, begin + rng.uniform(*config.search_outage_seconds)))
    outages.sort(key=lambda w: w.start)
    batches, storage_outages = _storage_schedule(config, batches)
    batches = _evaluation_schedule(config, batches)
    return Schedule(batches=batches, cancels=cancels, process_faults=faults, search_outages=outages,
                    storage_outages=storage_outages)


ANALYZER_SETS = ("refusal", "citation", "refusal,citation", "similar-answer", "refusal,citation,similar-answer,expert-scorer")
JUDGES = ("similar-answer", "expert-scorer")
EVALUATION_SET = "refusal,similar-answer,expert-scorer"  # rules and both judges, with the file's references


def _evaluation_schedule(config: CampaignConfig, batches: list[BatchSpec]) -> list[BatchSpec]:
    """Analyzers and trials, from a generator of their own: at least one batch of each when any may."""
    if config.evaluation_share <= 0 or not batches:
        return batches
    rng = random.Random(f"{config.seed}|evaluation")
    small = sorted(batches, key=lambda b: (b.rows, b.index))[: max(1, len(batches) // 2)]
    small_ids = {b.index for b in small}
    chosen = []
    for batch in batches:
        analyzers = rng.choice(ANALYZER_SETS) if rng.random() < config.evaluation_share else ""
        trials = rng.randint(2, config.max_trials) if (config.max_trials > 1 and batch.index in small_ids
                                                        and rng.random() < config.evaluation_share) else 1
        chosen.append(replace(batch, analyzers=analyzers, trials=trials))
    if not any(b.analyzers for b in chosen):
        n = rng.randrange(len(chosen))
        chosen[n] = replace(chosen[n], analyzers=rng.choice(ANALYZER_SETS))
    if config.max_trials > 1 and not any(b.trials > 1 for b in chosen):
        n = min(small_ids)
        chosen[n] = replace(chosen[n], trials=2)
    # Both judges on a batch with trials at least once: its rows make the most model calls, so
    # process faults land in the middle of their analyses.
    if not any(b.trials > 1 and all(j in b.analyzers for j in JUDGES) for b in chosen):
        n = next((b.index for b in chosen if b.trials > 1), min(small_ids))
        chosen[n] = replace(chosen[n], analyzers=EVALUATION_SET)
    return chosen


def _storage_schedule(config: CampaignConfig, batches: list[BatchSpec]) -> tuple[list[BatchSpec], list[Window]]:
    """Which files go straight to storage (at least one, when any may) and when storage is away.

    The windows start within the uploads (a direct upload's post, create and ingestion meet
    them) and run on into the chaos window (the exports of the first final batches do).
    """
    rng = random.Random(f"{config.seed}|storage")
    direct = [rng.random() < config.direct_share for _ in batches]
    if config.direct_share > 0 and batches and not any(direct):
        direct[rng.randrange(len(batches))] = True
    batches = [replace(b, direct=d) for b, d in zip(batches, direct, strict=True)]
    span = max(config.upload_window_seconds, config.chaos_window_seconds)
    windows = []
    for _ in range(config.storage_outages):
        begin = rng.uniform(0.5, span)
        windows.append(Window(begin, begin + rng.uniform(*config.storage_outage_seconds)))
    return batches, sorted(windows, key=lambda w: w.start)


def _batch(rng: random.Random, config: CampaignConfig, index: int) -> BatchSpec:
    # Mixed sizes: small, medium and large in turn, and the largest size at least once.
    third = max(1, (config.max_rows - config.min_rows) // 3)
    bucket = index % 3
    low = config.min_rows + bucket * third
    rows = config.max_rows if index == 1 else rng.randint(low, min(config.max_rows, low + third))
    conversations = 0
    # With and without conversations at least once each; the rest by the configured share.
    if index == 0 or (index != 2 and rng.random() < config.conversation_share):
        conversations = max(1, rows // rng.randint(3, 8))
    return BatchSpec(
        index=index,
        rows=rows,
        conversations=conversations,
        file_type="xlsx" if rng.random() < config.xlsx_share else "csv",
        ai_provider=rng.choice(AI_PROVIDERS),
        search_provider=rng.choice(SEARCH_PROVIDERS[:2]) if rng.random() < 0.85 else "offline",
        lang=rng.choice(("en", "en", "fr")),
        concurrency=rng.randint(*config.concurrency),
        user=rng.choice(("partner", "partner2")),
        upload_at=0.0,
    )
