"""The call list and its files: who is on it, in what order, and that the files are safe."""

from __future__ import annotations

import csv
import io

import numpy as np
import openpyxl
import pandas as pd
import pytest

from termdeposit.core.config import BusinessSettings
from termdeposit.core.errors import TermDepositError
from termdeposit.decisions import calllist
from termdeposit.modeling.predict import ranks_of

MONEY = BusinessSettings(call_cost=5.0, subscription_value=100.0, capacity=None)


def _scored(ids: list[str], probabilities: list[float]) -> pd.DataFrame:
    n = len(ids)
    p = np.array(probabilities)
    frame = pd.DataFrame(
        {
            "customer_id": ids,
            "probability": p,
            "decision": "do not call",
            "rank": ranks_of(p),
            "age": np.arange(30, 30 + n),
            "job": ["admin.", "technician", "=cmd|' /C calc'!A0", "services", "@SUM(A1)"][:n],
            "marital": "single",
            "education": "high.school",
            "default": "no",
            "housing": "yes",
            "loan": "no",
            "contact": ["cellular", "telephone", "cellular", "cellular", "telephone"][:n],
            "month": "may",
            "day_of_week": "mon",
            "campaign": 1,
            "pdays": 999,
            "previous": 0,
            "poutcome": "nonexistent",
            "emp.var.rate": 1.1,
            "y": [1.0, 0.0, 1.0, 0.0, 0.0][:n],
        }
    )
    return frame


@pytest.fixture()
def scored() -> pd.DataFrame:
    return _scored(["A1", "+B2", "C3", "D4", "E5"], [0.30, 0.10, 0.50, 0.04, 0.20])


def test_list_holds_customers_at_or_above_threshold_best_first(scored):
    result = calllist.build_call_list(scored, 0.10)
    assert result.frame["customer_id"].tolist() == ["C3", "A1", "E5", "+B2"]
    assert result.frame["rank"].tolist() == [1, 2, 3, 4]
    assert (result.frame["decision"] == "call").all()
    assert result.eligible == 4 and result.removed_do_not_call == 0 and result.cut_by_capacity == 0
    assert list(result.frame.columns) == list(calllist.LIST_COLUMNS)
    assert "y" not in result.frame and "emp.var.rate" not in result.frame


def test_do_not_call_is_removed_before_the_capacity_cut(scored):
    result = calllist.build_call_list(scored, 0.10, capacity=2, do_not_call={"C3", "ZZ", " "})
    assert result.frame["customer_id"].tolist() == ["A1", "E5"]
    assert result.removed_do_not_call == 1 and result.cut_by_capacity == 1
    assert result.do_not_call_ids == 2 and result.do_not_call_in_cohort == 1


def test_filters_narrow_the_list_and_are_recorded(scored):
    full = calllist.build_call_list(scored, 0.0)
    shown = calllist.filter_call_list(full, search="c", contacts=["cellular"])
    assert shown.frame["customer_id"].tolist() == ["C3"]
    assert shown.filters == ["customer id contains 'c'", "contact: cellular"]
    assert len(calllist.filter_call_list(full, min_probability=0.25)) == 2


def test_csv_bytes_rows_order_and_injection(scored):
    result = calllist.build_call_list(scored, 0.0)
    for data, id_col, job_col in (
        (calllist.export_csv(result), "Customer id", "Job"),
        (calllist.export_dialler_csv(result), "customer_id", "job"),
    ):
        assert data.startswith(b"\xef\xbb\xbf")
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
        assert len(rows) == 5
        assert [r[id_col] for r in rows] == ["C3", "A1", "E5", "'+B2", "D4"]
        jobs = {r[job_col] for r in rows}
        assert "'=cmd|' /C calc'!A0" in jobs and "'@SUM(A1)" in jobs
        assert not any(v.startswith(("=", "+", "-", "@")) for r in rows for v in r.values())
    machine = list(
        csv.DictReader(io.StringIO(calllist.export_dialler_csv(result).decode("utf-8-sig")))
    )
    probabilities = [float(r["probability"]) for r in machine]
    assert probabilities == sorted(probabilities, reverse=True)
    assert list(machine[0]) == list(calllist.DIALLER_COLUMNS)
    people = list(csv.DictReader(io.StringIO(calllist.export_csv(result).decode("utf-8-sig"))))
    assert [r["Chance of subscribing"] for r in people] == ["50.0%", "30.0%", "20.0%"] + [
        "10.0%",
        "4.0%",
    ]
    assert [r["Priority"] for r in people] == ["High", "High", "Medium", "Medium", "Low"]
    assert [r["Contact phone"] for r in people] == ["mobile", "mobile", "landline", "landline"] + [
        "mobile"
    ]


def test_xlsx_has_no_formulas_and_an_about_sheet(scored):
    result = calllist.build_call_list(scored, 0.0)
    notes = calllist.export_notes(result, MONEY, "2009-05 wk2", "v20261125-115807", 5)
    book = openpyxl.load_workbook(io.BytesIO(calllist.export_xlsx(result, notes)))
    sheet = book["Call list"]
    cells = [c for row in sheet.iter_rows() for c in row]
    assert not [c for c in cells if c.data_type == "f"]
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[0][:4] == ["Rank", "Customer id", "Priority", "Chance of subscribing"]
    assert [r[1] for r in values[1:]] == ["C3", "A1", "E5", "'+B2", "D4"]
    about = [c.value for c in book["About"]["A"]][1:]
    assert about == notes
    assert any("v20261125-115807" in n for n in about)
    assert any("Threshold: 0.0000" in n for n in about)
    assert any("€5.00 per call" in n and "€100.00" in n for n in about)


def test_file_names_carry_cohort_and_model_version():
    assert (
        calllist.file_stem("2009-05 wk3", "v20261125-115025")
        == "call_list_2009-05-wk3_v20261125-115025"
    )
    assert calllist.file_stem("week 39/../x.csv", "v1") == "call_list_week-39-..-x_v1"
    assert calllist.file_stem(None, None) == "call_list_cohort_model"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"customer_id\nA1\nC3\n", {"A1", "C3"}),
        (b"A1\r\nC3\r\n\r\n", {"A1", "C3"}),
        (b"name;Customer ID;phone\nx;A1;1\ny;C3;2\n", {"A1", "C3"}),
        (b"\xef\xbb\xbfid,reason\n007,asked\n", {"007"}),
    ],
)
def test_do_not_call_files(content, expected):
    assert calllist.read_do_not_call(content, "dnc.csv") == expected


def test_do_not_call_xlsx():
    buffer = io.BytesIO()
    pd.DataFrame({"Customer": ["A1", "C3"], "note": ["x", "y"]}).to_excel(buffer, index=False)
    assert calllist.read_do_not_call(buffer.getvalue(), "dnc.xlsx") == {"A1", "C3"}


@pytest.mark.parametrize("content", [b"", b"  \n", b"\x00\x01\x02garbage"])
def test_bad_do_not_call_files_say_what_is_wrong(content):
    with pytest.raises(TermDepositError, match="do-not-call file 'dnc.csv'"):
        calllist.read_do_not_call(content, "dnc.csv")
