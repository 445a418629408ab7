"""Every table of the store in one place: the repositories' tables on one :data:`metadata`.

Each table is declared next to the repository that reads and writes it; importing this module
imports them all, so :data:`metadata` is complete (what the migrations are checked against).
"""

from __future__ import annotations

from termdeposit.storage.alerts import alerts
from termdeposit.storage.calllists import call_list_members, call_lists
from termdeposit.storage.cohorts import cohort_customers, cohorts, predictions, scorings
from termdeposit.storage.database import metadata, schema_info
from termdeposit.storage.deliveries import alert_deliveries
from termdeposit.storage.jobs import job_locks, job_steps
from termdeposit.storage.outcomes import outcome_uploads, outcomes
from termdeposit.storage.promotions import promotions
from termdeposit.storage.settings import settings_table

__all__ = [
    "alert_deliveries",
    "alerts",
    "call_list_members",
    "call_lists",
    "cohort_customers",
    "cohorts",
    "job_locks",
    "job_steps",
    "metadata",
    "outcome_uploads",
    "outcomes",
    "predictions",
    "promotions",
    "schema_info",
    "scorings",
    "settings_table",
]
