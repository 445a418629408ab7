"""The reference data: download and verify the UCI archive, load it, rebuild years and weeks.

The UCI file has no date column. Rows are in time order, so the calendar is rebuilt from the
month sequence (a new year wherever the month index drops by more than 6) and the weekday
sequence (a new week wherever ``day_of_week`` steps back or the month changes): 119 weeks from
May 2008 to November 2010.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from termdeposit.core import config
from termdeposit.core.errors import TermDepositError
from termdeposit.core.logs import get_logger
from termdeposit.core.schema import ID_COLUMN, INPUT_COLUMNS, NUMERIC_INPUTS, TARGET
from termdeposit.data.cohort_file import validate_cohort

log = get_logger("dataset")

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("mon", "tue", "wed", "thu", "fri")
FIRST_YEAR = 2008
PROCESSED_FILE = "bank_full.parquet"


class DataDownloadError(TermDepositError):
    """The archive could not be fetched or did not hold the expected, intact data."""


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _find_member(archive: zipfile.ZipFile, name: str) -> str | None:
    for member in archive.namelist():
        if member.startswith("__MACOSX/"):
            continue
        if member.rsplit("/", 1)[-1] == name:
            return member
    return None


def extract_full_csv(archive_bytes: bytes) -> bytes:
    """Return ``bank-additional-full.csv`` from the archive (outer zip or the inner one).

    Raises:
        DataDownloadError: not a zip, or the file is not inside it.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(archive_bytes))
        member = _find_member(archive, config.RAW_FILE_NAME)
        if member is not None:
            return archive.read(member)
        inner = _find_member(archive, "bank-additional.zip")
        if inner is None:
            raise DataDownloadError(
                f"The archive holds neither {config.RAW_FILE_NAME} nor bank-additional.zip.",
                hint="Check the download address (TERMDEPOSIT_DATA_URL).",
            )
        return extract_full_csv(archive.read(inner))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise DataDownloadError(
            "The downloaded archive is broken (not a valid zip file).",
            hint="Try again later; if it persists, download it by hand into data/raw/.",
        ) from exc


