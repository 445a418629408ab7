"""The one reader of cohort and outcomes files, for every size, engine and front door.

What a file is and how its text is written is :mod:`termdeposit.data.sniffing`; workbooks are
:mod:`termdeposit.data.workbook` (read whole). The rows of a text file are read here, in blocks
cut at record ends (a line end outside quotes) and parsed into text cells by Arrow, or by
pandas (then Python's csv module, which names a wrong row) where Arrow declines. A small file is
one block; a large one (the CLI's chunked path, ``--chunked``, ``POST /score``) many; a Dask
worker reads the byte range :func:`plan_parts` gives it. The encoding is settled by the same rule
on every path. So a file gives the same cells, the same messages and the same refusals whether
it is read whole, in chunks or by Dask: those change only how rows stream. Refused here: a quote
never closed (with its row), a row with more values than the header names, a file mixing two
text encodings. Nothing here types or judges the cells; :mod:`termdeposit.data.cohort_file` does.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from termdeposit.core.config import MAX_UPLOAD_MB
from termdeposit.core.errors import TermDepositError
from termdeposit.data import fast_csv
from termdeposit.data.sniffing import (
    FILE_KINDS,
    HEAD_BYTES,
    EncodingEvidence,
    TextFormat,
    decode,
    inspect_text,
    what_file_is,
)
from termdeposit.data.workbook import read_xlsx

#: Largest file :func:`read_table` reads whole (the dashboard and the API use it).
MAX_FILE_BYTES = MAX_UPLOAD_MB * 2**20
#: A record (one row, quotes included) longer than this ends the reading: a quote never closed.
MAX_RECORD_BYTES = 16 * 2**20
_SEPARATOR_NAMES = {";": "';'", ",": "','", "\t": "tab", "|": "'|'"}
_QUOTE = 34


@dataclass(frozen=True)
class Table:
    """An opened input file: a workbook (read whole) or a text file (read in any blocks)."""

    path: Path
    filename: str
    workbook: bool
    text: TextFormat | None

    def frames(self, block_bytes: int) -> Iterator[pd.DataFrame]:
        """The rows as text frames of about ``block_bytes`` each (a workbook: one frame)."""
        if self.text is None:
            yield read_table(self.path.read_bytes(), self.filename)
            return
        with open(self.path, "rb") as handle:
            yield from _text_frames(handle, self.text, block_bytes)

    def read(self) -> pd.DataFrame:
        """Every row at once, any size (the CLI's whole path; uploads use :func:`read_table`)."""
        if self.text is None:
            return read_table(self.path.read_bytes(), self.filename)
        frames = list(self.frames(max(self.text.size, 1)))
        if not frames:
            return self.header_frame()
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def header_frame(self) -> pd.DataFrame:
        """No rows, the header's columns (for a file whose rows are all refused or absent)."""
        columns = list(self.text.columns) if self.text else []
        return pd.DataFrame({i: pd.Series(dtype=str) for i in range(len(columns))}).set_axis(
            columns, axis=1
        )


# -- what a file is -------------------------------------------------------------------------


# -- cutting the rows into blocks -----------------------------------------------------------


class _UnclosedQuoteError(Exception):
    """A quote never closed: ``complete`` holds the whole records before the broken one."""

    def __init__(self, complete: bytes | str) -> None:
        super().__init__("unclosed quote")
        self.complete = complete


def _last_record_end(data: bytes | str, newline: str) -> int:
    """Index just after the last record end of ``data`` (which starts at a record start).

    A line end ends a record when the quotes before it pair up (RFC 4180: a quote opens or
    closes a quoted field, two quotes inside one stand for one). Returns 0 when no record ends.
    """
    if isinstance(data, str):
        return _last_record_end_text(data, newline)
    line_end = newline.encode()
    last = data.rfind(line_end)
    if last < 0:
        return 0
    if data.find(b'"', 0, last) < 0:
        return last + 1
    codes = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(codes == _QUOTE)
    ends = np.flatnonzero(codes == line_end[0])
    paired = ends[np.searchsorted(quotes, ends) % 2 == 0]
    return int(paired[-1]) + 1 if len(paired) else 0


def _last_record_end_text(text: str, newline: str) -> int:
    total = text.count('"')
    end, after = len(text), 0
    while True:
        index = text.rfind(newline, 0, end)
        if index < 0:
            return 0
        after += text.count('"', index, end)
        if (total - after) % 2 == 0:
            return index + 1
        end = index


def _quote_count(data: bytes | str) -> int:
    return data.count('"') if isinstance(data, str) else data.count(b'"')


def _records_in(data: bytes | str, newline: str) -> int:
    """Rows in whole records, roughly (blank lines are not rows; for messages only)."""
    text = data if isinstance(data, str) else data.decode("latin-1")
    return sum(1 for line in text.split(newline) if line.strip())


def _quote_error(fmt: TextFormat, row: int) -> TermDepositError:
    return TermDepositError(
        f"'{fmt.filename}' could not be read as CSV: a quote (\") opened in row {row} is "
        "never closed.",
        hint="Check that every line has the same number of columns and quotes are closed.",
    )


def _raw_chunks(
    handle: BinaryIO, fmt: TextFormat, block_bytes: int
) -> Iterator[tuple[bytes | str, bool]]:
    """The file after its header in pieces of about ``block_bytes`` (bytes, or text for
    UTF-16), each with True when it is the last."""
    handle.seek(fmt.data_start)
    decoder = codecs.getincrementaldecoder(fmt.encoding)() if fmt.wide else None
    piece = handle.read(block_bytes)
    while piece:
        following = handle.read(block_bytes)
        if decoder is None:
            yield piece, not following
        else:
            try:
                yield decoder.decode(piece, final=not following), not following
            except UnicodeDecodeError as exc:
                raise TermDepositError(
                    f"'{fmt.filename}' is not readable UTF-16 text (it is damaged near byte "
                    f"{handle.tell() - len(following) - len(piece) + exc.start:,}).",
                    hint="Open it in a spreadsheet and save it again as 'CSV UTF-8'.",
                ) from exc
        piece = following


def _record_blocks(
    chunks: Iterator[tuple[bytes | str, bool]], fmt: TextFormat, block_bytes: int
) -> Iterator[bytes | str]:
    """Consecutive blocks that each hold whole records (the last may lack its line end).

    Raises:
        _UnclosedQuoteError: a quote never closed (at the end of the file, or with no record
            end in :data:`MAX_RECORD_BYTES` after it).
    """
    pending: bytes | str | None = None
    for chunk, last in chunks:
        data = chunk if pending is None else pending + chunk  # type: ignore[operator]
        if last:
            if _quote_count(data) % 2:
                raise _UnclosedQuoteError(data[: _last_record_end(data, fmt.newline)])
            if data:
                yield data
            return
        cut = _last_record_end(data, fmt.newline)
        if cut == 0:
            if len(data) > block_bytes + MAX_RECORD_BYTES:
                raise _UnclosedQuoteError(data[:0])
            pending = data
            continue
        pending = data[cut:]
        yield data[:cut]


# -- parsing a block ------------------------------------------------------------------------


def _utf8(block: bytes | str, fmt: TextFormat, encoding: str) -> bytes:
    """A block as UTF-8 text with LF line ends (what the parsers read)."""
    if isinstance(block, str):
        text = block
    elif encoding == "utf-8" and not fmt.cr_only:
        return block
    else:
        text = decode(block, encoding)
    if fmt.cr_only:
        text = text.replace("\r", "\n")
    return text.encode("utf-8")


def parse_block(data: bytes, fmt: TextFormat, first_row: int) -> pd.DataFrame:
    """The rows of one block (UTF-8, whole records) as text cells named by the header.

    Rows with fewer values than the header get blank cells; values past the header's columns
    must be blank (a trailing separator), or the row is refused with its number.

    Args:
        first_row: the file's row number of the block's first record (2 = first customer).
    """
    width = len(fmt.columns)
    frame = fast_csv.read_block(data, fmt.separator, width)
    if frame is None:
        frame = _pandas_block(data, fmt, width, first_row)
    return frame.set_axis(list(fmt.columns), axis=1)


def _pandas_block(data: bytes, fmt: TextFormat, width: int, first_row: int) -> pd.DataFrame:
    """The block read by pandas (every row as wide as the first, or an error); rows narrower
    than the header get blank cells, blank cells past it (a trailing separator) are dropped.
    Anything else goes to :func:`_python_block`, which names the row."""
    try:
        frame = pd.read_csv(
            io.BytesIO(data),
            sep=fmt.separator,
            header=None,
            index_col=False,
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
            quotechar='"',
            encoding="utf-8",
        ).fillna("")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, csv.Error):
        return _python_block(data, fmt, width, first_row)
    if frame.shape[1] > width:
        extra = frame.iloc[:, width:]
        if extra.apply(lambda column: column.str.strip().ne("").any()).any():
            return _python_block(data, fmt, width, first_row)
        frame = frame.iloc[:, :width]
    for position in range(frame.shape[1], width):
        frame[position] = ""
    return frame.set_axis(list(range(width)), axis=1)


