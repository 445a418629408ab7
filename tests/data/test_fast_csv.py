"""The scoring fast paths give exactly what the plain pandas code gives (or decline)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from termdeposit.core.schema import CATEGORICAL_COLUMNS, ID_COLUMN, INPUT_COLUMNS, NUMERIC_COLUMNS
from termdeposit.data import fast_csv
from termdeposit.data.cohort_file import _parse_categorical, _parse_numeric, validate_cohort
from termdeposit.data.exports import neutralise_frame
from termdeposit.data.fast_csv import csv_bytes
from termdeposit.modeling import inference
from termdeposit.modeling.predict import score_file


def _plain_csv(frame: pd.DataFrame, header: bool = True) -> bytes:
    return neutralise_frame(frame).to_csv(index=False, header=header).encode("utf-8")


def test_writer_matches_pandas_on_awkward_values():
    rng = np.random.default_rng(0)
    n = 3000
    floats = rng.standard_normal(n) * 10.0 ** rng.integers(-12, 20, n)
    floats[:8] = [0.0, -0.0, 1.0, np.nan, np.inf, -np.inf, 1e16, 9.999e-5]
    ids = np.array([f"C{i}" for i in range(n)], dtype=object)
    ids[:9] = ["=cmd", '"q"', "a,b", "l\nf", "c\rr", "-5", "\tx", "é", "@x"]
    frame = pd.DataFrame(
        {
            ID_COLUMN: ids,
            "probability": rng.random(n),
            "spread": floats,
            "few": rng.choice([0.5, -0.0, 2.0, np.nan], n),
            "rank": rng.integers(1, n, n),
            "job": pd.Series(rng.choice(["admin.", "+plus", "a,b", 'say "hi"'], n), dtype="str"),
            "y": np.where(rng.random(n) > 0.5, 1.0, np.nan),
        }
    )
    assert csv_bytes(frame) == _plain_csv(frame)
    assert csv_bytes(frame.iloc[:7], header=False) == _plain_csv(frame.iloc[:7], header=False)
    assert csv_bytes(frame.iloc[:0]) == _plain_csv(frame.iloc[:0])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.text(max_size=8), st.floats(allow_nan=True), st.integers(-(2**40), 2**40)),
        min_size=1,
        max_size=40,
    )
)
def test_writer_matches_pandas_on_any_values(rows):
    frame = pd.DataFrame(rows, columns=["text", "number", "count"]).astype({"text": object})
    assert csv_bytes(frame) == _plain_csv(frame)


@pytest.mark.parametrize(
    ("data", "width"),
    [
        (b"1,2,3\n", 3),
        (b"1,5;x;3\r\n\r\n4;5;6\r\n", 3),
        (b'1,"x,""y""\nz",3\n', 3),
        (b'1,x"y"z,3\n,,\n', 3),
        (b"1, 2,3\n", 3),
        (b"1,2\n", 3),
        (b"1,2,3,4\n", 3),
        (b"\xe9,2,3\n", 3),
    ],
)
def test_block_reader_reads_as_pandas_or_declines(data, width):
    separator = ";" if b";" in data.split(b"\n")[0] else ","
    fast = fast_csv.read_block(data, separator, width)
    if fast is None:
        return
    plain = pd.read_csv(
        io.BytesIO(data),
        sep=separator,
        header=None,
        names=list(range(width)),
        index_col=False,
        dtype=str,
        keep_default_na=False,
        skipinitialspace=True,
    )
    assert list(fast.columns) == list(plain.columns)
    assert fast.equals(plain)


def test_block_reader_declines_what_pandas_reads_differently():
    assert fast_csv.read_block(b"1, 2,3\n", ",", 3) is None  # pandas skips the space
    assert fast_csv.read_block(b"1,2\n", ",", 3) is None  # pandas pads the short row
    assert fast_csv.read_block(b"\xe9,2,3\n", ",", 3) is None  # not UTF-8


def test_parsing_distinct_values_equals_parsing_every_row(week_cohort):
    messy = week_cohort.astype(str)
    messy.loc[::7, "job"] = messy.loc[::7, "job"].str.upper() + " "
    messy.loc[::5, "euribor3m"] = messy.loc[::5, "euribor3m"].str.replace(".", ",")
    messy.loc[::3, "housing"] = ""
    for parser, columns in (
        (_parse_numeric, NUMERIC_COLUMNS),
        (_parse_categorical, CATEGORICAL_COLUMNS),
    ):
        every_row = parser(messy, [])
        distinct = fast_csv.parse_by_distinct_values(parser, messy, columns)
        for column in columns:
            assert distinct[column].equals(every_row[column]), column
            assert distinct[column].dtype == every_row[column].dtype


def test_parsing_distinct_values_defers_problems_to_the_full_parser(week_cohort):
    bad = week_cohort.astype(str)
    bad.loc[10, "age"] = "old"
    assert fast_csv.parse_by_distinct_values(_parse_numeric, bad, NUMERIC_COLUMNS) is None


def test_predictions_do_not_depend_on_batches_or_runs(production_model, week_cohort):
    inputs = validate_cohort(week_cohort.astype(str)).frame.loc[:, list(INPUT_COLUMNS)]
    whole = inference.predict_proba(production_model, inputs, batch_rows=1000)
    again = inference.predict_proba(production_model, inputs, batch_rows=700)
    one_by_one = np.concatenate(
        [inference.predict_proba(production_model, inputs.iloc[[i]]) for i in range(40)]
    )
    assert np.array_equal(whole, again)
    assert np.array_equal(whole[:40], one_by_one)


@pytest.mark.parametrize("with_ids", [True, False])
def test_chunked_path_writes_the_whole_file_path_output(
    production_model, week_cohort, tmp_path, with_ids
):
    cohort = week_cohort if with_ids else week_cohort.drop(columns=[ID_COLUMN])
    source = tmp_path / "cohort.csv"
    source.write_bytes(csv_bytes(cohort))
    score_file(production_model, source, tmp_path / "whole.csv")
    score_file(
        production_model, source, tmp_path / "chunks.csv", force_chunked=True, chunk_rows=500
    )
    assert (tmp_path / "chunks.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()


def test_chunked_path_with_the_pandas_reader(production_model, week_cohort, tmp_path, monkeypatch):
    spaced = tmp_path / "spaced.csv"
    spaced.write_text(csv_bytes(week_cohort.head(300)).decode().replace(",", ", "))
    score_file(production_model, spaced, tmp_path / "whole.csv")
    monkeypatch.setattr("termdeposit.modeling.predict.CHUNK_CACHE_BYTES", 0)
    score_file(
        production_model, spaced, tmp_path / "chunks.csv", force_chunked=True, chunk_rows=70
    )
    assert (tmp_path / "chunks.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
