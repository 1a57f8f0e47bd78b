"""Settings: one validated object built from a mapping (the environment).

Nothing reads the environment at import time. `Settings.from_env(os.environ)` validates
every variable once and raises `ConfigError` naming the first one that is wrong.
`.env.example` documents each variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import urlparse

from lib.errors import ConfigError
from lib.pricing import PriceTable, parse_prices

T = TypeVar("T")

AI_PROVIDERS = ("offline", "openai", "azure", "anthropic")
SEARCH_PROVIDERS = ("offline", "google", "canadaca")
MAX_CONCURRENCY = 32  # conversations one batch step may run side by side

# The official QStash dev server's fixed credentials; ours uses the same so one .env
# works with either (see shared/qstash-wire.md).
DEV_QSTASH_TOKEN = "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="
DEV_QSTASH_CURRENT_SIGNING_KEY = "sig_7RvLjqfZBvP5KEUimQCE1pvpLuou"
DEV_QSTASH_NEXT_SIGNING_KEY = "sig_7W3ZNbfKWk5NWwEs3U4ixuQ7fxwE"


class _Reader:
    """Reads typed values from a mapping; every error names the variable."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def str(self, name: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.raw(name)
        if value is None:
            if required and default is None:
                raise ConfigError(f"{name} is required but not set")
            return default
        return value

    def int(self, name: str, default: int, *, low: int, high: int) -> int:
        return self._number(name, default, int, low, high)

    def float(self, name: str, default: float, *, low: float, high: float) -> float:
        return self._number(name, default, float, low, high)

    def _number(self, name: str, default: T, kind: Callable[[str], T], low: Any, high: Any) -> T:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = kind(value)
        except ValueError:
            raise ConfigError(f"{name} must be a {kind.__name__}, got {value!r}") from None
        if not low <= number <= high:  # type: ignore[operator]
            raise ConfigError(f"{name} must be between {low} and {high}, got {value!r}")
        return number

    def bool(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {value!r}")

    def url(self, name: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.str(name, default, required=required)
        if value is None:
            return None
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
        return value.rstrip("/")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.str(name, default)
        assert value is not None
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value


def parse_provider_limits(spec: str | None, default_per_minute: int | None) -> dict[str, tuple[int, int | None]]:
    """`openai=16/600,anthropic=8` -> {provider: (in flight, per minute)}. Raises ValueError naming the bad part."""
    result: dict[str, tuple[int, int | None]] = {}
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, _, value = part.partition("=")
        in_flight, _, per_minute = value.partition("/")
        try:
            limits = (int(in_flight), int(per_minute) if per_minute else default_per_minute)
        except ValueError:
            raise ValueError(part) from None
        if not name.strip() or limits[0] < 1 or (limits[1] is not None and limits[1] < 1):
            raise ValueError(part)
        result[name.strip()] = limits
    return result


@dataclass(frozen=True)
class Settings:
    # Store and auth
    mongodb_uri: str
    mongodb_db: str
    jwt_secret: str
    # Public address of this deployment (QStash delivers steps there)
    public_base_url: str
    # Queue
    qstash_token: str
    qstash_url: str | None
    qstash_current_signing_key: str
    qstash_next_signing_key: str
    cron_secret: str | None
    # Providers
    openai_api_key: str | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    openai_model: str = "gpt-4.1-mini"
    azure_openai_endpoint: str | None = None
    azure_openai_api_key: str | None = None
    azure_openai_deployment: str | None = None
    azure_openai_api_version: str = "2024-10-21"
    anthropic_api_key: str | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    anthropic_model: str = "claude-sonnet-4-5"
    google_search_api_key: str | None = None
    google_search_cx: str | None = None
    google_search_url: str = "https://www.googleapis.com/customsearch/v1"
    canadaca_search_url: str | None = None
    canadaca_search_key: str | None = None
    # A deployed AI Answers that batches may be sent to (`pipeline=ai-answers`, ai-answers.md §6),
    # and its service token when it requires sign-in (sent as a bearer token, never logged).
    ai_answers_url: str | None = None
    ai_answers_token: str | None = field(default=None, repr=False)
    provider_connect_timeout: float = 5.0
    provider_read_timeout: float = 60.0
    provider_max_retries: int = 2
    offline_ai_latency_ms: int = 0
    provider_limits_spec: str = ""
    provider_max_in_flight: int = 32
    provider_per_minute: int = 0  # 0: no per-minute ceiling
    provider_wait_seconds: float = 20.0
    default_ai_provider: str = "offline"
    default_search_provider: str = "offline"
    # Limits
    max_body_bytes: int = 4_718_592
    max_message_chars: int = 4000
    max_batch_rows: int = 10_000
    history_turns: int = 10
    citation_check: bool = False  # a live HEAD/GET of each answer's citation (ai-answers.md §1 stage 9)
    max_active_batches: int = 5
    create_rate_per_minute: int = 10
    # Engine
    batch_concurrency: int = 4
    max_attempts: int = 3
    function_max_duration: int = 60
    step_safety_seconds: float = 12.0
    lease_seconds: int = 0  # 0: derived from function_max_duration
    sweep_stale_after: int = 0  # 0: derived from the lease
    log_level: str = "INFO"
    # Object storage (optional: without S3_BUCKET uploads go through create only, no source is kept
    # and results are not offered by link). Credentials: the AWS_* variables, else boto3's default
    # chain (a role).
    s3_bucket: str | None = None
    s3_region: str = "us-east-1"
    s3_endpoint_url: str | None = None  # an S3-compatible server (moto's locally)
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_session_token: str | None = field(default=None, repr=False)
    max_upload_bytes_direct: int = 100 * 1024 * 1024  # a presigned upload straight to storage
    max_batch_rows_direct: int = 100_000  # rows of a file uploaded that way
    retention_days: int = 30  # sources and exports are deleted from storage after this
    export_link_rows: int = 2_000  # past this many rows the page and the CLI fetch results by link
    ingest_window_rows: int = 20_000  # rows of a direct upload one ingestion step reads in (held in memory)
    ingest_chunk_rows: int = 1_000  # rows written at a time (the mark moves after each chunk)
    # Evaluation runs: USD per million tokens by model, over lib.pricing's defaults (MODEL_PRICES, JSON).
    model_prices: tuple[tuple[str, float, float], ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Validate every variable; raise `ConfigError` naming the first bad one."""
        r = _Reader(env)
        public = r.url("PUBLIC_BASE_URL")
        if public is None:
            # Vercel sets VERCEL_URL (host only) on every deployment.
            vercel_host = r.str("VERCEL_PROJECT_PRODUCTION_URL") or r.str("VERCEL_URL")
            if vercel_host is None:
                raise ConfigError("PUBLIC_BASE_URL is required but not set (nor VERCEL_URL)")
            public = f"https://{vercel_host}"
        qstash_url = r.url("QSTASH_URL")
        # Without QSTASH_URL the SDK talks to Upstash; then real credentials are needed.
        dev_default = qstash_url is not None
        settings = cls(
            mongodb_uri=_mongodb_uri(r),
            mongodb_db=r.str("MONGODB_DB", "ai_answers"),  # type: ignore[arg-type]
            jwt_secret=_jwt_secret(r),
            public_base_url=public,
            qstash_token=r.str("QSTASH_TOKEN", DEV_QSTASH_TOKEN if dev_default else None, required=True),  # type: ignore[arg-type]
            qstash_url=qstash_url,
            qstash_current_signing_key=r.str(  # type: ignore[arg-type]
                "QSTASH_CURRENT_SIGNING_KEY", DEV_QSTASH_CURRENT_SIGNING_KEY if dev_default else None, required=True
            ),
            qstash_next_signing_key=r.str(  # type: ignore[arg-type]
                "QSTASH_NEXT_SIGNING_KEY", DEV_QSTASH_NEXT_SIGNING_KEY if dev_default else None, required=True
            ),
            cron_secret=r.str("CRON_SECRET"),
            openai_api_key=r.str("OPENAI_API_KEY"),
            openai_base_url=r.url("OPENAI_BASE_URL", "https://api.openai.com/v1"),  # type: ignore[arg-type]
            openai_model=r.str("OPENAI_MODEL", "gpt-4.1-mini"),  # type: ignore[arg-type]
            azure_openai_endpoint=r.url("AZURE_OPENAI_ENDPOINT"),
            azure_openai_api_key=r.str("AZURE_OPENAI_API_KEY"),
            azure_openai_deployment=r.str("AZURE_OPENAI_DEPLOYMENT"),
            azure_openai_api_version=r.str("AZURE_OPENAI_API_VERSION", "2024-10-21"),  # type: ignore[arg-type]
            anthropic_api_key=r.str("ANTHROPIC_API_KEY"),
            anthropic_base_url=r.url("ANTHROPIC_BASE_URL", "https://api.anthropic.com"),  # type: ignore[arg-type]
            anthropic_model=r.str("ANTHROPIC_MODEL", "claude-sonnet-4-5"),  # type: ignore[arg-type]
            google_search_api_key=r.str("GOOGLE_SEARCH_API_KEY"),
            google_search_cx=r.str("GOOGLE_SEARCH_CX"),
            google_search_url=r.url("GOOGLE_SEARCH_URL", "https://www.googleapis.com/customsearch/v1"),  # type: ignore[arg-type]
            canadaca_search_url=r.url("CANADACA_SEARCH_URL"),
            canadaca_search_key=r.str("CANADACA_SEARCH_KEY"),
            ai_answers_url=r.url("AI_ANSWERS_URL"),
            ai_answers_token=r.str("AI_ANSWERS_TOKEN"),
            provider_connect_timeout=r.float("PROVIDER_CONNECT_TIMEOUT", 5.0, low=0.1, high=60),
            provider_read_timeout=r.float("PROVIDER_READ_TIMEOUT", 60.0, low=0.1, high=600),
            provider_max_retries=r.int("PROVIDER_MAX_RETRIES", 2, low=0, high=10),
            offline_ai_latency_ms=r.int("OFFLINE_AI_LATENCY_MS", 0, low=0, high=60_000),
            provider_limits_spec=r.str("PROVIDER_LIMITS", "") or "",
            provider_max_in_flight=r.int("PROVIDER_MAX_IN_FLIGHT", 32, low=1, high=1000),
            provider_per_minute=r.int("PROVIDER_RPM", 0, low=0, high=1_000_000),
            provider_wait_seconds=r.float("PROVIDER_WAIT_SECONDS", 20.0, low=0.1, high=600),
            default_ai_provider=r.choice("DEFAULT_AI_PROVIDER", "offline", AI_PROVIDERS),
            default_search_provider=r.choice("DEFAULT_SEARCH_PROVIDER", "offline", SEARCH_PROVIDERS),
            max_body_bytes=r.int("MAX_BODY_BYTES", 4_718_592, low=1024, high=1 << 30),
            max_message_chars=r.int("MAX_MESSAGE_CHARS", 4000, low=10, high=100_000),
            max_batch_rows=r.int("MAX_BATCH_ROWS", 10_000, low=1, high=1_000_000),
            history_turns=r.int("HISTORY_TURNS", 10, low=0, high=100),
            citation_check=r.bool("CITATION_CHECK", False),
            max_active_batches=r.int("MAX_ACTIVE_BATCHES_PER_USER", 5, low=1, high=1000),
            create_rate_per_minute=r.int("CREATE_RATE_PER_MINUTE", 10, low=1, high=10_000),
            batch_concurrency=r.int("BATCH_CONCURRENCY", 4, low=1, high=MAX_CONCURRENCY),
            max_attempts=r.int("MAX_ATTEMPTS", 3, low=1, high=20),
            function_max_duration=r.int("FUNCTION_MAX_DURATION", 60, low=5, high=900),
            step_safety_seconds=r.float("STEP_SAFETY_SECONDS", 12.0, low=0.5, high=300),
            lease_seconds=r.int("STEP_LEASE_SECONDS", 0, low=0, high=3600),
            sweep_stale_after=r.int("SWEEP_STALE_SECONDS", 0, low=0, high=86_400),
            log_level=r.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
            model_prices=_model_prices(r),
            **_storage(r),
        )
        settings._check_consistency()
        return settings

    def provider_limits(self, name: str) -> tuple[int, int | None]:
        """The ceiling on one provider's calls: (in flight, per minute or None for no ceiling)."""
        default = (self.provider_max_in_flight, self.provider_per_minute or None)
        return parse_provider_limits(self.provider_limits_spec, default[1]).get(name, default)

    def _check_consistency(self) -> None:
        try:
            parse_provider_limits(self.provider_limits_spec, None)
        except ValueError as exc:
            raise ConfigError(f"PROVIDER_LIMITS must look like 'openai=16/600,google=8', got {exc}") from None
        if self.step_safety_seconds >= self.function_max_duration:
            raise ConfigError("STEP_SAFETY_SECONDS must be smaller than FUNCTION_MAX_DURATION")
        for name, needed in (
            ("DEFAULT_AI_PROVIDER", self.default_ai_provider),
            ("DEFAULT_SEARCH_PROVIDER", self.default_search_provider),
        ):
            if needed not in self.configured_ai_providers() + self.configured_search_providers():
                raise ConfigError(f"{name} names {needed!r}, which is not configured")

    def price_table(self) -> PriceTable:
        """What model calls cost (lib/pricing.py): the default table with MODEL_PRICES over it."""
        return PriceTable.with_overrides({model: (inp, out) for model, inp, out in self.model_prices})

    def answer_model(self, ai_provider: str) -> str:
        """The model a provider answers with by default (prices a row whose stages are not itemised)."""
        return {"openai": self.openai_model, "anthropic": self.anthropic_model,
                "azure": self.azure_openai_deployment or "azure"}.get(ai_provider, ai_provider)

    def configured_ai_providers(self) -> tuple[str, ...]:
        """AI providers that have what they need to run."""
        names = ["offline"]
        if self.openai_api_key:
            names.append("openai")
        if self.azure_openai_endpoint and self.azure_openai_api_key and self.azure_openai_deployment:
            names.append("azure")
        if self.anthropic_api_key:
            names.append("anthropic")
        return tuple(names)

    def configured_search_providers(self) -> tuple[str, ...]:
        """Search providers that have what they need to run."""
        names = ["offline"]
        if self.google_search_api_key and self.google_search_cx:
            names.append("google")
        if self.canadaca_search_url:
            names.append("canadaca")
        return tuple(names)

    def configured_pipelines(self) -> tuple[str, ...]:
        """Pipelines a batch may be sent through: the local one, and a deployed AI Answers when AI_ANSWERS_URL is set."""
        return ("local", "ai-answers") if self.ai_answers_url else ("local",)

    @property
    def storage_configured(self) -> bool:
        """Whether object storage is set up (direct uploads, kept sources, exports by link)."""
        return self.s3_bucket is not None

    def storage_credentials(self) -> dict[str, str]:
        """Explicit AWS credentials for boto3 (empty: its default chain)."""
        pairs = {"aws_access_key_id": self.aws_access_key_id, "aws_secret_access_key": self.aws_secret_access_key,
                 "aws_session_token": self.aws_session_token}
        return {name: value for name, value in pairs.items() if value}

    @property
    def step_budget_seconds(self) -> float:
        """How long one step may work before it must wrap up and return."""
        return self.function_max_duration - self.step_safety_seconds

    @property
    def step_lease_seconds(self) -> int:
        """A step lease outlives the function that holds it by a small margin."""
        return self.lease_seconds or self.function_max_duration + 5

    @property
    def sweep_stale_seconds(self) -> int:
        """A batch whose heartbeat is older than this, with no live lease, is re-kicked."""
        return self.sweep_stale_after or self.step_lease_seconds

    @property
    def process_step_url(self) -> str:
        return f"{self.public_base_url}/api/batch/process-step"


def _mongodb_uri(r: _Reader) -> str:
    uri = r.str("MONGODB_URI", required=True)
    assert uri is not None
    if not uri.startswith(("mongodb://", "mongodb+srv://")):
        raise ConfigError("MONGODB_URI must start with mongodb:// or mongodb+srv://")
    return uri


_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION_NAME = re.compile(r"[a-z]{2}(-[a-z0-9]+)+-[0-9]")


def _model_prices(r: _Reader) -> tuple[tuple[str, float, float], ...]:
    try:
        prices = parse_prices(r.raw("MODEL_PRICES"))
    except ValueError as exc:
        raise ConfigError(f"MODEL_PRICES is not a valid price table: {exc}") from None
    return tuple((model, inp, out) for model, (inp, out) in sorted(prices.items()))


def _storage(r: _Reader) -> dict[str, Any]:
    """The object storage settings (S3_*, AWS_*, and the limits that only apply with storage)."""
    bucket = r.str("S3_BUCKET")
    if bucket is not None and not _BUCKET_NAME.fullmatch(bucket):
        raise ConfigError(f"S3_BUCKET must be an S3 bucket name (3-63 of a-z 0-9 . -), got {bucket!r}")
    region = r.str("S3_REGION") or r.str("AWS_REGION") or "us-east-1"
    if not _REGION_NAME.fullmatch(region):
        raise ConfigError(f"S3_REGION must be an AWS region such as ca-central-1, got {region!r}")
    key_id, secret = r.str("AWS_ACCESS_KEY_ID"), r.str("AWS_SECRET_ACCESS_KEY")
    if (key_id is None) != (secret is None):
        raise ConfigError("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together (or neither: a role)")
    return {
        "s3_bucket": bucket,
        "s3_region": region,
        "s3_endpoint_url": r.url("S3_ENDPOINT_URL"),
        "aws_access_key_id": key_id,
        "aws_secret_access_key": secret,
        "aws_session_token": r.str("AWS_SESSION_TOKEN"),
        # A direct upload is downloaded to /tmp (512 MB on Vercel) to be read.
        "max_upload_bytes_direct": r.int("MAX_UPLOAD_BYTES_DIRECT", 100 * 1024 * 1024, low=1024,
                                         high=400 * 1024 * 1024),
        "max_batch_rows_direct": r.int("MAX_BATCH_ROWS_DIRECT", 100_000, low=1, high=1_000_000),
        "retention_days": r.int("RETENTION_DAYS", 30, low=1, high=3650),
        "export_link_rows": r.int("EXPORT_LINK_ROWS", 2_000, low=1, high=10_000_000),
        "ingest_window_rows": r.int("INGEST_WINDOW_ROWS", 20_000, low=1, high=1_000_000),
        "ingest_chunk_rows": r.int("INGEST_CHUNK_ROWS", 1_000, low=1, high=100_000),
    }


def _jwt_secret(r: _Reader) -> str:
    secret = r.str("JWT_SECRET", required=True)
    assert secret is not None
    if len(secret) < 32:
        raise ConfigError("JWT_SECRET must be at least 32 characters")
    return secret


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return Settings.from_env(os.environ)
