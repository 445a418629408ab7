"""The bad-input corpus on the command line's other paths: large files, ``--chunked``, Dask.

Every corpus file (``fixtures/bad_inputs/``) also goes, as a user would send it:

- grown past the chunk size (``corpus_support.large_variant`` repeats its rows), through
  ``termdeposit score``, which then reads it in chunks;
- as it is, through ``termdeposit score --chunked``;
- as it is and grown, through ``termdeposit score --engine dask`` (a local cluster's scheduler).

The chunk setting is lowered for these tests (``TERMDEPOSIT_CHUNK_MB``, the product's one
setting) so a grown file streams in several chunks or Dask partitions; one test reads real
files over the default 64 MiB. A refused file exits 2 with one ``Error:`` line naming what is
wrong (on the small file: the same words as the default path), writes no output and leaves
the database and the models folder as they were. An accepted file gives the same scores as the
small file, row for row (on the small file: the same output, byte for byte).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from corpus_support import (
    CASES,
    CORPUS,
    SMALL_COHORT,
    TEST_CHUNK_MB,
    case_id,
    cohort_refusal,
    grown_scores,
    large_variant,
    models_digest,
    store_counts,
)
from typer.testing import CliRunner

from termdeposit.apps.cli import app
from termdeposit.modeling.dask_scoring import dask_client
from termdeposit.modeling.predict import DECISION_NO, DECISION_YES, decisions, score_file

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
runner = CliRunner()
LARGE_CASES = [c for c in CASES if large_variant(c["file"]) is not None]


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Files over ~31 KB are read in chunks (and cut into Dask partitions of that size)."""
    monkeypatch.setenv("TERMDEPOSIT_CHUNK_MB", TEST_CHUNK_MB)


@pytest.fixture(scope="module")
def scheduler():
    """The address of a 2-worker local Dask cluster in this process, for ``--scheduler``."""
    with dask_client(workers=2, processes=False) as client:
        yield client.scheduler_info()["address"]


@pytest.fixture(scope="module")
def pandas_output(production_model, tmp_path_factory):
    """The pandas engine's scored output of a file (default path), by file: bytes."""
    folder = tmp_path_factory.mktemp("pandas-engine")
    made: dict[Path, bytes] = {}

    def output(source: Path) -> bytes:
        if source not in made:
            out = folder / f"{len(made)}.csv"
            score_file(production_model, source, out, name=source.name)
            made[source] = out.read_bytes()
        return made[source]

    return output


def _scores(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data), dtype={"customer_id": str}, keep_default_na=False)


def _score(args: list[str], ops_db, out: Path) -> tuple:  # noqa: ANN001
    before, models = store_counts(ops_db), models_digest()
    result = runner.invoke(app, ["score", *args, "--out", str(out)])
    return result, before, models


def _check_refused(result, case, out, ops_db, before, models, message=None) -> None:  # noqa: ANN001
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    assert result.output.count("Error:") == 1, result.output
    assert case["expect"].lower() in result.output.lower(), result.output
    if message is not None:
        assert f"Error: {message}\n" in result.output, "the default path's words"
    assert not out.exists()
    assert store_counts(ops_db) == before
    assert models_digest() == models


def _check_same_scores(large: pd.DataFrame, small: pd.DataFrame, model, name) -> None:  # noqa: ANN001
    """The grown file reads as the small file's rows repeated, and scores as the product
    scores the grown cohort whole (its week's rate followed over all its rows)."""
    assert len(large) % len(small) == 0 and len(large) > len(small)
    copies = len(large) // len(small)
    for column in ("age", "job", "euribor3m"):
        expected = np.tile(small[column].to_numpy(), copies)
        assert np.array_equal(large[column].to_numpy(), expected), column
    probabilities = grown_scores(model, name, copies)
    np.testing.assert_allclose(large["probability"].to_numpy(float), probabilities, rtol=1e-14)
    call = decisions(probabilities, model.threshold)
    assert large["decision"].tolist() == np.where(call, DECISION_YES, DECISION_NO).tolist()


