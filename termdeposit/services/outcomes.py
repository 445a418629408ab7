"""Record outcomes (the feedback loop): read the week's call outcomes, store them all or none.

An outcomes file has one row per customer: the customer id, whether the customer was called
(yes/no) and whether they subscribed (yes/no). Recording is idempotent (the same rows again
change nothing) and all or nothing: unknown customer ids, ids found in several cohorts,
contradictory duplicates and outcomes that differ from those already stored are all listed
in one error, and nothing is stored. Called customers with outcomes become training rows for
the next retraining (:meth:`termdeposit.storage.store.Store.training_rows`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from termdeposit.core.errors import CohortValidationError, Problem, TermDepositError
from termdeposit.core.schema import ID_ALIASES, ID_COLUMN, ID_MAX_LENGTH
from termdeposit.data import contract
from termdeposit.data.cohort_file import read_table
from termdeposit.modeling.predict import file_sha256
from termdeposit.storage.store import Store, open_store

CALLED = "called"
SUBSCRIBED = "subscribed"
CALLED_ALIASES = ("called", "call", "contacted", "wascalled", "callmade")
SUBSCRIBED_ALIASES = ("subscribed", "y", "subscription", "converted", "outcome", "deposit")
YES = frozenset({"yes", "y", "1", "true", "t", "ja", "oui", "si"})
NO = frozenset({"no", "n", "0", "false", "f", "nein", "non"})
_LISTED = 5


class OutcomesError(CohortValidationError):
    """An outcomes file that cannot be recorded; nothing was stored.

    Attributes:
        problems: every problem (column, rows, what) for a table.
        details: one row per offending file row (row, customer_id, problem).
    """

    def __init__(
        self,
        problems: list[Problem],
        details: pd.DataFrame | None = None,
        summary: str = "The outcomes cannot be recorded.",
        hint: str = "Fix the file and upload it again; no outcome was stored.",
    ) -> None:
        super().__init__(problems, summary)
        self.hint = hint
        self.args = (f"{self.message} {self.hint}",)
        self.details = (
            details if details is not None else pd.DataFrame(columns=["row", ID_COLUMN, "problem"])
        )


@dataclass
class FeedbackResult:
    """What :func:`record_feedback` did."""

    rows: int
    added: int
    unchanged: int
    cohorts: list[int]
    notices: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One sentence for the user."""
        if self.added == 0:
            return (
                f"All {self.rows} outcomes were already recorded: nothing changed "
                "(uploading the same outcomes again is harmless)."
            )
        return (
            f"Recorded {self.added} new outcomes ({self.unchanged} already known) for "
            f"cohort{'s' if len(self.cohorts) > 1 else ''} "
            + ", ".join(str(c) for c in self.cohorts)
            + "."
        )


def _key(name: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).strip().lower())


def _rows_text(positions: pd.Index | np.ndarray | list[int]) -> str:
    """Spreadsheet row numbers (header = row 1) of 0-based positions, the first few listed."""
    rows = [str(int(i) + 2) for i in list(positions)[:_LISTED]]
    more = len(positions) - len(rows)
    return ", ".join(rows) + (f" (and {more} more)" if more > 0 else "")


def _flags(
    values: pd.Series, column: str, problems: list[Problem], details: list[dict]
) -> tuple[pd.Series, pd.Series]:
    """Parse yes/no cells to 1.0/0.0 (NaN when blank or unreadable); also return the blanks."""
    text = values.astype(str).str.strip().str.lower()
    yes, no = text.isin(YES), text.isin(NO)
    blank = text.eq("") | text.isin(["nan", "na", "none", "null"])
    bad = ~(yes | no | blank)
    if bad.any():
        examples = ", ".join(repr(v) for v in text[bad].unique()[:3])
        problems.append(
            Problem(column, _rows_text(text.index[bad]), f"expected yes or no, found {examples}")
        )
        details.extend(
            {"row": int(i) + 2, ID_COLUMN: None, "problem": f"{column}: {text[i]!r}"}
            for i in text.index[bad]
        )
    return pd.Series(np.where(yes, 1.0, np.where(no, 0.0, np.nan)), index=values.index), blank


