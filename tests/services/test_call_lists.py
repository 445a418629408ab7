"""Issuing a call list: one flow for every front door, the same file from the same inputs."""

from __future__ import annotations

import csv
import io

import numpy as np
import openpyxl
import pandas as pd
import pytest
from typer.testing import CliRunner

from termdeposit.apps.cli import app
from termdeposit.apps.dashboard import insight_cache
from termdeposit.apps.dashboard.scoring import hex_sha, score_with_progress
from termdeposit.core.config import BusinessSettings, default_settings
from termdeposit.core.errors import TermDepositError
from termdeposit.core.schema import ID_COLUMN
from termdeposit.data.cohort_file import load_cohort
from termdeposit.data.dataset import make_cohort
from termdeposit.decisions import calllist
from termdeposit.insight import explain, fairness
from termdeposit.services import call_lists
from termdeposit.storage import store as ops_store

WEEK = 39


@pytest.fixture(scope="module")
def week_file(reference) -> bytes:
    """Week 39 as marketing receives it (ids, 19 inputs; no outcome)."""
    frame = make_cohort(reference, WEEK)
    return frame.to_csv(index=False, sep=";").encode("utf-8")


@pytest.fixture()
def logged(production_model, week_file, tmp_path, monkeypatch):
    """The dashboard's path up to the list: upload read, scored in chunks, logged; its store."""
    monkeypatch.setenv("TERMDEPOSIT_DB_URL", f"sqlite:///{tmp_path / 'ops.db'}")
    cohort = load_cohort(week_file, "week39.csv")
    scored = score_with_progress(production_model, cohort.frame)
    sha = hex_sha("week39-upload")
    ops_store.log_scoring(
        scored,
        file_sha256=sha,
        model_version=production_model.version,
        threshold=production_model.threshold,
        name="week39.csv",
        source="app",
    )
    return scored, sha, ops_store.open_store()


def _rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def test_cli_and_dashboard_write_the_same_files(production_model, logged, tmp_path):
    scored, sha, store = logged
    threshold = 0.12
    request = call_lists.CallListRequest(threshold=threshold)
    provider, note = insight_cache.reasons_provider(production_model, scored)
    assert note is None
    dashboard = call_lists.prepare_call_list(
        scored,
        default_settings(),
        request,
        cohort_name="week39.csv",
        model_version=production_model.version,
        reasons=provider,
        model_card=production_model.card,
    )
    dashboard = call_lists.record_call_list(dashboard, file_sha256=sha, store=store)
    about = dashboard.notes()
    assert f"Expected profit of these calls: {dashboard.forecast.chosen.describe()}" in " ".join(
        about
    )
    assert f"Recommendation: {dashboard.forecast.recommendation.text}" in about
    runner = CliRunner()
    for fmt in ("csv", "dialler", "xlsx"):
        out = tmp_path / f"cli.{fmt}"
        result = runner.invoke(
            app,
            ["issue", "--cohort", "week39.csv", "--threshold", str(threshold)]
            + ["--format", fmt, "--out", str(out)],
        )
        assert result.exit_code == 0, result.output
        assert f"Issued call list {dashboard.list_id}:" in result.output  # recorded once
        if fmt == "xlsx":
            cli_book = openpyxl.load_workbook(out)
            app_book = openpyxl.load_workbook(io.BytesIO(dashboard.file_bytes("xlsx")))
            for sheet in ("Call list", "About"):
                assert [[c.value for c in r] for r in cli_book[sheet].iter_rows()] == [
                    [c.value for c in r] for r in app_book[sheet].iter_rows()
                ]
        else:
            assert out.read_bytes() == dashboard.file_bytes(fmt)
    assert len(store.call_lists()) == 1
    rows = _rows(dashboard.file_bytes("dialler"))
    assert len(rows) == int((scored["probability"] >= threshold).sum()) > 20
    assert all(r["reason_1"] for r in rows), "every listed customer has a reason"
    assert not any(" = " in r["reason_1"] for r in rows), "a caller's words, not a column"


def test_reasons_set_customers_apart_from_the_week(production_model, logged):
    scored = logged[0]
    explainer = explain.build_explainer(production_model)
    top = scored.nlargest(200, "probability")
    absolute = explain.reason_codes(None, top, explainer=explainer, phrasing="caller")
    relative = call_lists.model_reasons(explainer, scored)(top)
    share = scored["contact"].eq("cellular").mean()
    assert share > 0.5, "most of the week is reached on a mobile"

    def mobile_first(table: pd.DataFrame) -> int:
        return int((table["reason_1"] == "reachable on a mobile").sum())

    assert mobile_first(relative) < mobile_first(absolute)
    assert relative["reason_1"].nunique() > absolute["reason_1"].nunique()


