"""The call list: whom to call, best first, and the files handed to the call centre.

Built from a scored cohort (:func:`termdeposit.modeling.predict.score_frame`): the customers
at or above the chosen threshold, minus a do-not-call list, cut to the call capacity when
one applies, ranked by probability. Exports are safe to open in a spreadsheet (formulas
neutralised, see :mod:`termdeposit.data.exports`) and named after the cohort and model version.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from termdeposit.core.config import BusinessSettings
from termdeposit.core.errors import TermDepositError
from termdeposit.core.schema import ID_ALIASES, ID_COLUMN
from termdeposit.data.exports import to_csv_bytes, to_xlsx_bytes
from termdeposit.modeling.predict import DECISION_NO, DECISION_YES

#: What a caller needs to know about a customer (the week's economic context is left out:
#: it is the same for everyone).
CALLER_COLUMNS = (
    "age",
    "job",
    "marital",
    "education",
    "default",
    "housing",
    "loan",
    "contact",
    "campaign",
    "pdays",
    "previous",
    "poutcome",
)
LIST_COLUMNS = (ID_COLUMN, "rank", "probability", "decision", *CALLER_COLUMNS)
#: Probabilities are written with this many decimals (enough to keep the ranking readable).
PROBABILITY_DECIMALS = 4
#: Priority bands by the customer's chance of subscribing (lowest chance of each band): a
#: caller sees at a glance who is most worth the effort, without reading probabilities.
PRIORITY_BANDS = (("high", 0.30), ("medium", 0.10), ("low", 0.0))
#: The ``group`` of a customer on an issued list: chosen by the model, or drawn at random
#: from the business-as-usual hold-out for the A/B comparison.
GROUP_MODEL = "model"
GROUP_HOLDOUT = "holdout"
REASON_COLUMNS = ("reason_1", "reason_2", "reason_3")
#: The dialler file's columns, in order: stable, machine-readable names (README, "Call list
#: files"). A dialler imports this file; people read the other one.
DIALLER_COLUMNS = (
    ID_COLUMN,
    "rank",
    "probability",
    "priority",
    "group",
    *REASON_COLUMNS,
    *CALLER_COLUMNS,
)
#: Column headers of the people's files (CSV and Excel), by dialler column.
PEOPLE_HEADERS = {
    "rank": "Rank",
    ID_COLUMN: "Customer id",
    "priority": "Priority",
    "chance": "Chance of subscribing",
    "reason_1": "Why call (1)",
    "reason_2": "Why call (2)",
    "reason_3": "Why call (3)",
    "group": "Chosen by",
}
_GROUP_WORDS = {GROUP_MODEL: "the model", GROUP_HOLDOUT: "random draw (A/B comparison)"}


@dataclass
class CallList:
    """The customers to call, best first, and how the list was made.

    Attributes:
        frame: one row per customer to call (``LIST_COLUMNS``), ranked by probability.
        threshold: probability at or above which customers are called.
        capacity: the call capacity the list was cut to, or None.
        eligible: customers at or above the threshold (before the do-not-call list).
        removed_do_not_call: customers at or above the threshold removed by the do-not-call list.
        cut_by_capacity: customers at or above the threshold left out because of the capacity.
        do_not_call_ids: ids in the do-not-call file (0 when there was none).
        do_not_call_in_cohort: of those, how many are in the cohort at all.
    """

    frame: pd.DataFrame
    threshold: float
    capacity: int | None = None
    eligible: int = 0
    removed_do_not_call: int = 0
    cut_by_capacity: int = 0
    do_not_call_ids: int = 0
    do_not_call_in_cohort: int = 0
    filters: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frame)


def ids_in(ids: pd.Series, values: Iterable[str] | pd.Series) -> np.ndarray:
    """True where a customer id is among ``values``: a hash lookup on plain strings (pandas'
    ``isin`` on Arrow-backed text walks Python objects one by one, 12x slower on 100,000 ids).
    """
    wanted = np.asarray(values if isinstance(values, pd.Series) else list(values), dtype=object)
    return ids.astype(object).isin(wanted).to_numpy()


def build_call_list(
    scored: pd.DataFrame,
    threshold: float,
    capacity: int | None = None,
    do_not_call: Iterable[str] | None = None,
) -> CallList:
    """Customers at or above ``threshold``, minus ``do_not_call``, best ``capacity`` of them.

    The do-not-call list is applied first, so its customers free places within the capacity
    for the next-best customers above the threshold.

    Args:
        scored: a scored cohort (id, probability, rank, the inputs).
        threshold: call everyone with at least this probability.
        capacity: the most calls the call centre can make, or None for no limit.
        do_not_call: customer ids never to call.
    """
    p = scored["probability"].to_numpy(dtype=float)
    eligible_mask = p >= threshold
    blocked = {str(i).strip() for i in do_not_call or ()} - {""}
    ids = scored[ID_COLUMN].astype(str)
    on_dnc = ids_in(ids, blocked)
    chosen = scored.loc[eligible_mask & ~on_dnc]
    chosen = chosen.sort_values("rank", kind="stable")
    cut = 0
    if capacity is not None and len(chosen) > capacity:
        cut = len(chosen) - max(int(capacity), 0)
        chosen = chosen.iloc[: max(int(capacity), 0)]
    frame = chosen.loc[:, [c for c in LIST_COLUMNS if c in chosen]].reset_index(drop=True)
    frame["decision"] = np.where(frame["probability"] >= threshold, DECISION_YES, DECISION_NO)
    return CallList(
        frame=frame,
        threshold=float(threshold),
        capacity=capacity,
        eligible=int(eligible_mask.sum()),
        removed_do_not_call=int((eligible_mask & on_dnc).sum()),
        cut_by_capacity=cut,
        do_not_call_ids=len(blocked),
        do_not_call_in_cohort=int(on_dnc.sum()),
    )


def called_mask(
    scored: pd.DataFrame,
    threshold: float,
    capacity: int | None = None,
    do_not_call: Iterable[str] | None = None,
) -> np.ndarray:
    """True for each customer of ``scored`` that :func:`build_call_list` would call."""
    chosen = build_call_list(scored, threshold, capacity, do_not_call)
    return ids_in(scored[ID_COLUMN], chosen.frame[ID_COLUMN])


def filter_call_list(
    call_list: CallList,
    search: str = "",
    jobs: Iterable[str] = (),
    contacts: Iterable[str] = (),
    min_probability: float | None = None,
) -> CallList:
    """Narrow a list for one team: id search, jobs, contact channel, minimum probability.

    Returns a new :class:`CallList` whose ``filters`` describe what was applied (written into
    the export notes), ranks unchanged.
    """
    frame = call_list.frame
    keep = pd.Series(True, index=frame.index)
    applied = []
    if search.strip():
        needle = search.strip()
        keep &= frame[ID_COLUMN].astype(str).str.contains(needle, case=False, regex=False)
        applied.append(f"customer id contains '{needle}'")
    jobs = list(jobs)
    if jobs:
        keep &= frame["job"].isin(jobs)
        applied.append("job: " + ", ".join(jobs))
    contacts = list(contacts)
    if contacts:
        keep &= frame["contact"].isin(contacts)
        applied.append("contact: " + ", ".join(contacts))
    if min_probability is not None and min_probability > call_list.threshold:
        keep &= frame["probability"] >= min_probability
        applied.append(f"probability at least {min_probability:.1%}")
    return replace(
        call_list,
        frame=frame.loc[keep].reset_index(drop=True),
        filters=[*call_list.filters, *applied],
    )


def _canonical(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).strip().lower())


def read_do_not_call(data: bytes, filename: str = "do-not-call") -> set[str]:
    """Read the customer ids of a do-not-call file (CSV, text with one id per line, or xlsx).

    The id column is the one named like ``customer_id`` (or ``id``, ``client``...); without
    such a header the first column is used, and a first line that is not an id header is an id.

    Raises:
        TermDepositError: empty or unreadable file.
    """
    if not data or not data.strip():
        raise TermDepositError(
            f"The do-not-call file '{filename}' is empty.",
            hint="Upload a file with one customer id per line (or a customer_id column).",
        )
    id_names = {_canonical(ID_COLUMN), *ID_ALIASES}
    if data.startswith(b"PK\x03\x04"):
        try:
            rows = pd.read_excel(io.BytesIO(data), dtype=str, header=None).fillna("")
        except Exception as exc:  # openpyxl raises many types for broken workbooks
            raise TermDepositError(
                f"The do-not-call file '{filename}' could not be opened as an Excel workbook.",
                hint="Save it again as .xlsx or as a CSV file.",
            ) from exc
        table = rows.astype(str).values.tolist()
    else:
        if b"\x00" in data[:4096]:
            raise TermDepositError(
                f"The do-not-call file '{filename}' is not a text, CSV or Excel file.",
                hint="Upload a file with one customer id per line (or a customer_id column).",
            )
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")
        first = text.split("\n", 1)[0]
        separator = max((";", ",", "\t", "|"), key=first.count)
        if first.count(separator) == 0:
            separator = ","
        table = list(csv.reader(io.StringIO(text), delimiter=separator))
    table = [[cell.strip() for cell in row] for row in table if any(c.strip() for c in row)]
    if not table:
        raise TermDepositError(
            f"The do-not-call file '{filename}' holds no customer ids.",
            hint="Upload a file with one customer id per line (or a customer_id column).",
        )
    header = [_canonical(c) for c in table[0]]
    column = next((i for i, name in enumerate(header) if name in id_names), None)
    body = table[1:] if column is not None else table
    column = column or 0
    return {row[column] for row in body if len(row) > column and row[column]}


def file_stem(cohort_name: str | None, model_version: str | None) -> str:
    """``call_list_<cohort>_<model version>`` with only safe file-name characters."""
    cohort = re.sub(r"\.(csv|xlsx|xls|txt)$", "", str(cohort_name or "cohort"), flags=re.I)
    cohort = re.sub(r"[^A-Za-z0-9._-]+", "-", cohort).strip("-._")[:60] or "cohort"
    version = re.sub(r"[^A-Za-z0-9._-]+", "-", str(model_version or "model")).strip("-._")
    return f"call_list_{cohort}_{version or 'model'}"


def priority_of(probabilities: np.ndarray | pd.Series) -> np.ndarray:
    """``high`` / ``medium`` / ``low`` by chance of subscribing (:data:`PRIORITY_BANDS`)."""
    p = np.asarray(probabilities, dtype=float)
    out = np.full(len(p), PRIORITY_BANDS[-1][0], dtype=object)
    for name, lowest in reversed(PRIORITY_BANDS[:-1]):
        out[p >= lowest] = name
    return out


def priority_words() -> str:
    """How the bands are cut, in words (for the About sheet and the page)."""
    (high, h), (medium, m), _ = PRIORITY_BANDS
    return (
        f"Priority: {high} = chance of {h:.0%} or more, {medium} = {m:.0%} to {h:.0%}, "
        f"low = under {m:.0%}"
    )


def count_words(call_list: CallList) -> str:
    """How many customers are on the list and why, in one sentence a call-centre lead reads.

    E.g. "20 customers to call: 18 chosen by the model, 2 drawn at random from the
    business-as-usual group (A/B comparison)".
    """
    n = len(call_list)
    groups = call_list.frame.get("group")
    held = int((groups == GROUP_HOLDOUT).sum()) if groups is not None else 0
    noun = "customer" if n == 1 else "customers"
    if not held:
        return f"{n:,} {noun} to call, all chosen by the model"
    return (
        f"{n:,} {noun} to call: {n - held:,} chosen by the model, {held:,} drawn at random "
        "from the business-as-usual group (A/B comparison)"
    )


def export_notes(
    call_list: CallList,
    settings: BusinessSettings,
    cohort_name: str | None,
    model_version: str | None,
    cohort_size: int | None = None,
    extra: list[str] | None = None,
) -> list[str]:
    """Plain-language lines saying how the list was made (for the xlsx About sheet)."""
    from termdeposit.decisions.economics import format_count, format_money, format_percent

    notes = [
        f"Cohort: {cohort_name or 'unnamed'}"
        + (f" ({format_count(cohort_size)} customers)" if cohort_size is not None else ""),
        f"Model version: {model_version or 'unknown'}",
        f"Threshold: {call_list.threshold:.4f} (customers with a probability of "
        f"{format_percent(call_list.threshold, 2)} or more)",
        f"Call cost: {format_money(settings.call_cost, 2)} per call; value of one subscription: "
        f"{format_money(settings.subscription_value, 2)} "
        f"(break-even probability {format_percent(settings.break_even, 2)})",
        "Call capacity: "
        + (
            f"{format_count(call_list.capacity)} calls (the best customers within it)"
            if call_list.capacity is not None
            else "no limit"
        ),
        f"At or above the threshold: {format_count(call_list.eligible)} customers; "
        f"removed by the do-not-call list: {format_count(call_list.removed_do_not_call)}; "
        f"left out for capacity: {format_count(call_list.cut_by_capacity)}",
        "Filters: " + ("; ".join(call_list.filters) if call_list.filters else "none"),
        f"Customers in this file: {count_words(call_list)}; ranked by probability "
        "(rank 1 = most likely to subscribe in the whole cohort)",
        priority_words(),
        "Why call: what sets each customer apart from this week's other customers, as the "
        "model sees it (up to three reasons)",
        *(extra or []),
    ]
    return notes


def export_table(call_list: CallList) -> pd.DataFrame:
    """The dialler table: :data:`DIALLER_COLUMNS` in rank order, probability rounded.

    Every column is always present (reasons empty when the model could not be explained,
    group ``model`` when the list has no hold-out), so a dialler's import never breaks.
    """
    table = call_list.frame.sort_values("rank", kind="stable").reset_index(drop=True)
    table["probability"] = table["probability"].astype(float).round(PROBABILITY_DECIMALS)
    table["priority"] = priority_of(table["probability"])
    if "group" not in table:
        table["group"] = GROUP_MODEL
    for column in REASON_COLUMNS:
        if column not in table:
            table[column] = ""
    return table.loc[:, [c for c in DIALLER_COLUMNS if c in table]]


def people_table(call_list: CallList, chance_as_text: bool = True) -> pd.DataFrame:
    """The table people read (page, CSV, Excel): human headers, values in words, chance in %.

    Args:
        chance_as_text: the chance as text (``12.3%``, for files) or as a number of percent
            (12.3, for a table that sorts and draws bars).
    """
    from termdeposit.core.labels import FEATURE_LABELS, value_words

    table = export_table(call_list)
    out = pd.DataFrame(
        {
            PEOPLE_HEADERS["rank"]: table["rank"].to_numpy(),
            PEOPLE_HEADERS[ID_COLUMN]: table[ID_COLUMN].to_numpy(),
            PEOPLE_HEADERS["priority"]: table["priority"].str.capitalize().to_numpy(),
            PEOPLE_HEADERS["chance"]: (
                [f"{p:.1%}" for p in table["probability"]]
                if chance_as_text
                else (100 * table["probability"]).to_numpy()
            ),
            **{PEOPLE_HEADERS[c]: table[c].to_numpy() for c in REASON_COLUMNS if c in table},
            PEOPLE_HEADERS["group"]: table["group"].map(_GROUP_WORDS).to_numpy(),
        }
    )
    for column in CALLER_COLUMNS:
        if column in table:  # each distinct value put in words once
            codes, distinct = pd.factorize(table[column], use_na_sentinel=False)
            words = np.array([value_words(column, v) for v in distinct] + [""], dtype=object)
            out[FEATURE_LABELS[column]] = words[codes]
    return out


def export_csv(call_list: CallList) -> bytes:
    """The list for people, as CSV for Excel: UTF-8 with BOM, human headers, one row a customer.

    The notes are not written into the CSV (a program importing it would read them as
    customers); they are in the xlsx About sheet and in the file name.
    """
    return to_csv_bytes(people_table(call_list))


def export_dialler_csv(call_list: CallList) -> bytes:
    """The list for a dialler: :data:`DIALLER_COLUMNS`, machine-readable, no notes."""
    return to_csv_bytes(export_table(call_list))


def export_xlsx(call_list: CallList, notes: list[str]) -> bytes:
    """The list as an Excel workbook: ``Call list`` sheet and an ``About`` sheet with the notes."""
    return to_xlsx_bytes(people_table(call_list), notes)
