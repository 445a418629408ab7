"""Data drops listed and read the same way from a folder and from an ``s3://`` prefix (a local
S3-compatible server on 127.0.0.1), and 'termdeposit ingest' of a whole prefix: every drop
once, nothing twice when it runs again."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from termdeposit.apps.cli import app
from termdeposit.core.errors import TermDepositError
from termdeposit.data.dataset import make_cohort
from termdeposit.data.drops import list_drops, read_drop
from termdeposit.data.object_storage import open_filesystem
from termdeposit.storage import store


@pytest.fixture(scope="module")
def drop_bytes(reference) -> dict[str, bytes]:
    """Two weekly drops (customers called, with outcomes) as CSV bytes, by file name."""
    return {
        f"2009-w{week}.csv": make_cohort(reference, week, with_outcomes=True)
        .to_csv(index=False)
        .encode()
        for week in (60, 61)
    }


def _put_in_bucket(url: str, files: dict[str, bytes]) -> None:
    fs, root = open_filesystem(url)
    for name, data in files.items():
        fs.pipe_file(f"{root}/{name}", data)


def test_drops_in_a_folder_and_in_object_storage_read_the_same(drop_bytes, tmp_path, s3_endpoint):
    from s3_support import new_bucket

    folder = tmp_path / "drops"
    folder.mkdir()
    extra = {".partial.csv": b"hidden", "notes.md": b"not a drop"}
    for name, data in {**drop_bytes, **extra}.items():
        (folder / name).write_bytes(data)
    (folder / "archive").mkdir()
    url = f"s3://{new_bucket(s3_endpoint)}/incoming"
    _put_in_bucket(url, {**drop_bytes, **extra, "archive/old.csv": b"a,b\n"})

    local, remote = list_drops(folder), list_drops(url + "/")
    assert [d.name for d in local] == [d.name for d in remote] == sorted(drop_bytes)
    assert [d.size for d in local] == [d.size for d in remote]
    assert [read_drop(d) for d in local] == [read_drop(d) for d in remote]
    assert read_drop(remote[0]) == drop_bytes[remote[0].name]
    one = list_drops(f"{url}/{remote[1].name}")
    assert [(d.name, d.location) for d in one] == [(remote[1].name, remote[1].location)]

    with pytest.raises(TermDepositError, match="no data drops"):
        list_drops(url.replace("incoming", "nothing-here"))
    with pytest.raises(TermDepositError, match="no data drop at"):
        read_drop(url + "/missing.csv")
    with pytest.raises(TermDepositError, match="no folder or file"):
        list_drops(tmp_path / "missing")


def test_ingest_takes_an_object_storage_prefix_once(
    drop_bytes, reference, tmp_path, s3_endpoint, monkeypatch
):
    from s3_support import new_bucket

    db = f"sqlite:///{tmp_path / 'ops.db'}"
    monkeypatch.setenv("TERMDEPOSIT_DB_URL", db)
    url = f"s3://{new_bucket(s3_endpoint)}/drops"
    _put_in_bucket(url, drop_bytes)
    runner = CliRunner()
    first = runner.invoke(app, ["ingest", url])
    assert first.exit_code == 0, first.output
    assert first.output.count("Ingested 2009-w") == 2
    again = runner.invoke(app, ["ingest", url])
    assert again.exit_code == 0, again.output
    assert again.output.count("was ingested before") == 2
    cohorts = store.open_store(db).cohorts()
    assert sorted(cohorts["name"]) == sorted(drop_bytes)
    rows = sum(len(make_cohort(reference, w, with_outcomes=True)) for w in (60, 61))
    assert int(cohorts["rows"].sum()) == rows
    labelled = runner.invoke(app, ["ingest", url, "--week-label", "2009-w60"])
    assert labelled.exit_code == 2 and "one file at a time" in labelled.output
