"""Configuration in one place: paths from the project root, overridable by environment.

Every path is read when asked for (not at import), so tests and deployments can point the
product elsewhere with ``TERMDEPOSIT_DATA``, ``TERMDEPOSIT_PROCESSED``, ``TERMDEPOSIT_MODELS``
and ``TERMDEPOSIT_DB_URL``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

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


def models_dir() -> Path:
    """Folder of versioned models (``TERMDEPOSIT_MODELS``, default models/)."""
    return _env_path("TERMDEPOSIT_MODELS", PROJECT_ROOT / "models")


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

    call_cost: float = 5.0
    subscription_value: float = 100.0
    capacity: int | None = None

    @property
    def break_even(self) -> float:
        """Probability above which a call pays for itself (cost / value)."""
        return self.call_cost / self.subscription_value

    def as_dict(self) -> dict[str, float | int | None]:
        """Return the settings as a plain dict (for logs, cards and exports)."""
        return asdict(self)


def default_settings() -> BusinessSettings:
    """Business defaults, overridable by ``TERMDEPOSIT_CALL_COST`` / ``..._SUBSCRIPTION_VALUE``."""
    return BusinessSettings(
        call_cost=float(os.environ.get("TERMDEPOSIT_CALL_COST", 5.0)),
        subscription_value=float(os.environ.get("TERMDEPOSIT_SUBSCRIPTION_VALUE", 100.0)),
    )
