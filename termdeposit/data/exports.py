"""Call-list exports (CSV for Excel, xlsx) that are safe to open: no formula ever runs.

Text cells that begin with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return are
prefixed with a single quote (OWASP CSV injection), so a spreadsheet shows them as text.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import pandas as pd
from pandas.api.types import is_numeric_dtype

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: object) -> object:
    """Return a text cell prefixed with ``'`` when a spreadsheet would read it as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Neutralise every text cell and column name of a frame (numbers are left alone)."""
    out = frame.copy()
    for column in out.columns:
        if not is_numeric_dtype(out[column]):
            out[column] = out[column].map(neutralise_cell)
    out.columns = [neutralise_cell(str(c)) for c in out.columns]
    return out


def to_csv_bytes(frame: pd.DataFrame, notes: list[str] | None = None) -> bytes:
    """CSV as UTF-8 with BOM (Excel opens it with the right accents), formulas neutralised.

    Args:
        notes: lines written first as ``# ...`` comments (threshold, model version, settings).
    """
    buffer = io.StringIO()
    for note in notes or []:
        buffer.write("# " + str(neutralise_cell(note)).replace("\n", " ") + "\n")
    neutralise_frame(frame).to_csv(buffer, index=False, lineterminator="\n")
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx_bytes(
    frame: pd.DataFrame, notes: list[str] | None = None, sheet: str = "Call list"
) -> bytes:
    """An xlsx workbook: the list on one sheet, the notes (settings used) on a second."""
    buffer = io.BytesIO()
    safe = neutralise_frame(frame)
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        safe.to_excel(writer, sheet_name=sheet, index=False)
        pd.DataFrame({"about this list": [neutralise_cell(n) for n in notes or []]}).to_excel(
            writer, sheet_name="About", index=False
        )
        sheet_obj = writer.sheets[sheet]
        sheet_obj.freeze_panes = "A2"
        for cells in sheet_obj.iter_rows():
            for cell in cells:
                if cell.data_type == "f":
                    cell.data_type = "s"
    return buffer.getvalue()


def write_atomic(path: Path, content: bytes) -> Path:
    """Write bytes to a temporary file beside ``path``, then rename (no half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())  # on disk before the rename: no empty file after a power cut
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