def _atomic_write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _without_credentials(url: str) -> str:
    """The URL as it may be shown or logged: no user:password@ part, no query string."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def fetch_data(
    url: str | None = None, dest_dir: Path | None = None, timeout: float = 60.0
) -> Path:
    """Download the UCI archive, verify ``bank-additional-full.csv`` and write it to dest_dir.

    Nothing is written unless the checksum matches, so a failure leaves no partial file.

    Returns:
        The path of the verified CSV file.

    Raises:
        DataDownloadError: no network, HTTP error, broken zip or wrong checksum.
    """
    url = url or os.environ.get("TERMDEPOSIT_DATA_URL", config.DATA_URL)
    dest = (dest_dir or config.raw_data_dir()) / config.RAW_FILE_NAME
    shown = _without_credentials(url)
    log.info("downloading %s", shown)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed URL)
            payload = response.read()
    except urllib.error.HTTPError as exc:
        raise DataDownloadError(
            f"The data server answered {exc.code} for {shown}.",
            hint="Try again later, or put bank-additional-full.csv into data/raw/ by hand.",
        ) from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DataDownloadError(
            f"Could not reach {shown} ({getattr(exc, 'reason', exc)}).",
            hint="Check the network connection, or put bank-additional-full.csv into "
            "data/raw/ by hand (or point TERMDEPOSIT_DATA at a folder holding it).",
        ) from exc
    content = extract_full_csv(payload)
    digest = hashlib.sha256(content).hexdigest()
    if digest != config.RAW_FILE_SHA256:
        raise DataDownloadError(
            f"{config.RAW_FILE_NAME} has the wrong checksum ({digest[:12]}..., expected "
            f"{config.RAW_FILE_SHA256[:12]}...): the download is corrupt or the file changed.",
            hint="Nothing was written. Try again; if it persists, tell the data owner.",
        )
    _atomic_write(dest, content)
    log.info("wrote %s", dest)
    return dest


def verify_raw_file(path: Path | None = None) -> Path:
    """Check that the reference file exists and has the published checksum.

    Raises:
        TermDepositError: missing or changed file, with what to do.
    """
    path = path or config.raw_data_file()
    if not path.is_file():
        raise TermDepositError(
            f"The reference data is not there ({path}).",
            hint="Run 'termdeposit fetch-data' (or set TERMDEPOSIT_DATA to a folder holding "
            f"{config.RAW_FILE_NAME}).",
        )
    digest = sha256_file(path)
    if digest != config.RAW_FILE_SHA256:
        raise TermDepositError(
            f"{path} does not match the published checksum (found {digest[:12]}...).",
            hint="Delete it and run 'termdeposit fetch-data' again.",
        )
    return path


def add_calendar(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``year``, ``month_num``, ``week`` (0-based, global) and ``week_label`` columns.

    The frame must be in the data set's original (time) order.
    """
    month_num = frame["month"].map({m: i + 1 for i, m in enumerate(MONTHS)}).to_numpy(int)
    day_num = frame["day_of_week"].map({d: i for i, d in enumerate(DAYS)}).to_numpy(int)
    month_drop = np.diff(month_num, prepend=month_num[0]) < -6
    year = FIRST_YEAR + np.cumsum(month_drop)
    new_month = np.r_[False, month_num[1:] != month_num[:-1]]
    day_back = np.r_[False, day_num[1:] < day_num[:-1]]
    week = np.cumsum(new_month | day_back)
    out = frame.copy()
    out["year"] = year
    out["month_num"] = month_num
    out["week"] = week
    week_in_month = pd.Series(week).groupby([year, month_num]).transform(lambda s: s - s.min() + 1)
    out["week_label"] = [
        f"{y}-{m:02d} wk{w}"
        for y, m, w in zip(year, month_num, week_in_month.to_numpy(), strict=True)
    ]
    return out


def load_reference(path: Path | None = None, verify: bool = True) -> pd.DataFrame:
    """Load the reference data typed through the cohort contract, with calendar columns.

    Columns: ``customer_id`` (C00000 = first row of the file), the 19 inputs, ``duration``,
    ``y`` (0/1), ``year``, ``month_num``, ``week``, ``week_label``.
    """
    path = verify_raw_file(path) if verify else (path or config.raw_data_file())
    raw = pd.read_csv(path, sep=";", dtype=str, keep_default_na=False)
    raw.insert(0, ID_COLUMN, [f"C{i:05d}" for i in range(len(raw))])
    cohort = validate_cohort(raw)
    frame = cohort.frame
    frame[TARGET] = frame[TARGET].astype(int)
    frame["duration"] = pd.to_numeric(raw["duration"]).astype(float)
    return add_calendar(frame)


def build_processed(path: Path | None = None) -> Path:
    """Write the cleaned, calendar-annotated reference table to ``data/processed/`` (parquet)."""
    frame = load_reference(path)
    out = config.processed_dir() / PROCESSED_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".parquet.part")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, out)
    return out


