"""Shared by the bad-input corpus tests of every channel (command line, dashboard, API).

The corpus is in ``fixtures/bad_inputs/`` (cohort files, ``cases.json``) and
``fixtures/bad_inputs/outcomes/`` (outcomes files, their own ``cases.json``); see
``make_corpus.py`` there. A refusal must leave the operations database (row counts of every
table) and the models folder (a digest of every file) exactly as they were.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CORPUS = FIXTURES / "bad_inputs"
CASES: list[dict[str, Any]] = json.loads((CORPUS / "cases.json").read_text())
OUTCOMES = CORPUS / "outcomes"
OUTCOME_CASES: list[dict[str, Any]] = json.loads((OUTCOMES / "cases.json").read_text())
#: The cohort the outcomes corpus is about (five customers of week 50), and its week label.
SMALL_COHORT = FIXTURES / "cohort_small.csv"
SCORED_WEEK = "2009-07 wk5"


def case_id(case: dict[str, Any]) -> str:
    """The test id of a corpus case: its file name."""
    return case["file"]


def tree_digest(root: Path) -> str:
    """sha256 over every file's relative path and bytes under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def models_digest() -> str:
    """Digest of the models folder the product uses now (``TERMDEPOSIT_MODELS``)."""
    return tree_digest(Path(os.environ["TERMDEPOSIT_MODELS"]))


def store_counts(ops_store: Any) -> dict[str, int]:
    """Rows in every table of the operations database (cohorts, predictions, outcomes, ...)."""
    from termdeposit.storage import store

    def work(conn: Any) -> dict[str, int]:
        return {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in store.metadata.sorted_tables
        }

    return ops_store.transaction(work)


def log_small_cohort(ops_store: Any, model: Any) -> int:
    """Score ``cohort_small.csv`` with ``model`` and log it (week 2009-07 wk5); its cohort id."""
    from termdeposit.data.cohort_file import load_cohort
    from termdeposit.modeling.predict import file_sha256, score_frame

    data = SMALL_COHORT.read_bytes()
    scored = score_frame(model, load_cohort(data, SMALL_COHORT.name).frame)
    logged = ops_store.log_scoring(
        scored,
        file_sha256=file_sha256(data),
        model_version=model.version,
        threshold=model.threshold,
        name=SMALL_COHORT.name,
        week_label=SCORED_WEEK,
    )
    return int(logged.cohort_id)


def cohort_refusal(name: str) -> str | None:
    """The message the product refuses the corpus cohort file ``name`` with (None: accepted).

    Every channel must give exactly this message: the CLI after ``Error:``, the API as
    ``error``, the dashboard as the first paragraph of its error box.
    """
    from termdeposit.core.errors import TermDepositError
    from termdeposit.data.cohort_file import load_cohort

    try:
        load_cohort((CORPUS / name).read_bytes(), name)
    except TermDepositError as exc:
        return exc.message
    return None


def outcomes_refusal(case: dict[str, Any], ops_store: Any) -> str:
    """The message recording a refused outcomes case gives (it stores nothing)."""
    from termdeposit.core.errors import TermDepositError
    from termdeposit.services.outcomes import record_feedback

    data = (OUTCOMES / case["file"]).read_bytes()
    try:
        record_feedback(data, case["file"], case.get("cohort"), store=ops_store)
    except TermDepositError as exc:
        return exc.message
    raise AssertionError(f"{case['file']} was recorded, but the corpus says it is refused")