def _python_block(data: bytes, fmt: TextFormat, width: int, first_row: int) -> pd.DataFrame:
    """The block read by Python's csv module, which tells which row is wrong."""
    rows: list[list[str]] = []
    reader = csv.reader(
        io.StringIO(data.decode("utf-8")),
        delimiter=fmt.separator,
        quotechar='"',
        skipinitialspace=True,
        strict=False,
    )
    try:
        for fields in reader:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if len(fields) > width:
                if any(f.strip() for f in fields[width:]):
                    raise TermDepositError(
                        f"'{fmt.filename}' could not be read as CSV: row "
                        f"{first_row + len(rows)} has {len(fields)} values, but the header "
                        f"names {width} columns.",
                        hint="Check that every line has the same number of columns and quotes "
                        "are closed; a value holding the separator "
                        f"({_SEPARATOR_NAMES[fmt.separator]}) must be in double quotes.",
                    )
                fields = fields[:width]
            rows.append(fields + [""] * (width - len(fields)))
    except csv.Error as exc:
        raise TermDepositError(
            f"'{fmt.filename}' could not be read as CSV near row {first_row + len(rows)}.",
            hint="Check that every line has the same number of columns and quotes are closed.",
        ) from exc
    return pd.DataFrame(rows, columns=list(range(width)), dtype=str)