def read_outcomes(data: bytes, filename: str = "outcomes") -> pd.DataFrame:
    """Read and check an outcomes file (CSV or xlsx); return customer_id, called, subscribed.

    Column names are matched loosely (``Customer ID``, ``id``; ``called``, ``contacted``;
    ``subscribed``, ``y``). Values are yes/no (also 1/0, true/false). A blank ``subscribed``
    means no for a customer who was not called. Identical repeated rows count once.

    Raises:
        OutcomesError: every problem at once (missing columns, unreadable values, blank ids,
            contradictory duplicates), with the rows.
    """
    raw = read_table(data, filename, kind="outcomes")
    mapping: dict[str, str] = {}
    for column in raw.columns:
        key = _key(column)
        if key in (_key(ID_COLUMN), *ID_ALIASES):
            mapping.setdefault(ID_COLUMN, column)
        elif key in CALLED_ALIASES:
            mapping.setdefault(CALLED, column)
        elif key in SUBSCRIBED_ALIASES:
            mapping.setdefault(SUBSCRIBED, column)
    missing = [c for c in (ID_COLUMN, CALLED, SUBSCRIBED) if c not in mapping]
    if missing:
        raise OutcomesError(
            [Problem(c, "", "missing column") for c in missing],
            summary="The outcomes file needs the columns customer_id, called and subscribed "
            f"(found: {', '.join(str(c) for c in raw.columns[:12])}).",
        )
    if raw.empty:
        raise OutcomesError([Problem("(file)", "", "no rows: the file holds only a header")])
    raw = raw.reset_index(drop=True)
    problems: list[Problem] = []
    details: list[dict] = []
    ids = raw[mapping[ID_COLUMN]].astype(str).str.strip()
    blank_id = ids.eq("") | ids.str.lower().isin(["nan", "none", "null"])
    if blank_id.any():
        problems.append(Problem(ID_COLUMN, _rows_text(ids.index[blank_id]), "blank customer id"))
        details.extend(
            {"row": int(i) + 2, ID_COLUMN: "", "problem": "blank customer id"}
            for i in ids.index[blank_id]
        )
    rule = contract.id_problems(ids[~blank_id], each_once=False)
    if rule:
        problems += rule
        broken = ids[~blank_id][contract.breaks_id_rule(ids[~blank_id])]
        details.extend(
            {
                "row": int(i) + 2,
                ID_COLUMN: v,
                "problem": "customer id "
                + (
                    f"longer than {ID_MAX_LENGTH} characters"
                    if len(v) > ID_MAX_LENGTH
                    else "holding a control character"
                ),
            }
            for i, v in zip(broken.index, broken, strict=True)
        )
    called, blank_called = _flags(raw[mapping[CALLED]], CALLED, problems, details)
    subscribed, blank_subscribed = _flags(raw[mapping[SUBSCRIBED]], SUBSCRIBED, problems, details)
    if blank_called.any():
        problems.append(
            Problem(CALLED, _rows_text(called.index[blank_called]), "blank: say yes or no")
        )
        details.extend(
            {"row": int(i) + 2, ID_COLUMN: ids[i], "problem": "called is blank"}
            for i in called.index[blank_called]
        )
    subscribed = subscribed.where(~(subscribed.isna() & called.eq(0.0)), 0.0)
    unknown_result = blank_subscribed & called.eq(1.0)
    if unknown_result.any():
        problems.append(
            Problem(
                SUBSCRIBED,
                _rows_text(subscribed.index[unknown_result]),
                "blank for a called customer: say yes or no (leave the row out if the "
                "outcome is not known yet)",
            )
        )
        details.extend(
            {"row": int(i) + 2, ID_COLUMN: ids[i], "problem": "subscribed is blank"}
            for i in subscribed.index[unknown_result]
        )
    frame = pd.DataFrame({ID_COLUMN: ids, CALLED: called, SUBSCRIBED: subscribed})
    frame["row"] = frame.index + 2
    repeated = frame[ID_COLUMN].duplicated(keep=False) & ~blank_id
    if repeated.any():
        variants = frame[repeated].groupby(ID_COLUMN)[[CALLED, SUBSCRIBED]].nunique(dropna=False)
        clashing = variants[(variants > 1).any(axis=1)].index
        clash_rows = frame.index[frame[ID_COLUMN].isin(clashing)]
        if len(clashing):
            examples = ", ".join(repr(c) for c in list(clashing)[:5])
            problems.append(
                Problem(
                    ID_COLUMN,
                    _rows_text(clash_rows),
                    f"{len(clashing)} customers appear more than once with different "
                    f"outcomes: {examples}",
                )
            )
            details.extend(
                {"row": int(i) + 2, ID_COLUMN: ids[i], "problem": "contradictory duplicate"}
                for i in clash_rows
            )
    if problems:
        raise OutcomesError(problems, _details_frame(details))
    frame = frame.drop_duplicates(subset=[ID_COLUMN], keep="first")
    frame[CALLED] = frame[CALLED].astype(bool)
    frame[SUBSCRIBED] = frame[SUBSCRIBED].astype(bool)
    frame.attrs["repeated_rows"] = int(len(raw) - len(frame))
    return frame.reset_index(drop=True)


