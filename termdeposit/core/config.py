"""Configuration in one place: paths from the project root, overridable by environment.

Every path is read when asked for (not at import), so tests and deployments can point the
product elsewhere with ``TERMDEPOSIT_DATA``, ``TERMDEPOSIT_PROCESSED``, ``TERMDEPOSIT_MODELS``
(a folder or an ``s3://bucket/prefix``), ``TERMDEPOSIT_KEY_FILE`` (the model signing key) and
``TERMDEPOSIT_DB_URL``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from termdeposit.core.errors import TermDepositError
from termdeposit.core.money import DEFAULT_CALL_COST, DEFAULT_SUBSCRIPTION_VALUE, break_even

PROJECT_ROOT = Path(__file__).resolve().parents[1]

#: Where the UCI archive lives (outer zip holding the nested ``bank-additional.zip``).
DATA_URL = "https://archive.ics.uci.edu/static/public/222/bank+marketing.zip"
RAW_FILE_NAME = "bank-additional-full.csv"
#: sha256 of ``bank-additional-full.csv`` as published (41,188 rows).
RAW_FILE_SHA256 = "74adfc578bf77a7ff4bb1ba4a9f8709d9e3c6907342959c2c8416847e0afb4d8"
RAW_ROWS = 41_188

MODEL_ARTIFACT = "best_model.pkl"
MODEL_CARD = "model_card.json"
PRODUCTION_POINTER = "PRODUCTION"

#: Largest cohort file accepted from the dashboard and the API, in megabytes.
MAX_UPLOAD_MB = 200
#: Default of :func:`chunk_bytes`, in megabytes.
CHUNK_MB = 64


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


def raw_data_dir() -> Path:
    """Folder holding ``bank-additional-full.csv`` (``TERMDEPOSIT_DATA``, default data/raw)."""
    return _env_path("TERMDEPOSIT_DATA", PROJECT_ROOT / "data" / "raw")


def raw_data_file() -> Path:
    """Path of the reference data file."""
    return raw_data_dir() / RAW_FILE_NAME


def processed_dir() -> Path:
    """Folder for processed tables (``TERMDEPOSIT_PROCESSED``, default data/processed)."""
    return _env_path("TERMDEPOSIT_PROCESSED", PROJECT_ROOT / "data" / "processed")


def is_url(location: str | Path) -> bool:
    """Whether a location is an object-storage URL (``s3://bucket/prefix``), not a folder."""
    return isinstance(location, str) and "://" in location


def models_location() -> str | Path:
    """Where versioned models live (``TERMDEPOSIT_MODELS``, default models/): a folder, or an
    object-storage prefix such as ``s3://bucket/models`` (kept as the URL string)."""
    value = os.environ.get("TERMDEPOSIT_MODELS", "").strip()
    if is_url(value):
        return value.rstrip("/")
    return _env_path("TERMDEPOSIT_MODELS", PROJECT_ROOT / "models")


def models_dir() -> Path:
    """Folder of versioned models (``TERMDEPOSIT_MODELS``, default models/) when it is a local
    folder; use :func:`models_location` where object storage is possible too."""
    location = models_location()
    if isinstance(location, str):
        raise ValueError(f"TERMDEPOSIT_MODELS is an object-storage URL, not a folder: {location}")
    return location


def signing_key_file() -> Path:
    """File holding this installation's model signing key (``TERMDEPOSIT_KEY_FILE``; default
    ``$XDG_CONFIG_HOME/termdeposit/signing.key``, else ``~/.config/termdeposit/signing.key``).

    Kept outside the models folder on purpose: whoever can write a model must not be able to
    sign it too.
    """
    value = os.environ.get("TERMDEPOSIT_KEY_FILE", "").strip()
    if value:
        return Path(value).expanduser().resolve()
    base = os.environ.get("XDG_CONFIG_HOME", "").strip()
    if not base:
        try:
            base = str(Path.home() / ".config")
        except RuntimeError:  # no home folder (a bare container user)
            base = str(PROJECT_ROOT / ".config")
    return Path(base).expanduser().resolve() / "termdeposit" / "signing.key"


def db_url() -> str:
    """SQLAlchemy URL of the store (``TERMDEPOSIT_DB_URL``, default a SQLite file in data/)."""
    default = f"sqlite:///{PROJECT_ROOT / 'data' / 'termdeposit.db'}"
    return os.environ.get("TERMDEPOSIT_DB_URL", default)


def chunk_bytes() -> int:
    """Files larger than this are scored in chunks (``TERMDEPOSIT_CHUNK_MB``, default 64).

    The one setting of how large files stream: the command line scores a CSV file above it in
    pieces of half this size (memory stays bounded), and the Dask engine splits one file into
    blocks of this size. It changes how rows stream, never what is read or scored.
    """
    value = os.environ.get("TERMDEPOSIT_CHUNK_MB")
    megabytes = float(value) if value else float(CHUNK_MB)
    return max(int(megabytes * 2**20), 1024)


@dataclass(frozen=True)
class BusinessSettings:
    """Money settings every figure depends on; shown and editable in the dashboard.

    Attributes:
        call_cost: cost of one call (agent time, telephony), in euros.
        subscription_value: margin the bank earns from one term-deposit subscription, in euros.
        capacity: calls the call centre can make this week, or None for no limit.
    """

    call_cost: float = DEFAULT_CALL_COST
    subscription_value: float = DEFAULT_SUBSCRIPTION_VALUE
    capacity: int | None = None

    @property
    def break_even(self) -> float:
        """Probability above which a call pays for itself (cost / value)."""
        return break_even(self.call_cost, self.subscription_value)

    def as_dict(self) -> dict[str, float | int | None]:
        """Return the settings as a plain dict (for logs, cards and exports)."""
        return asdict(self)


def default_settings() -> BusinessSettings:
    """Business defaults, overridable by ``TERMDEPOSIT_CALL_COST`` / ``..._SUBSCRIPTION_VALUE``."""
    return BusinessSettings(
        call_cost=float(os.environ.get("TERMDEPOSIT_CALL_COST", DEFAULT_CALL_COST)),
        subscription_value=float(
            os.environ.get("TERMDEPOSIT_SUBSCRIPTION_VALUE", DEFAULT_SUBSCRIPTION_VALUE)
        ),
    )


# -- operations: the weekly job and alert delivery ----------------------------------------------


def _env_int(name: str, default: int) -> int:
    """An integer setting from the environment, refused in words when it is not one."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise TermDepositError(
            f"{name} must be a whole number, not {raw!r}.", hint=f"For example {name}={default}."
        ) from exc


def _env_float(name: str, default: float) -> float:
    """A number setting from the environment, refused in words when it is not one."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise TermDepositError(
            f"{name} must be a number, not {raw!r}.", hint=f"For example {name}={default}."
        ) from exc