@pytest.mark.parametrize("case", LARGE_CASES, ids=case_id)
def test_large_files_are_read_in_chunks_under_the_same_contract(
    case, ops_db, tmp_path, pandas_output, production_model
):
    source = tmp_path / case["file"]
    source.write_bytes(large_variant(case["file"]))
    out = tmp_path / "calls.csv"
    result, before, models = _score([str(source)], ops_db, out)
    if not case["accept"]:
        _check_refused(result, case, out, ops_db, before, models)
        return
    assert result.exit_code == 0, result.output
    scored = _scores(out.read_bytes())
    small = _scores(pandas_output(CORPUS / case["file"]))
    _check_same_scores(scored, small, production_model, case["file"])
    assert store_counts(ops_db)["predictions"] == before["predictions"] + len(scored)
    assert models_digest() == models


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_the_chunked_flag_answers_as_the_default_path(case, ops_db, tmp_path, pandas_output):
    source = CORPUS / case["file"]
    out = tmp_path / "calls.csv"
    result, before, models = _score([str(source), "--chunked"], ops_db, out)
    if not case["accept"]:
        _check_refused(result, case, out, ops_db, before, models, cohort_refusal(case["file"]))
        return
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == pandas_output(source)
    assert store_counts(ops_db)["predictions"] == before["predictions"] + case["rows"]


@pytest.mark.parametrize("size", ["small", "large"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_the_dask_engine_answers_as_the_pandas_engine(
    case, size, ops_db, tmp_path, scheduler, pandas_output
):
    if size == "small":
        source = CORPUS / case["file"]
    else:
        data = large_variant(case["file"])
        if data is None:
            return  # workbooks and the empty file have no large variant (see LARGE_CASES)
        source = tmp_path / case["file"]
        source.write_bytes(data)
    out = tmp_path / "calls.csv"
    options = ["--engine", "dask", "--scheduler", scheduler]
    result, before, models = _score([str(source), *options], ops_db, out)
    if not case["accept"]:
        words = cohort_refusal(case["file"]) if size == "small" else None
        _check_refused(result, case, out, ops_db, before, models, words)
        return
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == pandas_output(source), "byte for byte the pandas engine's"
    assert models_digest() == models


@pytest.mark.slow
def test_real_files_over_64_mib(ops_db, tmp_path, monkeypatch, production_model):
    """The default setting: files over 64 MiB are chunked, and keep the contract.

    One file puts together what the issue found broken above 64 MiB: Latin-1 text, tab
    separators and CR-only line ends (before: UnicodeDecodeError, "not a cohort file", csv
    Error). Another repeats a column (before: scored with the second ``age`` set aside).
    """
    monkeypatch.delenv("TERMDEPOSIT_CHUNK_MB")
    header, *rows = SMALL_COHORT.read_text().strip("\n").split("\n")
    target = 65 * 2**20
    copies = target // len("\r".join(rows)) + 1

    def grown(head: str, line: str, separator: str, newline: str, encoding: str) -> Path:
        path = tmp_path / f"big-{separator == chr(9)}-{encoding}.csv"
        with open(path, "wb") as handle:
            handle.write((head.replace(",", separator) + newline).encode(encoding))
            for copy in range(copies):
                text = newline.join(line.format(copy=copy, row=r) for r in rows) + newline
                handle.write(text.replace(",", separator).encode(encoding))
        assert path.stat().st_size > 64 * 2**20
        return path

    latin = grown(header, "Ç{copy}-{row}", "\t", "\r", "latin-1")
    out = tmp_path / "calls.csv"
    result, before, models = _score([str(latin)], ops_db, out)
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(out, dtype={"customer_id": str}, nrows=5 * 1000)
    assert scored["customer_id"].iloc[0].startswith("Ç0-C37096")
    whole = grown_scores(production_model, SMALL_COHORT, copies)[: len(scored)]
    np.testing.assert_allclose(scored["probability"].to_numpy(float), whole, rtol=1e-14)
    assert f"Scored {copies * len(rows)} customers" in result.output

    twice = grown(header.replace(",age,", ",age,age,"), "{row}", ",", "\n", "utf-8")
    case = {"expect": "age: appears twice", "file": twice.name}
    refused = tmp_path / "refused.csv"
    result, before, models = _score([str(twice)], ops_db, refused)
    _check_refused(result, case, refused, ops_db, before, models)