def _details_frame(details: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(details, columns=["row", ID_COLUMN, "problem"])
    return frame.sort_values("row", kind="stable").reset_index(drop=True)


def assign_cohorts(
    frame: pd.DataFrame, store: Store, cohort: str | int | None = None
) -> pd.DataFrame:
    """Add ``cohort_id`` to outcomes: the named cohort, or the one cohort holding each id.

    Raises:
        OutcomesError: ids in no scored cohort (or not in the named one), or in several
            cohorts when none was named.
    """
    ids = frame[ID_COLUMN].tolist()
    membership = store.customer_cohorts(ids)
    problems: list[Problem] = []
    details: list[dict] = []
    out = frame.copy()
    if cohort is not None:
        chosen = store.find_cohort(cohort)
        members = set(membership.loc[membership["cohort_id"] == chosen["id"], ID_COLUMN])
        unknown = ~out[ID_COLUMN].isin(members)
        where = f"cohort {chosen['id']} ({chosen['week_label']}, {chosen['name']})"
        out["cohort_id"] = int(chosen["id"])
    else:
        counts = membership.groupby(ID_COLUMN)["cohort_id"].agg(["nunique", "max"])
        found = out[ID_COLUMN].map(counts["nunique"]).fillna(0).astype(int)
        unknown = found.eq(0)
        where = "any scored cohort"
        several = found.gt(1)
        if several.any():
            examples = ", ".join(repr(c) for c in out.loc[several, ID_COLUMN].head(5))
            problems.append(
                Problem(
                    ID_COLUMN,
                    _rows_text(out.loc[several, "row"].to_numpy() - 2),
                    f"{int(several.sum())} customers are in several cohorts ({examples}): "
                    "say which cohort these outcomes are for",
                )
            )
            details.extend(
                {"row": int(r), ID_COLUMN: c, "problem": "in several cohorts"}
                for r, c in zip(out.loc[several, "row"], out.loc[several, ID_COLUMN], strict=True)
            )
        out["cohort_id"] = out[ID_COLUMN].map(counts["max"]).fillna(-1).astype(int)
    if unknown.any():
        examples = ", ".join(repr(c) for c in out.loc[unknown, ID_COLUMN].head(8))
        problems.append(
            Problem(
                ID_COLUMN,
                _rows_text(out.loc[unknown, "row"].to_numpy() - 2),
                f"{int(unknown.sum())} customer ids are not in {where}: {examples}",
            )
        )
        details.extend(
            {"row": int(r), ID_COLUMN: c, "problem": f"not in {where}"}
            for r, c in zip(out.loc[unknown, "row"], out.loc[unknown, ID_COLUMN], strict=True)
        )
    if problems:
        raise OutcomesError(
            problems,
            _details_frame(details),
            summary="Some outcomes do not match a scored customer.",
            hint="Check the customer ids (and the cohort chosen). Outcomes can be recorded "
            "only for customers of a scored cohort: score their week's cohort first if it "
            "was not. No outcome was stored.",
        )
    return out


def record_feedback(
    data: bytes,
    filename: str = "outcomes.csv",
    cohort: str | int | None = None,
    store: Store | None = None,
    user: str | None = None,
) -> FeedbackResult:
    """Read, check and record an outcomes file in one transaction (all or nothing).

    Args:
        data: the file's bytes (CSV or xlsx).
        cohort: the cohort the outcomes are for (id, week label, file name); by default each
            customer id is matched to the one cohort that holds it.

    Raises:
        OutcomesError: what is wrong, with the rows; nothing is stored.
        StoreUnavailableError: the database cannot be reached.
    """
    store = store or open_store()
    frame = read_outcomes(data, filename)
    frame = assign_cohorts(frame, store, cohort)

    def refuse(conflicts: pd.DataFrame) -> None:
        rows = frame.set_index([ID_COLUMN, "cohort_id"])["row"]
        listed = [
            rows.get((c.customer_id, c.cohort_id), 0) for c in conflicts.itertuples(index=False)
        ]
        examples = ", ".join(repr(c) for c in conflicts[ID_COLUMN].head(5))
        raise OutcomesError(
            [
                Problem(
                    ID_COLUMN,
                    _rows_text(np.asarray(listed) - 2),
                    f"{len(conflicts)} outcomes differ from those recorded earlier: {examples}",
                )
            ],
            _details_frame(
                [
                    {
                        "row": int(r),
                        ID_COLUMN: c.customer_id,
                        "problem": (
                            f"recorded earlier as called={_yn(c.stored_called)}, "
                            f"subscribed={_yn(c.stored_subscribed)}; this file says "
                            f"called={_yn(c.called)}, subscribed={_yn(c.subscribed)}"
                        ),
                    }
                    for r, c in zip(listed, conflicts.itertuples(index=False), strict=True)
                ]
            ),
            summary="Some outcomes contradict those already recorded.",
        )

    counts = store.record_outcomes(
        frame, file_sha256=file_sha256(data), name=filename, user=user, check=refuse
    )
    notices = []
    repeated = int(frame.attrs.get("repeated_rows", 0))
    if repeated:
        notices.append(f"{repeated} repeated rows with the same outcome were counted once.")
    return FeedbackResult(
        rows=counts["rows"],
        added=counts["added"],
        unchanged=counts["unchanged"],
        cohorts=sorted(int(c) for c in frame["cohort_id"].unique()),
        notices=notices,
    )


def _yn(value: object) -> str:
    return "yes" if bool(value) else "no"


def outcomes_file(frame: pd.DataFrame) -> bytes:
    """CSV bytes of outcomes (customer_id, called, subscribed as yes/no): the upload format."""
    out = pd.DataFrame(
        {
            ID_COLUMN: frame[ID_COLUMN].astype(str),
            CALLED: np.where(frame[CALLED].astype(bool), "yes", "no"),
            SUBSCRIBED: np.where(frame[SUBSCRIBED].astype(bool), "yes", "no"),
        }
    )
    return out.to_csv(index=False).encode("utf-8")


def simulated_outcomes(called_ids: pd.Series | list[str], reference: pd.DataFrame) -> pd.DataFrame:
    """Outcomes a demo week would bring back: the called reference customers and their ``y``.

    For demonstrations and tests with cohorts cut from the reference data (ids C00000...):
    called customers get their real outcome from the data set.

    Raises:
        TermDepositError: some ids are not reference customers.
    """
    ids = pd.Series(called_ids, dtype=str)
    truth = reference.set_index(ID_COLUMN)["y"]
    missing = ~ids.isin(truth.index)
    if missing.any():
        raise TermDepositError(
            f"{int(missing.sum())} customers are not in the reference data "
            f"(e.g. {ids[missing].iloc[0]!r}).",
            hint="Simulated outcomes exist only for cohorts cut from the reference data.",
        )
    return pd.DataFrame(
        {
            ID_COLUMN: ids.to_numpy(),
            CALLED: True,
            SUBSCRIBED: truth.loc[ids].astype(bool).to_numpy(),
        }
    )
