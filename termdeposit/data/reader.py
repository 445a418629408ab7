"""The one reader of cohort and outcomes files, for every size, engine and front door.

What a file is comes from its content, never its name. An Excel workbook (.xlsx) is checked
for zip bombs and macros and read whole. Anything else must be text: its encoding (UTF-8 with
or without BOM, UTF-16, Windows-1252 / Latin-1), its line ends (LF, CRLF, or CR only), its
separator (``;``, ``,``, tab or ``|``) and its header (the first record, duplicates kept as
written) are found here. Empty, binary, PDF, compressed, legacy or password-protected Excel,
JSON and HTML/XML files are refused with a message in the user's words, as are a header of far
too many columns, a quote never closed, a row with more values than the header names and a
file that mixes two text encodings.

The rows are then read in blocks cut at record ends (outside quotes) and parsed into text cells
by Arrow, or by pandas (then Python's csv module) where Arrow declines. A small file is one
block; a large one (the CLI's chunked path, ``--chunked``) many; a Dask worker reads the byte
range :func:`record_ranges` gives it. The encoding is settled by the same rule on every path
(see :class:`_EncodingEvidence`). So a file gives the same cells, the same messages and the
same refusals whether it is read whole, in chunks or by Dask: those change only how rows
stream. Nothing here types or judges the cells; :mod:`termdeposit.data.cohort_file` does.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from termdeposit.core.config import MAX_UPLOAD_MB
from termdeposit.core.errors import TermDepositError
from termdeposit.data import fast_csv

#: Largest file :func:`read_table` reads whole (the dashboard and the API use it).
MAX_FILE_BYTES = MAX_UPLOAD_MB * 2**20
#: A header line longer than this cannot be a cohort header.
MAX_HEADER_CHARS = 20_000
#: Limits for xlsx workbooks (zip archives): total unpacked size and compression ratio.
MAX_UNPACKED_BYTES = 500 * 2**20
MAX_ZIP_RATIO = 200
#: A record (one row, quotes included) longer than this ends the reading: a quote never closed.
MAX_RECORD_BYTES = 16 * 2**20
#: Bytes looked at to tell what a file is (header, encoding, separator).
HEAD_BYTES = 256 * 1024
#: How messages name the file, by kind: (short name, what to upload).
FILE_KINDS = {
    "cohort": ("the cohort", "the weekly cohort file with its customers"),
    "outcomes": (
        "the outcomes",
        "the week's outcomes file: one row per customer with customer_id, called and subscribed",
    ),
}
SEPARATORS = (";", ",", "\t", "|")
_SEPARATOR_NAMES = {";": "';'", ",": "','", "\t": "tab", "|": "'|'"}
_LATIN1_FALLBACK = "termdeposit-latin1"
# Windows-1252 leaves five bytes undefined; Latin-1 reads them (as control characters).
codecs.register_error(
    _LATIN1_FALLBACK, lambda e: (e.object[e.start : e.end].decode("latin-1"), e.end)
)
# A UTF-8 sequence of two to four bytes (evidence that a file is UTF-8 where it is valid).
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
_QUOTE = 34
_MAGIC = (
    (b"\xd0\xcf\x11\xe0", "legacy_excel"),
    (b"%PDF", "pdf"),
    (b"\x1f\x8b", "gzip"),
    (b"7z\xbc\xaf\x27\x1c", "archive"),
    (b"Rar!\x1a\x07", "archive"),
    (b"PAR1", "parquet"),
)


@dataclass(frozen=True)
class TextFormat:
    """What the reader found out about a text file (all it needs to read any part of it).

    Attributes:
        encoding: the codec of the bytes (``utf-8``, ``cp1252``, ``utf-16-le``, ``utf-16-be``);
            ``utf-8`` until a non-ASCII byte says otherwise.
        separator: the separator of the header line.
        cr_only: lines end with a lone CR (old Mac files); read as LF.
        columns: the header names, stripped, duplicates kept as written.
        data_start: byte offset of the first row after the header.
        size: size of the file in bytes.
        filename: the name messages use.
        settled: the encoding is known for the whole file (not only from the bytes seen).
        invalid_row: 1 when the header itself is not UTF-8 (for the message of a file that
            mixes encodings).
    """

    encoding: str
    separator: str
    cr_only: bool
    columns: tuple[str, ...]
    data_start: int
    size: int
    filename: str
    settled: bool = False
    invalid_row: int | None = None

    @property
    def wide(self) -> bool:
        """True for UTF-16 (two bytes per character: cut and counted as text, not bytes)."""
        return self.encoding.startswith("utf-16")

    @property
    def newline(self) -> str:
        """The character that ends a record in the file's own text."""
        return "\r" if self.cr_only else "\n"


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


