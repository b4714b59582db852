"""All settings of the service, in one frozen object built once at the edge (CLI, worker start, web app).

Sources, highest priority first: explicit arguments, the settings a parent process handed down
(``FLATQC_SETTINGS_JSON``, see :func:`settings_env`), environment variables ``FLATQC_*`` (ESO-style ``DFS_PRODUCT``,
``DFS_RAW``, ``QC_REFERENCE``, ``QC_OUTPUT`` are honoured when the prefixed ones are unset), the TOML file named by
``FLATQC_CONFIG``, then the defaults below (design.md, data contract).
Nested QC limits per profile: ``FLATQC_CRIRES__SNR_LIMIT=200`` or a ``[crires]`` table in the TOML file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from flatqc.urls import with_password
from qc.config import QCConfig
from qc.profiles import CRIRES, CRIRES_PLUS, PROFILES, profile_named

HANDED_DOWN = "FLATQC_SETTINGS_JSON"
"""Environment variable holding the settings a parent process resolved, as JSON, for its children."""
DEMO_CONFIG = Path("var/demo/flatqc.toml")
"""Where ``make demo`` writes its settings (for ``FLATQC_CONFIG``), relative to the folder it ran in."""

StrList = Annotated[list[str], NoDecode]
"""A list given in the environment as a comma- or space-separated string."""


def _eso_path(name: str, default: str) -> Any:
    """A path read from ``FLATQC_<name>``, else the ESO-style ``<name>``."""
    return Field(Path(default), validation_alias=AliasChoices(f"FLATQC_{name}", name, name.lower()))


class Settings(BaseSettings):
    """Service settings; see README "Settings" for the table of names and defaults."""

    model_config = SettingsConfigDict(
        env_prefix="FLATQC_", env_nested_delimiter="__", frozen=True, populate_by_name=True, extra="ignore",
    )

    dfs_product: Path = _eso_path("DFS_PRODUCT", "./var/dfs_product")
    dfs_raw: Path = _eso_path("DFS_RAW", "./var/dfs_raw")
    qc_reference: Path = _eso_path("QC_REFERENCE", "./var/reference")
    qc_output: Path = _eso_path("QC_OUTPUT", "./var/qc")
    watched_raw_types: StrList = ["DARK", "FLAT", "FLT_WIN"]
    """RAW_TYPE folders under DFS_PRODUCT that are watched (contract 1)."""
    thresholds_dir: Path | None = None
    """Folder of dated threshold files ``*.toml`` (contract 9); unset: the built-in thresholds."""
    run_dir: Path = Path("./var/run")
    """Working folder of ``flatqc up``: its own Redis data and the URL file other commands read."""
    db_password: SecretStr | None = None
    """Joined to ``db_url`` when given (any character works; in the URL itself it would need percent-encoding)."""
    db_url: str = "sqlite:///./var/flatqc.db"
    redis_password: SecretStr | None = None
    """Joined to ``redis_url`` when given, as ``db_password``."""
    redis_url: str | None = None
    """Unset: ``flatqc up`` starts its own Redis. With a password: ``redis://:secret@host:6379/0``."""
    queue_name: str = "flatqc"
    alert_urls: StrList = []
    """apprise URLs (mailto://, slack://, matrix://, json://...), comma or space separated."""
    alert_retries: int = 3
    """Delivery attempts per alert and channel (only the channels that failed are tried again)."""
    alert_deadline_s: float = 10.0
    """Total time one delivery attempt to one channel may take; a send still running then is abandoned."""
    notify_warnings: bool = False
    """Also notify trend-limit warnings (QC1 outside the HealthCheck limits), not only failed certifications."""
    public_url: str = "http://127.0.0.1:8080"
    """The dashboard's address as readers of a notification reach it (links to set pages and cover sheets)."""
    workers: int = 2
    realtime_workers: int = Field(default=1, ge=0)
    """Workers of ``flatqc up`` that take only real-time QC jobs, no picture or backfill job, so a set of tonight never
    waits for such a job to end; at most all workers but one (:meth:`reserved_workers`)."""
    max_start_failures: int = Field(default=5, ge=1)
    """``flatqc up`` stops, saying why, when a worker fails at start this many times in a row (restarts back off)."""
    instrument: str = "auto"
    """``auto`` detects the profile from each file's headers; ``crires`` or ``crires+`` accepts only that one."""
    incomplete_timeout_s: float = 600.0
    """A set still incomplete after this long is reported as incomplete (contract 2)."""
    rescan_interval_s: float = 60.0
    """The watcher rescans the whole tree this often (the ledger is the truth)."""
    file_settle_s: float = 1.0
    """A file counts as complete once its size and mtime stayed the same this long and its FITS structure is whole."""
    job_timeout_s: int = 600
    job_heartbeat_s: int = 5
    """Workers refresh the heartbeat of a running job this often [s]."""
    stale_job_s: float = 60.0
    """A running job without heartbeat for this long belongs to a dead worker and is queued again [s]."""
    stalled_job_s: float = Field(default=60.0, gt=0)
    """A running job whose work-horse reported no progress for this long (stopped, hung) is ended and queued
    again; the horse reports every ``job_heartbeat_s`` [s]."""
    max_auto_requeues: int = Field(default=10, ge=0)
    """The repair pass queues a set version again at most this often on its own; then the set is failed, saying
    so, and waits for Retry on /queue."""
    truncated_after_s: float = 10.0
    """A file whose size stays the same this long but whose FITS structure is still incomplete is rejected [s]."""
    job_retry_intervals: StrList = ["10", "60", "300"]
    """Back-off between retries of a failed job [s]; the number of entries is the number of retries."""
    transient_retry_s: float = 60.0
    """A set failed by a transient cause (database, disk full) is queued again this long after it failed [s]."""
    unreadable_give_up_s: float = 3600.0
    """A file that cannot be read for its permissions (EACCES, EPERM) is retried this long, then rejected [s]."""
    overdue_retry_s: float = 30.0
    """A scheduled retry this late (the workers' scheduler died, e.g. with Redis) is queued by the watcher [s]."""
    watcher_stale_s: float = 300.0
    """``/healthz`` is unhealthy when the watcher's heartbeat (its last completed round) is older than this [s]."""
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    web_token: str | None = None
    """Required for state-changing web actions when the server is not bound to loopback."""
    web_secret_key: str | None = None
    """Signs dashboard sessions (CSRF tokens) in every web process; unset: ``<run_dir>/web-secret`` (mode 0600),
    created once."""
    crires: QCConfig = CRIRES.default_config
    """QC limits of CRIRES (``FLATQC_CRIRES__SNR_LIMIT``, ``[crires]``); the field of each profile is named by its
    ``settings_name``."""
    crires_plus: QCConfig = CRIRES_PLUS.default_config

    @field_validator("watched_raw_types", "alert_urls", "job_retry_intervals", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part for part in value.replace(",", " ").split() if part]
        return value

    @field_validator("db_url", "redis_url")
    @classmethod
    def _join_password(cls, url: str | None, info: ValidationInfo) -> str | None:
        password = info.data.get(f"{str(info.field_name).removesuffix('_url')}_password")
        return with_password(url, password.get_secret_value()) if url and password else url

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        handed_down = os.environ.get(HANDED_DOWN)
        if handed_down:
            sources.insert(1, InitSettingsSource(settings_cls, init_kwargs=json.loads(handed_down)))
        config_file = os.environ.get("FLATQC_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    def qc_config(self, profile: str) -> QCConfig:
        """The QC limits of one instrument profile."""
        return getattr(self, profile_named(profile).settings_name)

    def window_starty_defaults(self) -> dict[str, int]:
        """First window row (1-based) assumed when ``DET WINDOW STARTY`` is absent, per profile name."""
        return {name: self.qc_config(name).default_window_starty for name in PROFILES}

    def reserved_workers(self, workers: int) -> int:
        """How many of ``workers`` are reserved for real time: ``realtime_workers``, leaving one for backfill."""
        return max(0, min(self.realtime_workers, workers - 1))

    @property
    def retry_intervals(self) -> list[int]:
        return [int(v) for v in self.job_retry_intervals]


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment that makes ``Settings()`` in a child process what ``settings`` is here: every setting that was
    given (in code, environment or config file) as JSON in ``FLATQC_SETTINGS_JSON``; defaults stay defaults.
    The passwords are in the URLs already (and JSON would show them as ``**********``)."""
    given = settings.model_dump(mode="json", exclude_unset=True, exclude={"db_password", "redis_password"})
    return {HANDED_DOWN: json.dumps(given)}
