"""Helpers of the store tests: PostgreSQL test schemas, scored weeks, hashes.

PostgreSQL tests read ``TERMDEPOSIT_TEST_PG_URL`` (``scripts/start_test_postgres.sh`` starts a
server and prints it); the ``db_url`` fixture (conftest.py) gives each test its own schema.
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from termdeposit.data.cohort_file import validate_cohort
from termdeposit.data.dataset import make_cohort
from termdeposit.modeling.predict import DECISION_NO, DECISION_YES

PG_ENV = "TERMDEPOSIT_TEST_PG_URL"


def pg_schema_url() -> tuple[str, str]:
    """A URL whose search_path is a fresh schema on the test server, and that schema."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.fail(
            f"{PG_ENV} is not set: start the test server with scripts/start_test_postgres.sh "
            "and export the URL it prints (or deselect with -m 'not postgres')."
        )
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}", schema


def drop_pg_schema(schema: str) -> None:
    engine = sa.create_engine(os.environ[PG_ENV])
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


def scored_week(reference: pd.DataFrame, week: int, seed: int = 0) -> pd.DataFrame:
    """A week of the reference data as the scoring functions return it (random scores)."""
    frame = validate_cohort(make_cohort(reference, week).astype(str)).frame
    rng = np.random.default_rng(seed)
    frame.insert(1, "probability", rng.random(len(frame)))
    frame.insert(2, "decision", np.where(frame["probability"] >= 0.5, DECISION_YES, DECISION_NO))
    return frame


def sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()
