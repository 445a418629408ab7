"""The reference data: download and verification, calendar reconstruction, cohorts."""

from __future__ import annotations

import http.server
import io
import threading
import zipfile
from pathlib import Path

import pytest

from termdeposit.core import config
from termdeposit.data.dataset import (
    DataDownloadError,
    build_processed,
    fetch_data,
    make_cohort,
    weeks_table,
)


class _Server:
    """A local HTTP server on 127.0.0.1 serving fixed bytes at /archive.zip."""

    def __init__(self, payload: bytes, status: int = 200) -> None:
        payload_ref, status_ref = payload, status

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                self.send_response(status_ref)
                self.send_header("Content-Length", str(len(payload_ref)))
                self.end_headers()
                self.wfile.write(payload_ref)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/archive.zip"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _outer_zip(inner: bytes) -> bytes:
    """Wrap bank-additional.zip the way the real UCI archive does."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("bank.zip", b"PK\x05\x06" + b"\x00" * 18)
        archive.writestr("bank-additional.zip", inner)
    return buffer.getvalue()


def test_fetch_downloads_unpacks_nested_zip_and_verifies(data_dir, tmp_path):
    payload = _outer_zip((data_dir / "bank-additional.zip").read_bytes())
    with _Server(payload) as server:
        path = fetch_data(server.url, tmp_path)
    assert path == tmp_path / config.RAW_FILE_NAME
    assert path.read_bytes() == (data_dir / config.RAW_FILE_NAME).read_bytes()


def test_fetch_wrong_checksum_writes_nothing(data_dir, tmp_path):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("bank-additional/bank-additional-full.csv", b"age;job\n1;x\n")
    with (
        _Server(_outer_zip(inner.getvalue())) as server,
        pytest.raises(DataDownloadError, match="wrong checksum"),
    ):
        fetch_data(server.url, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_fetch_broken_zip_and_http_error_and_no_network(tmp_path):
    with _Server(b"not a zip") as server, pytest.raises(DataDownloadError, match="broken"):
        fetch_data(server.url, tmp_path)
    with _Server(b"gone", status=404) as server, pytest.raises(DataDownloadError, match="404"):
        fetch_data(server.url, tmp_path)
    with pytest.raises(DataDownloadError, match="Could not reach"):
        fetch_data("http://127.0.0.1:9/archive.zip", tmp_path, timeout=2)
    assert list(tmp_path.iterdir()) == []


def test_calendar_counts_per_year(reference):
    assert len(reference) == 41188
    assert reference.groupby("year").size().to_dict() == {2008: 27690, 2009: 11440, 2010: 2058}
    assert reference["week"].nunique() == 119
    assert reference["week"].is_monotonic_increasing


def test_scored_weeks_match_the_data_readme(reference):
    scored = reference[reference["week"] >= 13]
    assert len(scored) == 23869 and int(scored["y"].sum()) == 3879


def test_weeks_table_and_cohort(reference):
    table = weeks_table(reference)
    assert table["rows"].sum() == 41188
    cohort = make_cohort(reference, 60)
    assert len(cohort) == int(table.loc[table["week"] == 60, "rows"].iloc[0])
    assert "y" not in cohort and "duration" not in cohort
    assert cohort["customer_id"].is_unique
    assert "y" in make_cohort(reference, 60, with_outcomes=True)


def test_make_cohort_unknown_week(reference):
    with pytest.raises(Exception, match="no week 500"):
        make_cohort(reference, 500)


def test_processed_parquet(reference, tmp_path, monkeypatch):
    import pandas as pd

    monkeypatch.setenv("TERMDEPOSIT_PROCESSED", str(tmp_path))
    path = build_processed()
    table = pd.read_parquet(path)
    assert len(table) == 41188 and {"year", "week", "customer_id"} <= set(table.columns)


def test_changed_reference_file_is_refused(data_dir, tmp_path):
    from termdeposit.core.errors import TermDepositError
    from termdeposit.data.dataset import verify_raw_file

    copy = tmp_path / config.RAW_FILE_NAME
    copy.write_bytes((data_dir / config.RAW_FILE_NAME).read_bytes()[:-10])
    with pytest.raises(TermDepositError, match="checksum"):
        verify_raw_file(copy)
    with pytest.raises(TermDepositError, match="fetch-data"):
        verify_raw_file(Path(tmp_path / "missing.csv"))


def test_fetch_never_shows_credentials_of_the_url(tmp_path, caplog):
    """A data URL with user:password@ or a token in its query: neither is logged or shown."""
    caplog.set_level("DEBUG")
    url = "http://analyst:s3cr3t-pw@127.0.0.1:9/archive.zip?token=t0k3n-value"
    with pytest.raises(DataDownloadError) as info:
        fetch_data(url, tmp_path, timeout=2)
    shown = f"{info.value.message} {info.value.hint or ''} {caplog.text}"
    assert "127.0.0.1:9/archive.zip" in shown
    assert "s3cr3t-pw" not in shown and "t0k3n-value" not in shown and "analyst" not in shown
    assert not any(tmp_path.iterdir())