@dataclass(frozen=True)
class WeeklySettings:
    """What ``termdeposit weekly`` and ``termdeposit scheduler`` do, from the environment.

    Attributes:
        drops: folder (or ``s3://bucket/prefix``) the bank's weekly files arrive in
            (``TERMDEPOSIT_DROPS``).
        outbox: folder the call lists and weekly reports are written to (``TERMDEPOSIT_OUTBOX``).
        cron: when the scheduler runs the job, five cron fields (``TERMDEPOSIT_WEEKLY_CRON``,
            default Mondays 06:00).
        timezone: time zone of ``cron`` (``TERMDEPOSIT_TIMEZONE``, default UTC).
        retrain_every: retrain every this many weeks (``TERMDEPOSIT_RETRAIN_EVERY``; 0 never).
        retrain_profile: training profile of the scheduled retraining.
        retrain_families: model families searched (comma list; empty = all).
        recalibrate: ``platt``, ``intercept``, ``isotonic`` or ``none``: each week with new
            outcomes, refit the probability scale (``TERMDEPOSIT_RECALIBRATE``).
        recalibration_rows: outcomes the recalibration needs at least.
        holdout: share of each cohort drawn as the business-as-usual group (0 = no A/B test).
    """

    drops: Path | str
    outbox: Path
    cron: str = "0 6 * * 1"
    timezone: str = "UTC"
    retrain_every: int = 4
    retrain_profile: str = "quick"
    retrain_families: tuple[str, ...] = ()
    recalibrate: str = "platt"
    recalibration_rows: int = 1000
    holdout: float = 0.0


