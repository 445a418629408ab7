"""The cohort contract: reading any reasonable file, and every kind of bad input."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from termdeposit.core.errors import CohortValidationError, TermDepositError
from termdeposit.core.schema import CATEGORICAL_INPUTS, ID_COLUMN, INPUT_COLUMNS
from termdeposit.data.cohort_file import load_cohort, read_table, validate_cohort


def _csv(frame: pd.DataFrame, sep: str = ",", quote_all: bool = False, bom: bool = False) -> bytes:
    import csv

    text = frame.to_csv(
        index=False, sep=sep, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL
    )
    return (("\ufeff" if bom else "") + text).encode("utf-8")


@pytest.fixture()
def cohort_frame(week_cohort) -> pd.DataFrame:
    return week_cohort.drop(columns=["y"]).head(50).copy()


def test_contract_has_19_inputs_without_post_call_columns():
    assert len(INPUT_COLUMNS) == 19
    assert "duration" not in INPUT_COLUMNS and "y" not in INPUT_COLUMNS


def test_categories_match_the_reference_data(reference):
    for column, allowed in CATEGORICAL_INPUTS.items():
        assert set(reference[column].unique()) == set(allowed), column


@pytest.mark.parametrize("sep", [",", ";"])
@pytest.mark.parametrize("quote_all", [False, True])
@pytest.mark.parametrize("bom", [False, True])
def test_reads_both_separators_quoting_and_bom(cohort_frame, sep, quote_all, bom):
    cohort = load_cohort(_csv(cohort_frame, sep, quote_all, bom), "c.csv")
    assert list(cohort.frame[ID_COLUMN]) == list(cohort_frame[ID_COLUMN])
    assert cohort.frame["age"].tolist() == cohort_frame["age"].astype(float).tolist()
    assert not cohort.ids_generated


def test_reads_the_original_uci_format(data_dir):
    raw = (data_dir / "bank-additional.csv").read_bytes()
    cohort = load_cohort(raw, "bank-additional.csv")
    assert len(cohort) == 4119
    assert cohort.ids_generated
    assert any("duration" in n for n in cohort.notices)
    assert any("'y'" in n for n in cohort.notices)
    assert cohort.has_outcomes


def test_generated_ids_are_stable_row_numbers(cohort_frame):
    cohort = load_cohort(_csv(cohort_frame.drop(columns=[ID_COLUMN])))
    assert cohort.frame[ID_COLUMN].iloc[0] == "row-00001"
    assert cohort.frame[ID_COLUMN].iloc[49] == "row-00050"
    assert any("no customer id" in n for n in cohort.notices)


def test_ids_with_leading_zeros_stay_text(cohort_frame):
    cohort_frame[ID_COLUMN] = [f"{i:06d}" for i in range(len(cohort_frame))]
    cohort = load_cohort(_csv(cohort_frame))
    assert cohort.frame[ID_COLUMN].iloc[1] == "000001"


def test_xlsx_is_read_by_content_not_name(cohort_frame):
    buffer = io.BytesIO()
    cohort_frame.to_excel(buffer, index=False)
    cohort = load_cohort(buffer.getvalue(), "cohort.csv")
    assert len(cohort) == len(cohort_frame)


def test_column_names_are_matched_loosely(cohort_frame):
    renamed = cohort_frame.rename(columns={"emp.var.rate": "Emp_Var_Rate", "customer_id": "ID"})
    cohort = load_cohort(_csv(renamed))
    assert (
        "emp.var.rate" in cohort.frame and cohort.frame[ID_COLUMN].iloc[0] == renamed["ID"].iloc[0]
    )


def test_every_problem_reported_at_once_with_rows(cohort_frame):
    bad = cohort_frame.drop(columns=["euribor3m"]).astype(str)
    bad.loc[2, "age"] = "forty"
    bad.loc[4, "campaign"] = "-3"
    bad.loc[5, "job"] = "astronaut"
    with pytest.raises(CohortValidationError) as info:
        load_cohort(_csv(bad))
    problems = {p.column: p for p in info.value.problems}
    assert problems["euribor3m"].problem == "missing column"
    assert "expected a number" in problems["age"].problem and problems["age"].rows == "4"
    assert "out of range" in problems["campaign"].problem and problems["campaign"].rows == "6"
    assert (
        "never seen in training" in problems["job"].problem
        and "'astronaut'" in problems["job"].problem
    )
    assert "nothing was scored" in str(info.value)


def test_empty_and_header_only_files():
    with pytest.raises(TermDepositError, match="empty"):
        read_table(b"", "x.csv")
    header = (",".join([ID_COLUMN, *INPUT_COLUMNS]) + "\n").encode()
    with pytest.raises(CohortValidationError, match="no customers"):
        load_cohort(header)


def test_garbage_bytes_and_wrong_file():
    with pytest.raises(TermDepositError, match="binary"):
        read_table(bytes(range(256)) * 10, "x.csv")
    with pytest.raises(CohortValidationError, match="does not look like a cohort"):
        load_cohort(b"name,price\napple,3\n")


def test_duplicate_ids_and_blanks(cohort_frame):
    bad = cohort_frame.astype(str)
    bad.loc[3, ID_COLUMN] = bad.loc[1, ID_COLUMN]
    bad.loc[6, "month"] = ""
    bad.loc[7, "marital"] = ""
    with pytest.raises(CohortValidationError) as info:
        load_cohort(_csv(bad))
    columns = {p.column for p in info.value.problems}
    assert columns == {ID_COLUMN, "month"}  # blank marital is the data set's 'unknown'


def test_fractional_counts_rejected(cohort_frame):
    bad = cohort_frame.astype(str)
    bad.loc[0, "campaign"] = "1.5"
    with pytest.raises(CohortValidationError, match="whole number"):
        load_cohort(_csv(bad))


def test_typed_frame_dtypes(cohort_frame):
    frame = validate_cohort(cohort_frame.astype(str)).frame
    assert frame["age"].dtype == np.float64
    assert frame["job"].dtype == object
    assert list(frame.columns) == [ID_COLUMN, *INPUT_COLUMNS]
