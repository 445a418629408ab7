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
    on_dnc = ids.isin(blocked).to_numpy()
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


def export_notes(
    call_list: CallList,
    settings: BusinessSettings,
    cohort_name: str | None,
    model_version: str | None,
    cohort_size: int | None = None,
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
        f"Customers in this file: {format_count(len(call_list))}, ranked by probability "
        "(rank 1 = most likely to subscribe in the whole cohort)",
    ]
    return notes


def export_table(call_list: CallList) -> pd.DataFrame:
    """The table written to the files: list columns, probability rounded, rank order."""
    table = call_list.frame.sort_values("rank", kind="stable").reset_index(drop=True)
    table["probability"] = table["probability"].round(PROBABILITY_DECIMALS)
    return table


def export_csv(call_list: CallList) -> bytes:
    """The list as CSV for Excel and diallers: UTF-8 with BOM, header then one row a customer.

    The notes are not written into the CSV (a dialler importing it would read them as
    customers); they are in the xlsx About sheet and in the file name.
    """
    return to_csv_bytes(export_table(call_list))


def export_xlsx(call_list: CallList, notes: list[str]) -> bytes:
    """The list as an Excel workbook: ``Call list`` sheet and an ``About`` sheet with the notes."""
    return to_xlsx_bytes(export_table(call_list), notes)