def _refuse(filename: str, what: str, kind: str) -> TermDepositError:
    """The refusal of a file that is not a table, by what it is."""
    name, upload = FILE_KINDS[kind]
    messages = {
        "empty": (f"'{filename}' is empty.", f"Upload {upload}."),
        "legacy_excel": (
            f"'{filename}' is an old-style (.xls) or password-protected Excel file.",
            "Open it in Excel, remove any password and save it as .xlsx or CSV UTF-8.",
        ),
        "pdf": (
            f"'{filename}' is a PDF document, not a CSV or Excel file.",
            f"Export {name} from the source system as CSV or .xlsx and upload that file.",
        ),
        "gzip": (
            f"'{filename}' is a compressed (.gz) file, not a CSV or Excel file.",
            f"Unpack it first and upload the CSV file it holds ({name}).",
        ),
        "archive": (
            f"'{filename}' is a compressed archive, not a CSV or Excel file.",
            f"Unpack it first and upload the CSV file it holds ({name}).",
        ),
        "parquet": (
            f"'{filename}' is a Parquet file, not a CSV or Excel file.",
            "Score it from the command line with '--engine dask', or save it as CSV.",
        ),
        "binary": (
            f"'{filename}' is not a CSV or Excel file (it holds binary data).",
            f"Upload {name} as a CSV file or an .xlsx workbook.",
        ),
        "json": (
            f"'{filename}' is a JSON document, not a CSV or Excel file.",
            f"Export {name} as CSV (one row per customer, the column names on the first line) "
            "or as an .xlsx workbook.",
        ),
        "markup": (
            f"'{filename}' is a web page or XML document, not a CSV or Excel file.",
            f"Export {name} as CSV (one row per customer, the column names on the first line) "
            "or as an .xlsx workbook.",
        ),
    }
    message, hint = messages[what]
    return TermDepositError(message, hint=hint)


def _kind_of_bytes(head: bytes) -> str:
    """``workbook``, ``text``, or what else the first bytes say the file is."""
    if head.startswith(b"PK\x03\x04"):
        return "workbook"
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    return "text"