def test_holdout_rows_keep_their_reasons_and_are_marked(production_model, logged):
    scored, sha, store = logged
    request = call_lists.CallListRequest(
        threshold=0.1,
        do_not_call=call_lists.do_not_call_ids(scored[ID_COLUMN].iloc[:300]),
        holdout_share=0.2,
        seed=7,
    )
    prepared = call_lists.prepare_call_list(
        scored,
        default_settings(),
        request,
        cohort_name="week39.csv",
        model_version=production_model.version,
        reasons=call_lists.model_reasons(explain.build_explainer(production_model), scored),
    )
    frame = prepared.call_list.frame
    held = frame[frame["group"] == calllist.GROUP_HOLDOUT]
    assert len(held) == prepared.held_out_calls > 0
    assert (held["reason_1"] != "").all()
    assert not frame[ID_COLUMN].isin(request.do_not_call).any(), "do-not-call never called"
    words = prepared.count_words()
    assert f"{len(frame) - len(held):,} chosen by the model" in words
    assert f"{len(held):,} drawn at random" in words
    people = calllist.people_table(prepared.call_list)
    assert set(people["Chosen by"]) == {"the model", "random draw (A/B comparison)"}
    assert set(people["Priority"]) <= {"High", "Medium", "Low"}
    again = call_lists.prepare_call_list(
        scored,
        default_settings(),
        request,
        cohort_name="week39.csv",
        model_version=production_model.version,
    )
    assert again.call_list.frame[ID_COLUMN].tolist() == frame[ID_COLUMN].tolist()
    first = call_lists.record_call_list(prepared, file_sha256=sha, store=store)
    second = call_lists.record_call_list(again, file_sha256=sha, store=store)
    assert first.list_id == second.list_id and len(store.call_lists()) == 1
    other = call_lists.CallListRequest(threshold=0.1, holdout_share=0.2, seed=8)
    third = call_lists.record_call_list(
        call_lists.prepare_call_list(
            scored,
            default_settings(),
            other,
            cohort_name="week39.csv",
            model_version=production_model.version,
        ),
        file_sha256=sha,
        store=store,
    )
    assert third.list_id != first.list_id and len(store.call_lists()) == 2


def test_priority_bands_and_dialler_columns_are_stable():
    p = np.array([0.05, 0.0999, 0.1, 0.29, 0.3, 0.9])
    assert calllist.priority_of(p).tolist() == ["low", "low", "medium", "medium", "high", "high"]
    frame = pd.DataFrame(
        {ID_COLUMN: ["a", "b"], "probability": [0.4, 0.05], "rank": [1, 2], "job": "x"}
    )
    table = calllist.export_table(calllist.CallList(frame=frame, threshold=0.0))
    assert list(table.columns)[:8] == [ID_COLUMN, "rank", "probability", "priority", "group"] + [
        "reason_1",
        "reason_2",
        "reason_3",
    ]
    assert table["group"].tolist() == ["model", "model"]


def test_an_unknown_format_is_refused_in_words(production_model, logged):
    scored = logged[0]
    prepared = call_lists.prepare_call_list(
        scored,
        BusinessSettings(),
        call_lists.CallListRequest(threshold=0.5),
        cohort_name="w",
        model_version=production_model.version,
    )
    with pytest.raises(TermDepositError, match="Unknown call-list format 'pdf'"):
        prepared.file_bytes("pdf")
    assert prepared.reasons_note == "Reasons: not available for this list" or not len(prepared)


def test_a_group_policy_reaches_the_list_and_its_about_sheet(production_model, logged, tmp_path):
    scored, sha, store = logged
    request = call_lists.CallListRequest(
        threshold=0.12, group_policy=("parity_same_calls", "age band")
    )
    prepared = call_lists.prepare_call_list(
        scored,
        default_settings(),
        request,
        cohort_name="week39.csv",
        model_version=production_model.version,
        reasons=call_lists.model_reasons(explain.build_explainer(production_model), scored),
    )
    single = call_lists.prepare_call_list(
        scored,
        default_settings(),
        call_lists.CallListRequest(threshold=0.12),
        cohort_name="week39.csv",
        model_version=production_model.version,
    )
    listed = scored[ID_COLUMN].isin(prepared.call_list.frame[ID_COLUMN])
    bands = fairness.groups_of(scored, "age band")
    shares = listed.groupby(bands.to_numpy()).mean()
    sizes = bands.value_counts()
    # every group called at the same share (up to one customer of rounding per group)
    assert (shares.max() - shares.min()) <= 1.0 / sizes[sizes > 0].min() + 1e-9
    assert abs(len(prepared) - len(single)) <= len(sizes)
    assert not prepared.call_list.frame[ID_COLUMN].equals(single.call_list.frame[ID_COLUMN])
    assert any(
        n.startswith("Group policy: Per-group thresholds by age band") for n in prepared.notes()
    )
    out = tmp_path / "policy.csv"
    result = CliRunner().invoke(
        app,
        ["issue", "--cohort", "week39.csv", "--threshold", "0.12"]
        + ["--group-policy", "parity_same_calls", "--group-by", "age band", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == prepared.file_bytes("csv")