def _drops_location() -> Path | str:
    value = os.environ.get("TERMDEPOSIT_DROPS", "").strip()
    if is_url(value):
        return value.rstrip("/")
    return _env_path("TERMDEPOSIT_DROPS", PROJECT_ROOT / "data" / "drops")


def weekly_settings() -> WeeklySettings:
    """The weekly job's settings (``TERMDEPOSIT_DROPS``, ``..._OUTBOX``, ``..._WEEKLY_CRON``)."""
    families = os.environ.get("TERMDEPOSIT_RETRAIN_FAMILIES", "")
    return WeeklySettings(
        drops=_drops_location(),
        outbox=_env_path("TERMDEPOSIT_OUTBOX", PROJECT_ROOT / "data" / "outbox"),
        cron=os.environ.get("TERMDEPOSIT_WEEKLY_CRON", "").strip() or "0 6 * * 1",
        timezone=os.environ.get("TERMDEPOSIT_TIMEZONE", "").strip() or "UTC",
        retrain_every=_env_int("TERMDEPOSIT_RETRAIN_EVERY", 4),
        retrain_profile=os.environ.get("TERMDEPOSIT_RETRAIN_PROFILE", "").strip() or "quick",
        retrain_families=tuple(f.strip() for f in families.split(",") if f.strip()),
        recalibrate=os.environ.get("TERMDEPOSIT_RECALIBRATE", "").strip() or "platt",
        recalibration_rows=_env_int("TERMDEPOSIT_RECALIBRATION_ROWS", 1000),
        holdout=_env_float("TERMDEPOSIT_HOLDOUT", 0.0),
    )


@dataclass(frozen=True)
class AlertDeliverySettings:
    """Where alerts are sent, from the environment (every value may hold a secret).

    Attributes:
        webhook: incoming-webhook URL of a Slack or Teams channel (``TERMDEPOSIT_ALERT_WEBHOOK``).
        smtp_url: ``smtp://user:password@host:587?starttls=true&from=alerts@bank.example``
            or ``smtps://...`` (``TERMDEPOSIT_SMTP_URL``).
        email_to: recipients, comma separated (``TERMDEPOSIT_ALERT_EMAIL``).
        attempts: tries per delivery (``TERMDEPOSIT_ALERT_ATTEMPTS``).
        backoff: seconds before the second try, doubled before each next one
            (``TERMDEPOSIT_ALERT_BACKOFF``).
        timeout: seconds a webhook or mail server has to answer.
    """

    webhook: str = field(default="", repr=False)
    smtp_url: str = field(default="", repr=False)
    email_to: tuple[str, ...] = ()
    attempts: int = 4
    backoff: float = 2.0
    timeout: float = 10.0


def alert_delivery_settings() -> AlertDeliverySettings:
    """The alert delivery settings in force (see :class:`AlertDeliverySettings`)."""
    recipients = os.environ.get("TERMDEPOSIT_ALERT_EMAIL", "")
    return AlertDeliverySettings(
        webhook=os.environ.get("TERMDEPOSIT_ALERT_WEBHOOK", "").strip(),
        smtp_url=os.environ.get("TERMDEPOSIT_SMTP_URL", "").strip(),
        email_to=tuple(r.strip() for r in recipients.replace(";", ",").split(",") if r.strip()),
        attempts=max(1, _env_int("TERMDEPOSIT_ALERT_ATTEMPTS", 4)),
        backoff=max(0.0, _env_float("TERMDEPOSIT_ALERT_BACKOFF", 2.0)),
        timeout=max(0.5, _env_float("TERMDEPOSIT_ALERT_TIMEOUT", 10.0)),
    )
