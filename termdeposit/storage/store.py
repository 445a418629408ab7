"""The operations store: one object giving every part of the product its records.

:class:`Store` composes the repositories, one per group of tables, and keeps the calls the rest
of the product makes (``store.open_store(url).log_scoring(...)``, ``.cohorts()``, ...):

- :mod:`~termdeposit.storage.cohorts`: cohorts, their customers, scoring runs, predictions;
- :mod:`~termdeposit.storage.calllists`: call lists as issued and who is on them;
- :mod:`~termdeposit.storage.outcomes`: outcomes of calls, their uploads, training rows;
- :mod:`~termdeposit.storage.alerts`: monitoring alerts and their acknowledgement;
- :mod:`~termdeposit.storage.settings`: shared settings (the alert limits);
- :mod:`~termdeposit.storage.promotions`: the audit trail of model promotions;
- :mod:`~termdeposit.storage.deliveries`: alert deliveries (webhook, e-mail);
- :mod:`~termdeposit.storage.jobs`: the weekly job's steps and its lock;
- :mod:`~termdeposit.storage.database`: engine, transactions, URL handling, shared helpers.

The schema is brought up to date the first time a product opens a database (see
:mod:`~termdeposit.storage.migrations`). Every write is one transaction: a failure leaves
nothing half-written.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from termdeposit.core import config
from termdeposit.storage import migrations
from termdeposit.storage.alerts import AlertRepository
from termdeposit.storage.calllists import CallListRepository
from termdeposit.storage.cohorts import (
    CohortRepository,
    ScoringLog,
    read_scored_csv,
    source_sha256,
)
from termdeposit.storage.database import (
    BATCH,
    Database,
    StoreUnavailableError,
    current_user,
    now,
    safe_url,
)
from termdeposit.storage.deliveries import DeliveryRepository
from termdeposit.storage.jobs import JobRepository
from termdeposit.storage.outcomes import ConflictCheck, OutcomeRepository
from termdeposit.storage.promotions import PromotionRepository
from termdeposit.storage.settings import SettingsRepository
from termdeposit.storage.tables import (
    alerts,
    call_list_members,
    call_lists,
    cohort_customers,
    cohorts,
    metadata,
    outcome_uploads,
    outcomes,
    predictions,
    promotions,
    schema_info,
    scorings,
    settings_table,
)

__all__ = [
    "BATCH",
    "ScoringLog",
    "Store",
    "StoreUnavailableError",
    "alerts",
    "call_list_members",
    "call_lists",
    "cohort_customers",
    "cohorts",
    "current_user",
    "log_scored_output",
    "log_scoring",
    "metadata",
    "now",
    "open_store",
    "outcome_uploads",
    "outcomes",
    "predictions",
    "promotions",
    "read_scored_csv",
    "safe_url",
    "schema_info",
    "scorings",
    "settings_table",
    "source_sha256",
]


class Store:
    """Access to the operations database. Use :func:`open_store` to get one.

    The repositories are attributes (``cohort_repo``, ``call_list_repo``, ``outcome_repo``,
    ``alert_repo``, ``settings_repo``, ``promotion_repo``, ``delivery_repo``, ``job_repo``); the
    methods below hand each call to the repository that holds its tables (alert deliveries and
    job steps are used through their repositories).
    """

    def __init__(self, url: str) -> None:
        self.db = Database(url, upgrade=migrations.upgrade)
        self.url = url
        self.engine = self.db.engine
        self.dialect = self.db.dialect
        self.cohort_repo = CohortRepository(self.db)
        self.call_list_repo = CallListRepository(self.db)
        self.outcome_repo = OutcomeRepository(self.db, self.cohort_repo)
        self.alert_repo = AlertRepository(self.db)
        self.settings_repo = SettingsRepository(self.db)
        self.promotion_repo = PromotionRepository(self.db)
        self.delivery_repo = DeliveryRepository(self.db)
        self.job_repo = JobRepository(self.db)

    # -- the database ------------------------------------------------------------------------

    def check(self) -> Store:
        """Connect and bring the schema up to date; raise a clear error when unreachable."""
        self.db.check()
        return self

    def schema_revision(self) -> str | None:
        """The migration revision of the database (None for an empty one)."""
        return self.db._run(migrations.current_revision)

    def transaction(self, work: Callable[[Connection], Any]) -> Any:
        """Run ``work(conn)`` in one transaction of an up-to-date store (all or nothing)."""
        return self.db.transaction(work)

    def read(self, query: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Run a SELECT and return its rows as a DataFrame."""
        return self.db.read(query, params)

    def fingerprint(self) -> tuple[str, ...]:
        """Values that change whenever anything monitoring depends on changes (for caches)."""

        def work(conn: Connection) -> tuple[str, ...]:
            queries = [
                select(func.count()).select_from(table)
                for table in (cohorts, scorings, call_lists, outcomes, alerts)
            ]
            queries += [
                select(func.count()).where(alerts.c.acknowledged_at.is_not(None)),
                select(func.max(settings_table.c.updated_at)),
            ]
            return tuple(str(conn.execute(q).scalar()) for q in queries)

        return self.db.transaction(work)

    # -- cohorts and predictions (cohorts.py) --------------------------------------------------

    def log_scoring(
        self,
        scored: pd.DataFrame | Mapping[str, Any] | Iterable[pd.DataFrame],
        *,
        file_sha256: str,
        model_version: str,
        threshold: float | None = None,
        top_n: int | None = None,
        name: str | None = None,
        week_label: str | None = None,
        source: str = "cli",
        user: str | None = None,
    ) -> ScoringLog:
        """Log one scoring of a cohort file (see :meth:`CohortRepository.log_scoring`)."""
        return self.cohort_repo.log_scoring(
            scored,
            file_sha256=file_sha256,
            model_version=model_version,
            threshold=threshold,
            top_n=top_n,
            name=name,
            week_label=week_label,
            source=source,
            user=user,
        )

    def cohorts(self) -> pd.DataFrame:
        """Every cohort, oldest first: id, name, week label, rows, uploaded at, hash."""
        return self.cohort_repo.cohorts()

    def find_cohort(self, ref: str | int) -> dict[str, Any]:
        """A cohort by id, week label, file name or sha256 prefix (8+ characters)."""
        return self.cohort_repo.find_cohort(ref)

    def cohort_inputs(self, cohort_id: int) -> pd.DataFrame:
        """The customers of a cohort with their 19 inputs (typed as when scored)."""
        return self.cohort_repo.cohort_inputs(cohort_id)

    def customer_cohorts(self, customer_ids: Sequence[str]) -> pd.DataFrame:
        """For each given customer id, the cohorts it belongs to (customer_id, cohort_id)."""
        return self.cohort_repo.customer_cohorts(customer_ids)

    def scoring_runs(self, cohort_id: int | None = None) -> pd.DataFrame:
        """Scoring runs (newest last), optionally of one cohort."""
        return self.cohort_repo.scoring_runs(cohort_id)

    def predictions(self, scoring_id: int) -> pd.DataFrame:
        """The logged predictions of one scoring run, in rank order."""
        return self.cohort_repo.predictions(scoring_id)

    # -- call lists (calllists.py) -------------------------------------------------------------

    def record_call_list(
        self,
        *,
        cohort_id: int,
        model_version: str,
        members: pd.DataFrame,
        threshold: float | None,
        call_cost: float,
        subscription_value: float,
        capacity: int | None = None,
        ab_share: float = 0.0,
        ab_seed: int | None = None,
        user: str | None = None,
    ) -> int:
        """Record a call list as issued; return its id (see
        :meth:`CallListRepository.record_call_list`)."""
        return self.call_list_repo.record_call_list(
            cohort_id=cohort_id,
            model_version=model_version,
            members=members,
            threshold=threshold,
            call_cost=call_cost,
            subscription_value=subscription_value,
            capacity=capacity,
            ab_share=ab_share,
            ab_seed=ab_seed,
            user=user,
        )

    def call_lists(self, cohort_id: int | None = None) -> pd.DataFrame:
        """Call lists issued (oldest first), optionally for one cohort."""
        return self.call_list_repo.call_lists(cohort_id)

    def call_list_members(self, call_list_id: int) -> pd.DataFrame:
        """Customers of a call list with their group, to-call flag and probability."""
        return self.call_list_repo.call_list_members(call_list_id)

    # -- outcomes (outcomes.py) ----------------------------------------------------------------

    def record_outcomes(
        self,
        rows: pd.DataFrame,
        *,
        file_sha256: str,
        name: str,
        user: str | None = None,
        check: ConflictCheck | None = None,
    ) -> dict[str, int]:
        """Store outcomes all or nothing (see :meth:`OutcomeRepository.record_outcomes`)."""
        return self.outcome_repo.record_outcomes(
            rows, file_sha256=file_sha256, name=name, user=user, check=check
        )

    def ingest_labelled(
        self,
        customers: pd.DataFrame,
        outcome_rows: pd.DataFrame,
        *,
        file_sha256: str,
        name: str,
        week_label: str | None = None,
        user: str | None = None,
    ) -> tuple[int, bool, int]:
        """Store a labelled data drop as a cohort plus its outcomes, in one transaction
        (see :meth:`OutcomeRepository.ingest_labelled`)."""
        return self.outcome_repo.ingest_labelled(
            customers,
            outcome_rows,
            file_sha256=file_sha256,
            name=name,
            week_label=week_label,
            user=user,
        )

    def outcomes(self, cohort_id: int | None = None) -> pd.DataFrame:
        """Stored outcomes: cohort_id, customer_id, called, subscribed, recorded_at."""
        return self.outcome_repo.outcomes(cohort_id)

    def outcome_uploads(self) -> pd.DataFrame:
        """Every outcome upload that added rows, oldest first."""
        return self.outcome_repo.outcome_uploads()

    def training_rows(self) -> pd.DataFrame:
        """Called customers with a known outcome: their inputs and ``y`` (oldest first)."""
        return self.outcome_repo.training_rows()

    # -- alerts and settings (alerts.py, settings.py) ------------------------------------------

    def record_alerts(self, drafts: Sequence[dict[str, Any]]) -> pd.DataFrame:
        """Store or refresh alerts; return them (see :meth:`AlertRepository.record_alerts`)."""
        return self.alert_repo.record_alerts(drafts)

    def alerts(self, active_only: bool = True) -> pd.DataFrame:
        """Stored alerts, newest first; by default only those not acknowledged."""
        return self.alert_repo.alerts(active_only)

    def acknowledge_alert(self, alert_id: int, user: str | None = None) -> None:
        """Mark an alert as seen and handled (it leaves the banner; cron checks pass it)."""
        self.alert_repo.acknowledge_alert(alert_id, user)

    def get_setting(self, key: str, default: Any = None) -> Any:
        """A stored setting (JSON value), or ``default``."""
        return self.settings_repo.get_setting(key, default)

    def set_setting(self, key: str, value: Any, user: str | None = None) -> None:
        """Store a setting (JSON value), replacing the previous one."""
        self.settings_repo.set_setting(key, value, user)

    # -- promotions (promotions.py) ------------------------------------------------------------

    def record_promotion(
        self,
        *,
        action: str,
        version: str,
        previous: str | None,
        reason: str,
        user: str | None = None,
        at: dt.datetime | str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Record a promotion decision (promote, rollback, refused, ...); idempotent."""
        self.promotion_repo.record_promotion(
            action=action,
            version=version,
            previous=previous,
            reason=reason,
            user=user,
            at=at,
            details=details,
        )

    def sync_promotions(self, models_dir: Path | None = None) -> int:
        """Copy the registry's audit log (promotions.jsonl) into the store; return rows added."""
        return self.promotion_repo.sync_promotions(models_dir)

    def promotions(self) -> pd.DataFrame:
        """Every recorded promotion decision, oldest first."""
        return self.promotion_repo.promotions()


_STORES: dict[str, Store] = {}
_LOCK = threading.Lock()


def open_store(url: str | None = None) -> Store:
    """The store at ``url`` (default ``TERMDEPOSIT_DB_URL``), schema upgraded, reachable.

    Raises:
        StoreUnavailableError: the database cannot be reached, with what to do.
    """
    url = url or config.db_url()
    with _LOCK:
        store = _STORES.get(url)
        if store is None:
            store = Store(url)
            _STORES[url] = store
    return store.check()


def open_store_urls() -> list[str]:
    """The URLs of the stores open in this process (see :func:`close_stores`)."""
    with _LOCK:
        return list(_STORES)


def close_stores(keep: Iterable[str] = ()) -> None:
    """Close every open store but those at ``keep``: their connections are released and the
    next :func:`open_store` of their URL connects afresh.

    For a process that opened many databases in turn (the tests open one per test): each
    open store keeps its pooled connections, and a SQLite connection holds three files open.
    """
    kept = set(keep)
    with _LOCK:
        closing = [url for url in _STORES if url not in kept]
        stores = [_STORES.pop(url) for url in closing]
    for store in stores:
        store.engine.dispose()


def log_scoring(
    scored: pd.DataFrame | Mapping[str, Any],
    *,
    file_sha256: str,
    model_version: str,
    threshold: float | None = None,
    top_n: int | None = None,
    name: str | None = None,
    week_label: str | None = None,
    source: str = "cli",
    user: str | None = None,
    url: str | None = None,
) -> ScoringLog:
    """Log a scoring in the prediction log: the one call every front door makes.

    ``scored`` is the frame of :func:`~termdeposit.modeling.predict.score_frame` (id,
    probability, decision, rank, inputs); ``file_sha256`` the hash of the uploaded file's
    bytes (:func:`~termdeposit.modeling.predict.file_sha256`): the same file is one cohort.
    One transaction; returns the cohort and scoring ids (see :meth:`Store.log_scoring`).

    Raises:
        StoreUnavailableError: the database cannot be reached. Callers must not go on
            silently: score without logging only when the user chose so.
    """
    return open_store(url).log_scoring(
        scored,
        file_sha256=file_sha256,
        model_version=model_version,
        threshold=threshold,
        top_n=top_n,
        name=name,
        week_label=week_label,
        source=source,
        user=user,
    )


def log_scored_output(
    store: Store,
    output: Path,
    source: Path,
    *,
    model_version: str,
    threshold: float | None,
    top_n: int | None,
    week_label: str | None = None,
    origin: str = "cli",
) -> ScoringLog:
    """Log the predictions of a scored output file (the CLI's path; large files in chunks)."""
    return store.log_scoring(
        read_scored_csv(output),
        file_sha256=source_sha256(source),
        model_version=model_version,
        threshold=threshold,
        top_n=top_n,
        name=Path(source).name,
        week_label=week_label,
        source=origin,
    )
