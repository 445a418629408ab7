"""Under load: several processes scoring and recording outcomes at once lose and duplicate nothing.

Real ``termdeposit`` processes run side by side against one database (a SQLite file, or a
schema on the PostgreSQL test server): the same cohort file scored by several of them at once
must become one cohort with one set of predictions, different files their own cohorts, and
overlapping outcome uploads (in different row orders) must store every outcome exactly once.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from test_faults import child_argv, children, wait_until_paused  # noqa: F401 (a fixture)
from typer.testing import CliRunner

from termdeposit.apps.cli import app
from termdeposit.data.dataset import make_cohort
from termdeposit.services.outcomes import outcomes_file
from termdeposit.storage import store

TERMDEPOSIT = str(Path(sys.executable).with_name("termdeposit"))
#: Weeks of the reference data used as cohort files (rows: 483, 325, 505, 2,122).
WEEKS = {"A": 40, "B": 41, "C": 42, "D": 38}
PROCESS_TIMEOUT = 600


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _count(s: store.Store, table: sa.Table) -> int:
    return int(s.read(sa.select(sa.func.count()).select_from(table)).iloc[0, 0])


def _logged_ids(s: store.Store, cohort_id: int) -> list[set[str]]:
    """The customer ids of each scoring run of a cohort."""
    runs = s.scoring_runs(cohort_id)
    return [set(s.predictions(int(run))["customer_id"]) for run in runs["id"]]


@pytest.fixture()
def cohort_files(reference, tmp_path) -> dict[str, tuple[Path, pd.DataFrame]]:
    files = {}
    for name, week in WEEKS.items():
        frame = make_cohort(reference, week)
        path = tmp_path / f"week{week}.csv"
        frame.to_csv(path, index=False)
        files[name] = (path, frame)
    return files


@pytest.mark.slow
def test_concurrent_scoring_and_feedback_store_everything_once(
    db_url,  # noqa: F811
    production_model,
    cohort_files,
    tmp_path,
    monkeypatch,
    children,  # noqa: F811
):
    monkeypatch.setenv("TERMDEPOSIT_DB_URL", db_url)
    s = store.open_store(db_url)
    # Cohort D was scored last week; its outcomes come back while this week's files are scored.
    d_path, d_frame = cohort_files["D"]
    first = CliRunner().invoke(app, ["score", str(d_path), "--out", str(tmp_path / "d.csv")])
    assert first.exit_code == 0, first.output
    ids = list(d_frame["customer_id"][:1500])
    truth = pd.DataFrame(
        {
            "customer_id": ids,
            "called": [i % 3 != 0 for i in range(len(ids))],
            "subscribed": [i % 3 != 0 and i % 7 == 0 for i in range(len(ids))],
        }
    )
    uploads = {
        "first900": truth.iloc[0:900],
        "last900_reversed": truth.iloc[600:1500].iloc[::-1],
        "middle_shuffled": truth.iloc[300:1200].sample(frac=1, random_state=1),
        "all": truth,
    }
    commands = []
    for name, part in uploads.items():
        path = tmp_path / f"outcomes_{name}.csv"
        path.write_bytes(outcomes_file(part))
        commands.append(("feedback", name, [TERMDEPOSIT, "feedback", str(path)]))
    plan = [("A", 1), ("A", 2), ("A", 3), ("B", 1), ("B", 2), ("C", 1)]
    for name, n in plan:
        out = tmp_path / f"scored_{name}{n}.csv"
        argv = [TERMDEPOSIT, "score", str(cohort_files[name][0]), "--out", str(out)]
        commands.append(("score", name, argv))

    started = time.perf_counter()
    processes = [
        (kind, name, children(argv, stderr=subprocess.STDOUT)) for kind, name, argv in commands
    ]
    results = [
        (kind, name, p.communicate(timeout=PROCESS_TIMEOUT)[0], p.returncode)
        for kind, name, p in processes
    ]
    seconds = time.perf_counter() - started
    failed = [(kind, name, output) for kind, name, output, code in results if code != 0]
    assert not failed, failed

    # Cohorts: D, and one per distinct file however many processes scored it.
    cohorts = s.cohorts().set_index("file_sha256")
    expected_rows = {_sha(path): len(frame) for path, frame in cohort_files.values()}
    assert cohorts["rows"].to_dict() == expected_rows
    for name, (path, frame) in cohort_files.items():
        cohort_id = int(cohorts.loc[_sha(path), "id"])
        assert _logged_ids(s, cohort_id) == [set(frame["customer_id"])], name
        outputs = [output for kind, n, output, _ in results if kind == "score" and n == name]
        if name != "D":  # scored by the processes: all say the same cohort, one created it
            numbers = {re.search(r"Logged as cohort (\d+)", o).group(1) for o in outputs}
            assert numbers == {str(cohort_id)}, outputs
            assert sum("scored before" not in o for o in outputs) == 1, outputs
    total = sum(expected_rows.values())
    assert _count(s, store.scorings) == len(WEEKS)
    assert _count(s, store.predictions) == total
    assert _count(s, store.cohort_customers) == total

    # Outcomes: every row once, with its value, and the uploads' counts add up.
    stored = s.outcomes()
    assert len(stored) == len(truth) and stored["customer_id"].is_unique
    merged = stored.merge(truth, on="customer_id", suffixes=("", "_truth"))
    assert len(merged) == len(truth)
    assert (merged["called"] == merged["called_truth"]).all()
    assert (merged["subscribed"] == merged["subscribed_truth"]).all()
    added = [
        int(m.group(1)) if (m := re.search(r"Recorded (\d+) new outcomes", output)) else 0
        for kind, _, output, _ in results
        if kind == "feedback"
    ]
    assert sum(added) == len(truth)
    assert int(s.outcome_uploads()["added"].sum()) == len(truth)
    print(
        f"\n[load] {s.dialect}: {len(processes)} processes ({len(plan)} scoring, "
        f"{len(uploads)} feedback) in {seconds:.1f} s; {len(WEEKS)} cohorts, {total} customers "
        f"and predictions, {sum(len(p) for p in uploads.values())} outcome rows uploaded, "
        f"{len(truth)} stored"
    )


# -- two scorings writing the same output file -------------------------------------------------


def _child_score_paused(cohort: str, out: str, release: str) -> None:
    """``termdeposit score`` that pauses when it starts logging, before anything is logged."""
    real = store.Store.log_scoring

    def paused(*args, **kwargs):
        print("PAUSED", file=sys.__stdout__, flush=True)
        while not Path(release).exists():
            time.sleep(0.05)
        return real(*args, **kwargs)

    store.Store.log_scoring = paused
    result = CliRunner().invoke(app, ["score", cohort, "--out", out])
    sys.__stderr__.write(result.output)
    sys.exit(result.exit_code)


def test_two_scorings_writing_the_same_output_log_their_own_customers(
    db_url,  # noqa: F811
    production_model,
    cohort_files,
    tmp_path,
    monkeypatch,
    children,  # noqa: F811
):
    monkeypatch.setenv("TERMDEPOSIT_DB_URL", db_url)
    out, release = tmp_path / "calls.csv", tmp_path / "release"
    (a_path, a_frame), (b_path, b_frame) = cohort_files["A"], cohort_files["B"]
    slow = children(child_argv(__file__, "score-paused", a_path, out, release))
    wait_until_paused(slow)  # cohort A is scored, not yet logged
    fast = CliRunner().invoke(app, ["score", str(b_path), "--out", str(out)])
    assert fast.exit_code == 0, fast.output
    release.touch()
    _, err = slow.communicate(timeout=PROCESS_TIMEOUT)
    assert slow.returncode == 0, err

    s = store.open_store(db_url)
    cohorts = s.cohorts().set_index("file_sha256")
    for path, frame in ((a_path, a_frame), (b_path, b_frame)):
        cohort_id = int(cohorts.loc[_sha(path), "id"])
        assert _logged_ids(s, cohort_id) == [set(frame["customer_id"])], path.name
    # The file holds the run that finished last, whole.
    assert set(pd.read_csv(out, dtype=str)["customer_id"]) == set(a_frame["customer_id"])
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


if __name__ == "__main__":
    {"score-paused": _child_score_paused}[sys.argv[1]](*sys.argv[2:])
