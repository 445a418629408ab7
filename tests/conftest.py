"""Shared fixtures: the reference data and one quick-profile model trained per test session.

Before anything runs, the product's writable locations (models, processed data, database,
the model signing key) are pointed at a temporary folder, so tests never touch a user's own
models, key or data. The reference data is read from ``TERMDEPOSIT_DATA`` (``../shared/data``
when not set).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

if not os.environ.get("TERMDEPOSIT_DATA"):
    default = (
        SHARED_DATA
        if (SHARED_DATA / "bank-additional-full.csv").is_file()
        else (PROJECT_ROOT / "data" / "raw")
    )
    os.environ["TERMDEPOSIT_DATA"] = str(default)
_SESSION_ROOT = Path(tempfile.mkdtemp(prefix="termdeposit-tests-"))
os.environ["TERMDEPOSIT_MODELS"] = str(_SESSION_ROOT / "models")
os.environ["TERMDEPOSIT_PROCESSED"] = str(_SESSION_ROOT / "processed")
os.environ["TERMDEPOSIT_DB_URL"] = f"sqlite:///{_SESSION_ROOT / 'termdeposit.db'}"
# The model signing key of the session (created on first save), outside every models folder.
os.environ["TERMDEPOSIT_KEY_FILE"] = str(_SESSION_ROOT / "config" / "signing.key")
os.environ.pop("TERMDEPOSIT_SIGNING_KEY", None)
os.environ.setdefault("TERMDEPOSIT_LOG", "WARNING")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SESSION_ROOT, ignore_errors=True)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Folder holding the reference data files."""
    return Path(os.environ["TERMDEPOSIT_DATA"])


@pytest.fixture(scope="session")
def reference():
    """The reference data set, typed, with year/week columns (41,188 rows)."""
    from termdeposit.data.dataset import load_reference

    return load_reference()


@pytest.fixture(scope="session")
def trained_version(reference) -> str:
    """Train the quick profile once per session into the session's models folder."""
    from termdeposit.services.training import train_and_register

    return train_and_register("quick", promote_to_production=True, random_state=0)


@pytest.fixture(scope="session")
def production_model(trained_version):
    """The session's trained model, loaded through the one load function."""
    from termdeposit.modeling import registry

    return registry.load_model(trained_version)


@pytest.fixture()
def models_copy(trained_version, tmp_path, monkeypatch) -> Path:
    """A private copy of the session's models folder, for tests that change the registry."""
    source = Path(os.environ["TERMDEPOSIT_MODELS"])
    target = tmp_path / "models"
    shutil.copytree(source, target)
    monkeypatch.setenv("TERMDEPOSIT_MODELS", str(target))
    return target


@pytest.fixture(scope="session")
def week_cohort(reference):
    """A demo cohort: the customers of week 39 with their outcomes (as a DataFrame)."""
    from termdeposit.data.dataset import make_cohort

    return make_cohort(reference, 39, with_outcomes=True)


@pytest.fixture(autouse=True)
def _close_test_stores():
    """Close the stores a test opened (one database per test): their pooled connections
    would otherwise stay open for the whole session, three files each on SQLite, until the
    process runs out of file descriptors."""
    from termdeposit.storage import store

    opened_before = store.open_store_urls()
    yield
    store.close_stores(keep=opened_before)


@pytest.fixture()
def ops_db(tmp_path, monkeypatch, trained_version):
    """A fresh operations database (SQLite) for one test; CLI, app and API read it through
    TERMDEPOSIT_DB_URL."""
    from termdeposit.storage import store

    url = f"sqlite:///{tmp_path / 'ops.db'}"
    monkeypatch.setenv("TERMDEPOSIT_DB_URL", url)
    return store.open_store(url)


@pytest.fixture()
def scored_small(ops_db, production_model):
    """An operations database in which ``fixtures/cohort_small.csv`` was scored and logged
    (cohort 1)."""
    from corpus_support import log_small_cohort

    assert log_small_cohort(ops_db, production_model) == 1
    return ops_db


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    """A fresh, empty database URL: a SQLite file, or a schema on the PostgreSQL server."""
    from store_support import drop_pg_schema, pg_schema_url

    from termdeposit.storage import store

    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ops.db'}"
        return
    url, schema = pg_schema_url()
    yield url
    store._STORES.pop(url, None)
    drop_pg_schema(schema)


@pytest.fixture(scope="session")
def s3_endpoint():
    """A local S3-compatible server on 127.0.0.1 for the session (see tests/s3_support.py); the
    product reaches it through the standard AWS variables, set here."""
    from s3_support import S3_ENV, TEST_CREDENTIALS, s3_server

    saved = {k: os.environ.get(k) for k in (*TEST_CREDENTIALS, "AWS_ENDPOINT_URL")}
    with s3_server() as endpoint:
        if not os.environ.get(S3_ENV):
            os.environ.update(TEST_CREDENTIALS)
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        try:
            yield endpoint
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture()
def s3_models(s3_endpoint, monkeypatch) -> str:
    """An empty ``s3://`` models location (a fresh bucket) used as TERMDEPOSIT_MODELS."""
    from s3_support import new_bucket

    url = f"s3://{new_bucket(s3_endpoint)}/models"
    monkeypatch.setenv("TERMDEPOSIT_MODELS", url)
    return url