def _utf16_codec(head: bytes) -> tuple[str, int] | None:
    """The UTF-16 codec and BOM length of a file that is UTF-16, from its first bytes."""
    if head.startswith(b"\xff\xfe"):
        return "utf-16-le", 2
    if head.startswith(b"\xfe\xff"):
        return "utf-16-be", 2
    sample = head[:4096]
    sample = sample[: len(sample) // 2 * 2]
    if len(sample) >= 8:
        even, odd = sample[0::2], sample[1::2]
        if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
            return "utf-16-le", 0
        if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
            return "utf-16-be", 0
    return None


def _looks_binary(text: str) -> bool:
    """NUL characters, or many control characters other than tab and line ends."""
    sample = text[:65536]
    if "\x00" in sample:
        return True
    controls = sum(1 for c in sample if c < " " and c not in "\t\r\n\x0c")
    return controls > max(8, len(sample) // 100)


def _markup_or_json(text: str) -> str | None:
    start = text.lstrip(" \t\r\n\ufeff")[:64]
    if start.startswith("<"):
        return "markup"
    if start.startswith("{") or re.match(r"\[\s*([\[{\"\]\d-]|true|false|null)", start):
        return "json"
    return None


class _EncodingEvidence:
    """Settles the encoding of a text file one block at a time, the same way for any blocks.

    A block of ASCII bytes says nothing. A block that is valid UTF-8 says UTF-8. One that is
    not says Windows-1252 (Latin-1 for its five undefined bytes), unless it also holds UTF-8
    sequences: then the file mixes two encodings. Blocks that disagree mean the same. A file
    that mixes encodings is refused, naming the row of its first byte that is not UTF-8.
    Blocks are cut at line ends (a UTF-8 sequence is never cut), so the whole file read as one
    block settles the same encoding, or gives the same refusal.
    """

    def __init__(
        self, encoding: str | None, filename: str, newline: str = "\n", invalid_row: int | None = None
    ) -> None:
        self.encoding = encoding
        self.filename = filename
        self.newline = newline.encode()
        self.first_invalid_row = invalid_row

    @classmethod
    def of(cls, fmt: TextFormat) -> _EncodingEvidence:
        """The evidence of a file's header, to go on with its rows."""
        return cls(fmt.encoding if fmt.settled else None, fmt.filename, fmt.newline, fmt.invalid_row)

    def settle(self, block: bytes, first_row: int) -> str:
        """The encoding to read ``block`` with (its first row is ``first_row``, 1 = header)."""
        if block.isascii():
            return self.encoding or "utf-8"
        try:
            block.decode("utf-8")
            found = "utf-8"
        except UnicodeDecodeError as exc:
            row = first_row + block.count(self.newline, 0, exc.start)
            if self.first_invalid_row is None:
                self.first_invalid_row = row
            if _UTF8_SEQUENCE.search(block):
                raise self._mixed() from None
            found = "cp1252"
        if self.encoding is not None and found != self.encoding:
            if self.first_invalid_row is None:  # cannot happen: one of the two was invalid
                self.first_invalid_row = first_row
            raise self._mixed()
        self.encoding = found
        return found

    def _mixed(self) -> TermDepositError:
        return TermDepositError(
            f"'{self.filename}' mixes two text encodings (UTF-8 and another one; the first "
            f"character that is not UTF-8 is in row {self.first_invalid_row}): some names or "
            "values would be read wrongly.",
            hint="Open the file in a spreadsheet and save it again as 'CSV UTF-8'.",
        )


def _decode(block: bytes, encoding: str, errors: str = "strict") -> str:
    return block.decode(encoding, errors=_LATIN1_FALLBACK if encoding == "cp1252" else errors)


def _first_record_end(data: bytes | str, newline: str) -> int:
    """Index just after the first record of ``data`` (newline outside quotes); -1 if none."""
    line_end: bytes | str = newline if isinstance(data, str) else newline.encode()
    quote: bytes | str = '"' if isinstance(data, str) else b'"'
    start, quotes = 0, 0
    while True:
        index = data.find(line_end, start)  # type: ignore[arg-type]
        if index < 0:
            return -1
        quotes += data.count(quote, start, index)  # type: ignore[arg-type]
        if quotes % 2 == 0:
            return index + 1
        start = index + 1


def _sniff_separator(header: str) -> str:
    outside = re.sub(r'"[^"]*"', "", header)
    counts = {sep: outside.count(sep) for sep in SEPARATORS}
    best = max(counts, key=lambda s: counts[s])
    if counts[best] == 0:
        raise TermDepositError(
            "The first line of the file has a single column: the separator could not be found.",
            hint="Save the file as CSV separated by ';' or ',' with the column names "
            "on the first line.",
        )
    return best


def inspect_text(head: bytes, size: int, filename: str, kind: str = "cohort") -> TextFormat:
    """Tell the encoding, line ends, separator and header of a text file from its first bytes.

    Args:
        head: the first :data:`HEAD_BYTES` bytes (or the whole file when smaller).
        size: the file's size in bytes.

    Raises:
        TermDepositError: the file is empty, binary, JSON, HTML/XML, has no separator or a
            header of far too many columns.
    """
    name = FILE_KINDS[kind][0]
    wide = _utf16_codec(head)
    if wide is not None:
        encoding, bom = wide
        body = head[bom:]
        text = body[: len(body) // 2 * 2].decode(encoding, errors="replace")
        cr_only = "\r" in text and "\n" not in text
        end = _first_record_end(text, "\r" if cr_only else "\n")
        header = text[:end] if end >= 0 else text
        data_start = bom + len(header.encode(encoding)) if end >= 0 else size
        settled, invalid_row = True, None
    else:
        bom = 3 if head.startswith(codecs.BOM_UTF8) else 0
        body = head[bom:]
        if b"\x00" in body:
            raise _refuse(filename, "binary", kind)
        cr_only = b"\r" in body and b"\n" not in body
        end = _first_record_end(body, "\r" if cr_only else "\n")
        header_bytes = body[:end] if end >= 0 else body
        settled = bool(bom) or not header_bytes.isascii()
        encoding, invalid_row = "utf-8", None
        if not bom and not header_bytes.isascii():
            evidence = _EncodingEvidence(None, filename)
            encoding = evidence.settle(header_bytes, 1)  # refuses a header mixing encodings
            invalid_row = evidence.first_invalid_row
        text = _decode(body, encoding, errors="replace")
        header = _decode(header_bytes, encoding, errors="replace")
        data_start = bom + end if end >= 0 else size
    if not text.strip(" \t\r\n\x0c\ufeff"):
        raise _refuse(filename, "empty", kind)
    if _looks_binary(text):
        raise _refuse(filename, "binary", kind)
    other = _markup_or_json(text)
    if other:
        raise _refuse(filename, other, kind)
    header = header.lstrip("\ufeff").rstrip("\r\n")
    if len(header) > MAX_HEADER_CHARS or (end < 0 and len(head) < size):
        raise TermDepositError(
            f"The first line of '{filename}' is {len(header):,}{'+' if end < 0 else ''} "
            f"characters long: that is not the header of {name} (it has far too many "
            "columns).",
            hint="Upload a file whose first line holds the column names.",
        )
    separator = _sniff_separator(header)
    names = next(
        csv.reader(io.StringIO(header), delimiter=separator, skipinitialspace=True, strict=False),
        [],
    )
    return TextFormat(
        encoding=encoding,
        separator=separator,
        cr_only=cr_only,
        columns=tuple(str(n).replace("\ufeff", "").strip() for n in names),
        data_start=min(data_start, size),
        size=size,
        filename=filename,
        settled=settled,
        invalid_row=invalid_row,
    )


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
        text = _decode(block, encoding)
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
    evidence = _EncodingEvidence.of(fmt)
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


def _settle(evidence: _EncodingEvidence, block: bytes | str, fmt: TextFormat, row: int) -> str:
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


def _what(head: bytes, filename: str, kind: str) -> str:
    """``workbook`` or ``text``; raises for anything else."""
    if not head.strip():
        raise _refuse(filename, "empty", kind)
    what = _kind_of_bytes(head)
    if what not in ("workbook", "text"):
        raise _refuse(filename, what, kind)
    return what


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
    what = _what(head, filename, kind)
    _check_size(size, filename, kind, what == "workbook")
    if what == "workbook":
        handle.seek(0)
        return _read_xlsx(handle.read(), filename, FILE_KINDS[kind][0])
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
    what = _what(head, filename, kind)
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
    evidence = _EncodingEvidence.of(fmt)
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
    evidence = _EncodingEvidence.of(fmt)
    encoding = evidence.settle(raw, part.first_row)
    if part.stop >= fmt.size and _quote_count(raw) % 2:
        complete = raw[: _last_record_end(raw, fmt.newline)]
        before = len(parse_block(_utf8(complete, fmt, encoding), fmt, part.first_row))
        raise _quote_error(fmt, part.first_row + before)
    return parse_block(_utf8(raw, fmt, encoding), fmt, part.first_row)


# -- workbooks ------------------------------------------------------------------------------


def _check_zip(data: bytes, filename: str, name: str = "the cohort") -> None:
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


def _read_xlsx(data: bytes, filename: str, name: str = "the cohort") -> pd.DataFrame:
    """The first sheet: its first row names the columns (as written, duplicates kept)."""
    _check_zip(data, filename, name)
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
