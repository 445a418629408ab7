"""What a file is, and how its text is written: the first look of the one reader.

What a file is comes from its content, never its name: an Excel workbook, or text. Text has
its encoding (UTF-8 with or without BOM, UTF-16 with or without BOM, Windows-1252 / Latin-1),
its line ends (LF, CRLF or CR only), its separator (``;``, ``,``, tab or ``|``) and its header
(the first record, names kept as written, duplicates included), all found here from the first
bytes. Anything else is refused in the user's words: empty, binary, PDF, compressed, Parquet,
legacy or password-protected Excel, JSON and HTML/XML files, a header of far too many columns.

The encoding of the rows is settled block by block by :class:`EncodingEvidence`, by a rule
that gives the same answer for any blocks (:mod:`termdeposit.data.reader` cuts them).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass

from termdeposit.core.errors import TermDepositError

#: A header line longer than this cannot be a cohort header.
MAX_HEADER_CHARS = 20_000
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
_LATIN1_FALLBACK = "termdeposit-latin1"


def _latin1_fallback(error: UnicodeError) -> tuple[str, int]:
    """Read the bytes Windows-1252 leaves undefined as Latin-1 (control characters)."""
    if not isinstance(error, UnicodeDecodeError):  # registered for decoding only
        raise error
    return error.object[error.start : error.end].decode("latin-1"), error.end


# Windows-1252 leaves five bytes undefined; Latin-1 reads them (as control characters).
codecs.register_error(_LATIN1_FALLBACK, _latin1_fallback)
# A UTF-8 sequence of two to four bytes (evidence that a file is UTF-8 where it is valid).
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
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


def refuse(filename: str, what: str, kind: str) -> TermDepositError:
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


def kind_of_bytes(head: bytes) -> str:
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


class EncodingEvidence:
    """Settles the encoding of a text file one block at a time, the same way for any blocks.

    A block of ASCII bytes says nothing. A block that is valid UTF-8 says UTF-8. One that is
    not says Windows-1252 (Latin-1 for its five undefined bytes), unless it also holds UTF-8
    sequences: then the file mixes two encodings. Blocks that disagree mean the same. A file
    that mixes encodings is refused, naming the row of its first byte that is not UTF-8.
    Blocks are cut at line ends (a UTF-8 sequence is never cut), so the whole file read as one
    block settles the same encoding, or gives the same refusal.
    """

    def __init__(
        self,
        encoding: str | None,
        filename: str,
        newline: str = "\n",
        invalid_row: int | None = None,
    ) -> None:
        self.encoding = encoding
        self.filename = filename
        self.newline = newline.encode()
        self.first_invalid_row = invalid_row

    @classmethod
    def of(cls, fmt: TextFormat) -> EncodingEvidence:
        """The evidence of a file's header, to go on with its rows."""
        return cls(
            fmt.encoding if fmt.settled else None, fmt.filename, fmt.newline, fmt.invalid_row
        )

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


def decode(block: bytes, encoding: str, errors: str = "strict") -> str:
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
            raise refuse(filename, "binary", kind)
        cr_only = b"\r" in body and b"\n" not in body
        end = _first_record_end(body, "\r" if cr_only else "\n")
        header_bytes = body[:end] if end >= 0 else body
        settled = bool(bom) or not header_bytes.isascii()
        encoding, invalid_row = "utf-8", None
        if not bom and not header_bytes.isascii():
            evidence = EncodingEvidence(None, filename)
            encoding = evidence.settle(header_bytes, 1)  # refuses a header mixing encodings
            invalid_row = evidence.first_invalid_row
        text = decode(body, encoding, errors="replace")
        header = decode(header_bytes, encoding, errors="replace")
        data_start = bom + end if end >= 0 else size
    if not text.strip(" \t\r\n\x0c\ufeff"):
        raise refuse(filename, "empty", kind)
    if _looks_binary(text):
        raise refuse(filename, "binary", kind)
    other = _markup_or_json(text)
    if other:
        raise refuse(filename, other, kind)
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


def what_file_is(head: bytes, filename: str, kind: str) -> str:
    """``workbook`` or ``text``; raises for anything else."""
    if not head.strip():
        raise refuse(filename, "empty", kind)
    what = kind_of_bytes(head)
    if what not in ("workbook", "text"):
        raise refuse(filename, what, kind)
    return what
