"""Excel workbooks (.xlsx): refused when they could hurt (zip bombs, macros), else read whole."""

from __future__ import annotations

import io
import zipfile

import pandas as pd

from termdeposit.core.errors import TermDepositError

#: Limits for xlsx workbooks (zip archives): total unpacked size and compression ratio.
MAX_UNPACKED_BYTES = 500 * 2**20
MAX_ZIP_RATIO = 200


def check_zip(data: bytes, filename: str, name: str = "the cohort") -> None:
    """Refuse workbooks that unpack to something huge (zip bombs) or carry macros."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise TermDepositError(
            f"'{filename}' looks like an Excel workbook but is damaged.",
            hint="Open it in Excel and save it again as .xlsx (or CSV UTF-8).",
        ) from exc
    names = {m.filename.lower() for m in members}
    if not any(n.startswith("xl/") for n in names):
        raise TermDepositError(
            f"'{filename}' is a zip archive, not an Excel workbook.",
            hint=f"Upload {name} as a CSV file or an .xlsx workbook.",
        )
    if any(n.endswith("vbaproject.bin") for n in names):
        raise TermDepositError(
            f"'{filename}' is a workbook with macros (.xlsm); macros are not accepted.",
            hint="In Excel use 'Save as > Excel Workbook (.xlsx)' and upload that file.",
        )
    unpacked = sum(m.file_size for m in members)
    packed = max(sum(m.compress_size for m in members), 1)
    if unpacked > MAX_UNPACKED_BYTES or unpacked / packed > MAX_ZIP_RATIO:
        raise TermDepositError(
            f"'{filename}' would unpack to {unpacked / 2**20:,.0f} MB: too large to open safely.",
            hint=f"Save {name} as CSV UTF-8 and upload that file.",
        )


def read_xlsx(data: bytes, filename: str, name: str = "the cohort") -> pd.DataFrame:
    """The first sheet: its first row names the columns (as written, duplicates kept)."""
    check_zip(data, filename, name)
    try:
        sheet = pd.read_excel(io.BytesIO(data), dtype=str, engine="openpyxl", header=None)
    except Exception as exc:  # openpyxl raises many types for broken workbooks
        raise TermDepositError(
            f"'{filename}' looks like an Excel workbook but could not be opened.",
            hint="Open it in Excel and save it again as .xlsx (or CSV UTF-8).",
        ) from exc
    sheet = sheet.fillna("")
    if sheet.empty:
        return pd.DataFrame()
    columns = [str(c).strip() for c in sheet.iloc[0]]
    return sheet.iloc[1:].reset_index(drop=True).set_axis(columns, axis=1)