def _text_frames(handle: BinaryIO, fmt: TextFormat, block_bytes: int) -> Iterator[pd.DataFrame]:
    """Every row of a text file, as frames of text cells of about ``block_bytes`` each."""
    evidence = EncodingEvidence.of(fmt)
    row = 2
    blocks = _record_blocks(_raw_chunks(handle, fmt, block_bytes), fmt, block_bytes)
    while True:
        try:
            block = next(blocks)
        except StopIteration:
            return
        except _UnclosedQuoteError as exc:
            before = 0
            if exc.complete:
                encoding = _settle(evidence, exc.complete, fmt, row)
                before = len(parse_block(_utf8(exc.complete, fmt, encoding), fmt, row))
            raise _quote_error(fmt, row + before) from None
        frame = parse_block(_utf8(block, fmt, _settle(evidence, block, fmt, row)), fmt, row)
        if len(frame):
            row += len(frame)
            yield frame


def _settle(evidence: EncodingEvidence, block: bytes | str, fmt: TextFormat, row: int) -> str:
    return fmt.encoding if isinstance(block, str) else evidence.settle(block, row)


# -- reading whole, streaming, and by byte ranges -------------------------------------------


def _check_size(size: int, filename: str, kind: str, workbook: bool) -> None:
    if size <= MAX_FILE_BYTES:
        return
    name = FILE_KINDS[kind][0]
    if kind != "cohort":
        hint = f"Split {name} into smaller files and upload them one after the other."
    elif workbook:
        hint = "Save the workbook as CSV and score it with 'termdeposit score', which reads "
        hint += "large files in chunks."
    else:
        hint = "Split the cohort into smaller files, or score it with 'termdeposit score', "
        hint += "which reads large files in chunks."
    raise TermDepositError(
        f"'{filename}' is {size / 2**20:,.0f} MB, over the {MAX_FILE_BYTES // 2**20} MB "
        "limit for one upload.",
        hint=hint,
    )


def read_table(
    data: bytes | BinaryIO, filename: str = "upload", kind: str = "cohort"
) -> pd.DataFrame:
    """Read a whole CSV or xlsx file: every cell as text, columns named as in its header.

    Ids with leading zeros survive (typing happens in :func:`validate_cohort`); repeated or
    aliased column names are kept as written, for the validator to name.

    Args:
        data: the file's bytes, or a binary file object positioned at its start.
        kind: what the file should hold (a key of :data:`FILE_KINDS`), for the hints.

    Raises:
        TermDepositError: empty, binary or unreadable file, over the upload limit, with what
            to do.
    """
    handle = io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data
    handle.seek(0, io.SEEK_END)
    size = handle.tell()
    handle.seek(0)
    head = handle.read(HEAD_BYTES)
    what = what_file_is(head, filename, kind)
    _check_size(size, filename, kind, what == "workbook")
    if what == "workbook":
        handle.seek(0)
        return read_xlsx(handle.read(), filename, FILE_KINDS[kind][0])
    fmt = inspect_text(head, size, filename, kind)
    frames = list(_text_frames(handle, fmt, max(size, 1)))
    if not frames:
        return Table(Path(filename), filename, False, fmt).header_frame()
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def open_table(path: str | Path, filename: str | None = None, kind: str = "cohort") -> Table:
    """Open a file of any size for streaming (see :meth:`Table.frames`); no size limit.

    Raises:
        TermDepositError: no such file, or a file that is not a table (as :func:`read_table`).
    """
    path = Path(path)
    filename = filename or path.name
    if not path.is_file():
        raise TermDepositError(f"There is no file at '{path}'.", hint="Check the path.")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(HEAD_BYTES)
    what = what_file_is(head, filename, kind)
    if what == "workbook":
        _check_size(size, filename, kind, True)
        return Table(path, filename, True, None)
    return Table(path, filename, False, inspect_text(head, size, filename, kind))


