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
import re
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select

from termdeposit.data.cohort_file import validate_cohort
from termdeposit.data.reader import open_table
from termdeposit.modeling.predict import cohort_probabilities

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


#: The chunk setting (``TERMDEPOSIT_CHUNK_MB``) the tests of the other paths use: small, so a
#: large variant of a corpus file (:func:`large_variant`) streams in several chunks and Dask
#: partitions while the tests stay fast. One test also reads a real file over the default 64 MiB.
TEST_CHUNK_MB = "0.03"
#: Size of the large variants: several times the test chunk setting.
LARGE_BYTES = 160_000
_WORKBOOKS = (".xlsx", ".xlsm", ".xls")
_ID_NAMES = ("customer_id", "id")
_ID_LIMIT = 128


def _prefixed(line: str, copy: int, separator: str) -> str:
    """The line with ``copy-`` put in front of its first cell's value (inside quotes, after
    leading blanks); a blank first cell stays blank. Ids at the length limit keep their length."""
    match = re.match(r'[ \t]*"?', line)
    start = match.end() if match else 0
    end = line.find('"' if line[start - 1 : start] == '"' else separator, start)
    value = line[start : end if end >= 0 else len(line)]
    if not value.strip():
        return line
    prefix = f"{copy}-"
    new = prefix + value
    if len(value) >= _ID_LIMIT:
        new = prefix + value[len(prefix) :]
    return line[:start] + new + line[start + len(value) :]


def large_variant(name: str, target: int = LARGE_BYTES) -> bytes | None:
    """The corpus file ``name`` grown past ``target`` bytes by repeating its rows.

    Built here, not by the product's reader: text is handled as Latin-1 (byte for byte) or
    UTF-16, the header kept, the rows repeated with ``k-`` put in front of their customer ids
    (so repeated customers stay distinct) in the file's own separator, quoting and line ends. A
    file whose quotes do not pair up keeps its broken rows once, at the end. Binary files are
    repeated as they are. Returns None for workbooks (read whole at any size) and the empty file.
    """
    data = (CORPUS / name).read_bytes()
    if name.endswith(_WORKBOOKS) or not data:
        return None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or name == "utf16_without_bom.csv":
        codec = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-16-le"
    elif b"\x00" in data:
        return data * (target // len(data) + 1)
    else:
        codec = "latin-1"
    text = data.decode(codec)
    newline = "\r" if "\r" in text and "\n" not in text else "\n"
    header, _, body = text.partition(newline)
    if not body.strip():
        body = newline
    if not body.endswith(newline):
        body += newline
    separator = max(",;\t", key=header.count)
    first = header.split(separator)[0].strip().strip('"').lstrip("\ufeffï»¿").lower()
    lines = body.split(newline)[:-1]
    unpaired = body.count('"') % 2 == 1
    copies = max(2, target // max(len(body.encode(codec)), 1) + 1)
    out = [header]
    for copy in range(1, copies + 1):
        last = copy == copies
        for line in lines:
            if unpaired and not last:
                line = line.replace('"', "")
            out.append(_prefixed(line, copy, separator) if first in _ID_NAMES else line)
    return (newline.join(out) + newline).encode(codec)


def grown_scores(model: Any, name: str | Path, copies: int) -> np.ndarray:
    """The probabilities of a cohort file grown to ``copies`` copies of its rows, scored as
    one whole cohort by the product's own function (the week's rate followed over all of its
    rows, as every path must give them), computed without the path under test.

    A grown cohort is a larger week than the small file: its forecast rate and the error of
    that rate depend on its size and make-up, so its scores are not the small file's repeated.
    """
    path = name if isinstance(name, Path) else CORPUS / name
    cohort = validate_cohort(open_table(path).read())
    rows = np.tile(np.arange(len(cohort.frame)), copies)
    frame = cohort.frame.iloc[rows].reset_index(drop=True)
    return cohort_probabilities(model, frame)
