"""The Dask engine: partitioned cohorts give the pandas engine's output, byte for byte."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from termdeposit.apps.cli import app
from termdeposit.core.errors import CohortValidationError, TermDepositError
from termdeposit.core.schema import ID_COLUMN
from termdeposit.data.fast_csv import csv_bytes
from termdeposit.modeling.dask_scoring import dask_client, read_partitions, score_partitioned
from termdeposit.modeling.predict import score_file

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def client():
    """A 2-worker local cluster in this process (fast to start)."""
    with dask_client(workers=2, processes=False) as dask:
        yield dask


@pytest.fixture(scope="module")
def cohort(week_cohort) -> pd.DataFrame:
    """900 customers of the week-39 cohort, with outcomes."""
    return week_cohort.head(900)


def _write_parts(frame: pd.DataFrame, folder: Path, parts: int, kind: str = "csv") -> Path:
    folder.mkdir()
    size = -(-len(frame) // parts)
    for i in range(parts):
        part = frame.iloc[i * size : (i + 1) * size]
        if kind == "csv":
            (folder / f"part-{i:03d}.csv").write_bytes(csv_bytes(part))
        else:
            part.to_parquet(folder / f"part-{i:03d}.parquet", index=False)
    return folder


def _pandas_output(model, frame: pd.DataFrame, tmp: Path, **rule) -> bytes:
    whole = tmp / "whole.csv"
    whole.write_bytes(csv_bytes(frame))
    score_file(model, whole, tmp / "pandas.csv", **rule)
    return (tmp / "pandas.csv").read_bytes()


@pytest.mark.parametrize("rule", [{}, {"top_n": 300}, {"threshold": 0.2}])
def test_folder_of_csv_partitions_equals_pandas_engine(
    client, production_model, cohort, tmp_path, rule
):
    folder = _write_parts(cohort, tmp_path / "parts", 3)
    out = tmp_path / "dask.csv"
    summary = score_partitioned(production_model, folder, out, client=client, **rule)
    assert summary.rows == len(cohort)
    assert out.read_bytes() == _pandas_output(production_model, cohort, tmp_path, **rule)


def test_one_file_split_into_blocks_equals_pandas_engine(
    client, production_model, cohort, tmp_path
):
    expected = _pandas_output(production_model, cohort, tmp_path)
    assert read_partitions(tmp_path / "whole.csv", 40_000).frame.npartitions > 1
    out = tmp_path / "dask.csv"
    score_partitioned(
        production_model, tmp_path / "whole.csv", out, client=client, blocksize=40_000
    )
    assert out.read_bytes() == expected


def test_parquet_partitions_and_generated_ids(client, production_model, cohort, tmp_path):
    without_ids = cohort.drop(columns=[ID_COLUMN])
    folder = _write_parts(without_ids, tmp_path / "parts", 4, kind="parquet")
    out = tmp_path / "dask.csv"
    summary = score_partitioned(production_model, folder, out, client=client)
    assert out.read_bytes() == _pandas_output(production_model, without_ids, tmp_path)
    assert any("no customer id column" in notice for notice in summary.notices)


def test_bad_partition_is_named_with_its_rows(client, production_model, cohort, tmp_path):
    broken = cohort.astype({"age": object})
    broken.loc[400, "age"] = "old"
    folder = _write_parts(broken, tmp_path / "parts", 3)
    with pytest.raises(CohortValidationError) as error:
        score_partitioned(production_model, folder, tmp_path / "out.csv", client=client)
    problem = error.value.problems[0]
    assert problem.column == "part-001.csv: age"
    assert problem.rows == str(400 - 300 + 2)
    assert not (tmp_path / "out.csv").exists()


def test_duplicate_ids_across_partitions(client, production_model, cohort, tmp_path):
    doubled = pd.concat([cohort.head(50), cohort.head(50)], ignore_index=True)
    folder = _write_parts(doubled, tmp_path / "parts", 2)
    with pytest.raises(CohortValidationError, match="more than once"):
        score_partitioned(production_model, folder, tmp_path / "out.csv", client=client)


def test_unusable_inputs(client, production_model, tmp_path):
    with pytest.raises(TermDepositError, match="no .csv or .parquet"):
        score_partitioned(production_model, tmp_path, tmp_path / "o.csv", client=client)
    (tmp_path / "a.csv").write_text("customer_id,age\n1,30\n")
    (tmp_path / "b.csv").write_text("age,customer_id\n30,2\n")
    with pytest.raises(TermDepositError, match="same header"):
        score_partitioned(production_model, tmp_path, tmp_path / "o.csv", client=client)


def test_cli_dask_engine_on_a_scheduler_address(client, production_model, cohort, tmp_path):
    folder = _write_parts(cohort, tmp_path / "parts", 2)
    out = tmp_path / "calls.csv"
    result = CliRunner().invoke(
        app,
        ["score", str(folder), "--out", str(out), "--engine", "dask"]
        + ["--scheduler", client.scheduler_info()["address"]],
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == _pandas_output(production_model, cohort, tmp_path)
    unknown = CliRunner().invoke(app, ["score", str(folder), "--engine", "spark"])
    assert unknown.exit_code == 2
    assert "Unknown engine" in unknown.output