def record_ranges(table: Table, block_bytes: int) -> tuple[TextFormat, list[tuple[int, int]]]:
    """Byte ranges of about ``block_bytes`` that each hold whole records (for Dask workers).

    Reads the file once: the ranges are cut at record ends outside quotes, and the encoding
    is settled for the whole file (returned in the format the workers read with).

    Raises:
        TermDepositError: a quote never closed, or a file that mixes encodings.
    """
    fmt = table.text
    if fmt is None:
        raise TermDepositError(f"'{table.filename}' is a workbook: it has no byte ranges.")
    evidence = EncodingEvidence.of(fmt)
    ranges: list[tuple[int, int]] = []
    start, row = fmt.data_start, 2
    with open(table.path, "rb") as handle:
        try:
            for block in _record_blocks(_raw_chunks(handle, fmt, block_bytes), fmt, block_bytes):
                _settle(evidence, block, fmt, row)
                length = len(block.encode(fmt.encoding)) if isinstance(block, str) else len(block)
                row += _records_in(block, fmt.newline)
                ranges.append((start, start + length))
                start += length
        except _UnclosedQuoteError as exc:
            raise _quote_error(fmt, row + _records_in(exc.complete, fmt.newline)) from None
    if not fmt.wide:
        fmt = replace(fmt, encoding=evidence.encoding or "utf-8", settled=True)
    return fmt, ranges


@dataclass(frozen=True)
class Part:
    """One piece of an input that a worker reads on its own (see :func:`plan_parts`).

    Attributes:
        path: the file.
        text: how to read it (None: a workbook, read whole).
        start, stop: the byte range of whole records (text only).
        first_row: the file's row number of the range's first record (2 = first customer).
    """

    path: Path
    filename: str
    text: TextFormat | None
    start: int = 0
    stop: int = 0
    first_row: int = 2


def plan_parts(table: Table, block_bytes: int | None) -> list[Part]:
    """The pieces a table is read in by workers: byte ranges of about ``block_bytes`` of whole
    records (None: the whole file in one piece), or the whole workbook.

    Raises:
        TermDepositError: as :func:`record_ranges` (the file is read once to cut it).
    """
    if table.text is None:
        return [Part(table.path, table.filename, None)]
    if block_bytes is None:
        fmt = table.text
        if fmt.data_start >= fmt.size:
            return []
        return [Part(table.path, table.filename, fmt, fmt.data_start, fmt.size)]
    fmt, ranges = record_ranges(table, block_bytes)
    return [Part(table.path, table.filename, fmt, start, stop) for start, stop in ranges]


def read_part(part: Part) -> pd.DataFrame:
    """The rows of one :class:`Part`, as text cells named by the header (as :func:`read_table`
    and :meth:`Table.frames` read them)."""
    if part.text is None:
        return read_table(part.path.read_bytes(), part.filename)
    fmt = part.text
    with open(part.path, "rb") as handle:
        handle.seek(part.start)
        raw = handle.read(part.stop - part.start)
    if fmt.wide:
        return parse_block(_utf8(raw.decode(fmt.encoding), fmt, fmt.encoding), fmt, part.first_row)
    evidence = EncodingEvidence.of(fmt)
    encoding = evidence.settle(raw, part.first_row)
    if part.stop >= fmt.size and _quote_count(raw) % 2:
        complete = raw[: _last_record_end(raw, fmt.newline)]
        before = len(parse_block(_utf8(complete, fmt, encoding), fmt, part.first_row))
        raise _quote_error(fmt, part.first_row + before)
    return parse_block(_utf8(raw, fmt, encoding), fmt, part.first_row)