def weeks_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per week: week, label, year, month, rows, subscribers, subscription rate."""
    grouped = frame.groupby("week", sort=True)
    table = pd.DataFrame(
        {
            "week": grouped.size().index,
            "label": grouped["week_label"].first().to_numpy(),
            "year": grouped["year"].first().to_numpy(),
            "month": grouped["month"].first().to_numpy(),
            "days": grouped["day_of_week"].agg(lambda d: f"{d.iloc[0]}-{d.iloc[-1]}").to_numpy(),
            "rows": grouped.size().to_numpy(),
            "subscribers": grouped[TARGET].sum().to_numpy(),
        }
    )
    table["rate"] = table["subscribers"] / table["rows"]
    return table


def make_cohort(frame: pd.DataFrame, week: int, with_outcomes: bool = False) -> pd.DataFrame:
    """Return the customers of one week as marketing receives them (id + inputs, no duration).

    Raises:
        TermDepositError: the week does not exist.
    """
    weeks = frame["week"]
    if week not in set(weeks.unique()):
        raise TermDepositError(
            f"There is no week {week} in the data (weeks run from {weeks.min()} to "
            f"{weeks.max()}).",
            hint="Run 'termdeposit weeks' to list them.",
        )
    rows = frame.loc[weeks == week]
    columns = [ID_COLUMN, *INPUT_COLUMNS] + ([TARGET] if with_outcomes else [])
    cohort = rows.loc[:, columns].reset_index(drop=True)
    for column, (_, _, whole) in NUMERIC_INPUTS.items():
        if whole:
            cohort[column] = cohort[column].astype(int)
    if with_outcomes:
        cohort[TARGET] = cohort[TARGET].map({1: "yes", 0: "no"})
    return cohort


# -- the week of a data drop --------------------------------------------------------------------

#: A week label as :func:`add_calendar` writes it: ``2009-05 wk2``.
WEEK_LABEL = re.compile(r"^(\d{4})-(\d{2}) wk(\d+)$")
_YEAR_IN_NAME = re.compile(r"(?<!\d)((?:19|20)\d{2})(?!\d)")


@dataclass(frozen=True)
class DropWeek:
    """The week a drop's rows belong to, and how that was told.

    Attributes:
        label: ``YYYY-MM wkN`` (as :func:`add_calendar` labels the reference weeks).
        source: where the year came from, in words (the file name, or the week before).
        weeks: how many weeks the rows span (a new week wherever the weekday steps back or
            the month changes, as in the reference data).
    """

    label: str
    source: str
    weeks: int


def drop_week(
    frame: pd.DataFrame, file_name: str, known_labels: list[str] | tuple[str, ...] = ()
) -> DropWeek:
    """Tell a drop's week from its rows' calendar, as the reference data's weeks are rebuilt.

    The rows give the month and the weekdays but no year. The year is read from the file name
    (e.g. ``drop_2009-05-11.csv``) or continued from the latest week already recorded
    (``known_labels``, oldest first; drops arrive in time order, so a month before that week's
    month is in the next year). The week in the month follows the weeks already recorded for
    that month.

    Raises:
        TermDepositError: the year cannot be told (no year in the file name, no earlier week):
            the message says to pass the week label.
    """
    calendar = add_calendar(frame.loc[:, ["month", "day_of_week"]].reset_index(drop=True))
    month = int(calendar["month_num"].iloc[0])
    weeks = int(calendar["week"].nunique())
    parsed = [m.groups() for m in (WEEK_LABEL.match(str(k)) for k in known_labels) if m]
    found = _YEAR_IN_NAME.search(Path(file_name).name)
    if found:
        year, source = int(found.group(1)), "the year in the file name"
    elif parsed:
        last_year, last_month, _ = (int(v) for v in parsed[-1])
        year = last_year + (1 if month < last_month else 0)
        source = f"the calendar continued from week {'{}-{} wk{}'.format(*parsed[-1])}"
    else:
        raise TermDepositError(
            f"The week of '{Path(file_name).name}' cannot be told from its rows: they start in "
            f"{MONTHS[month - 1]} but a drop has no year, and no earlier week is recorded to "
            "continue the calendar from.",
            hint=f'Pass the week (--week-label "{FIRST_YEAR + 1}-{month:02d} wk1") or put the '
            "year in the file name (e.g. drop_2009-05-11.csv); later drops continue the "
            "calendar from it.",
        )
    same_month = [int(w) for y, m, w in parsed if int(y) == year and int(m) == month]
    week = max(same_month, default=0) + 1
    return DropWeek(f"{year}-{month:02d} wk{week}", source, weeks)
