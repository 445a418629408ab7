"""The one reader: the same cells and the same refusals whole, in blocks of any size, by ranges.

Each failure issue 16 lists is reproduced here first at the reader's level (it failed before the
reader existed): a column under two names, CR-only line ends, large Latin-1 / tab-separated /
binary files, a quote never closed, pandas' own words reaching users, a JSON document called
"only a header". The properties then say what makes the paths agree: any block size and any
Dask byte range give exactly the frame the whole file gives, or the same refusal.
"""

from __future__ import annotations

import codecs
import string
from pathlib import Path

import pandas as pd
import pytest
from corpus_support import CASES, CORPUS, case_id
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from termdeposit.core.errors import CohortValidationError, TermDepositError
from termdeposit.data import reader
from termdeposit.data.cohort_file import load_cohort, validate_cohort

SMALL = (CORPUS.parent / "cohort_small.csv").read_text()
HEADER, *ROWS = SMALL.strip("\n").split("\n")


def _write(tmp_path: Path, data: bytes, name: str = "cohort.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _blocks(path: Path, block_bytes: int) -> pd.DataFrame:
    frames = list(reader.open_table(path).frames(block_bytes))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _ranges(path: Path, block_bytes: int) -> pd.DataFrame:
    table = reader.open_table(path)
    parts = reader.plan_parts(table, block_bytes)
    frames = [reader.read_part(part) for part in parts]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _refusal(read) -> str | None:  # noqa: ANN001
    try:
        read()
    except TermDepositError as exc:
        return exc.message
    return None


def _many_rows(count: int, separator: str = ",", newline: str = "\n") -> str:
    lines = [HEADER]
    for i in range(count):
        row = ROWS[i % len(ROWS)].split(",")
        row[0] = f"C{i:07d}"
        lines.append(",".join(row))
    return newline.join(lines).replace(",", separator) + newline


# -- the failures of issue 16, each reproduced ------------------------------------------------


@pytest.mark.parametrize(
    ("header", "words"),
    [("id,customer_id", "appears twice (as 'id' and 'customer_id')"), ("Age,age", "'Age'")],
)
def test_the_same_column_under_two_names_is_refused_not_a_crash(header, words):
    # Before: AttributeError ('DataFrame' object has no attribute 'str') and TypeError
    # (factorize requires a Series): the API answered 500.
    first, second = header.split(",")
    columns = HEADER.replace("customer_id", first, 1).replace("age", second, 1)
    rows = [r.replace(",", ",41,", 1) if first == "Age" else "X" + r for r in ROWS]
    head = columns if first == "id" else HEADER.replace("customer_id,age", "customer_id,Age,age")
    data = (head.replace("customer_id", "id,customer_id", 1) if first == "id" else head) + "\n"
    data += "\n".join(f"X{i}," + r if first == "id" else r for i, r in enumerate(rows)) + "\n"
    with pytest.raises(CohortValidationError) as refused:
        load_cohort(data.encode(), "twice.csv")
    assert "appears twice" in refused.value.message and words in refused.value.message


def test_duplicate_header_names_reach_the_validator_in_every_path(tmp_path):
    # Before: files over 64 MiB were read by pandas' chunk reader, which renamed the second
    # 'age' to 'age.1' and set it aside: the file was scored, wrongly.
    header = HEADER.replace("customer_id,age,", "customer_id,age,age,")
    rows = [",".join([r.split(",")[0], "90", *r.split(",")[1:]]) for r in ROWS]
    body = "\n".join(rows) + "\n"
    path = _write(tmp_path, (header + "\n" + body * 3).encode())
    for read in (
        lambda: validate_cohort(reader.open_table(path).read()),
        lambda: [validate_cohort(f) for f in reader.open_table(path).frames(200)],
        lambda: [
            validate_cohort(reader.read_part(p))
            for p in reader.plan_parts(reader.open_table(path), 300)
        ],
    ):
        assert "age: appears twice" in _refusal(read)


def test_cr_only_line_ends_are_read_like_lf(tmp_path):
    # Before: _csv.Error "new-line character seen in unquoted field" (API: 500).
    lf = _write(tmp_path, SMALL.encode(), "lf.csv")
    cr = _write(tmp_path, SMALL.replace("\n", "\r").encode(), "cr.csv")
    expected = reader.open_table(lf).read()
    pd.testing.assert_frame_equal(reader.open_table(cr).read(), expected)
    pd.testing.assert_frame_equal(_blocks(cr, 150), expected)
    pd.testing.assert_frame_equal(_ranges(cr, 150), expected)


@pytest.mark.parametrize("block", [64, 300, 5_000])
def test_latin1_and_tab_separated_files_read_in_blocks(tmp_path, block):
    # Before: a large Latin-1 file ended in UnicodeDecodeError, a large tab-separated one was
    # refused as "not a cohort file" (the chunk reader guessed ';' or ',').
    text = _many_rows(40, "\t").replace("C0000001\t", "Çé-0001\t")
    path = _write(tmp_path, text.encode("latin-1"))
    whole = reader.open_table(path).read()
    assert whole.iloc[1, 0] == "Çé-0001" and len(whole) == 40
    pd.testing.assert_frame_equal(_blocks(path, block), whole)
    pd.testing.assert_frame_equal(_ranges(path, block), whole)


def test_binary_files_are_refused_by_content_at_any_size(tmp_path):
    # Before: UnicodeDecodeError tracebacks on the chunked and Dask paths.
    path = _write(tmp_path, bytes(range(256)) * 4096)
    assert "holds binary data" in _refusal(lambda: reader.open_table(path))


def test_a_quote_never_closed_is_said_in_the_users_words(tmp_path):
    # Before: "Error tokenizing data. C error: EOF inside string starting at row 2".
    lines = SMALL.strip("\n").split("\n")
    lines[4] = '"' + lines[4]
    path = _write(tmp_path, ("\n".join(lines) + "\n").encode())
    words = 'could not be read as CSV: a quote (") opened in row 5 is never closed.'
    for read in (
        lambda: reader.open_table(path).read(),
        lambda: _blocks(path, 100),
        lambda: _ranges(path, 100),
        lambda: reader.read_table(path.read_bytes(), "cohort.csv"),
    ):
        message = _refusal(read)
        assert message.endswith(words), message
        assert "C error" not in message and "tokenizing" not in message


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('[{"customer_id": "C1", "age": 41}]', "is a JSON document"),
        ('{\n "customers": []\n}', "is a JSON document"),
        ("<?xml version='1.0'?>\n<rows/>", "web page or XML document"),
    ],
)
def test_documents_that_are_not_tables_are_named(content, words):
    # Before: a one-line JSON document was called "a file that holds only a header".
    message = _refusal(lambda: reader.read_table(content.encode(), "x.csv"))
    assert words in message and "only a header" not in message


def test_no_library_words_reach_users():
    """No refusal of the corpus quotes pandas, Arrow or Python internals."""
    internals = ("C error", "tokeniz", "Traceback", "codec", "Error tokenizing", "pyarrow", "\\x")
    for case in CASES:
        message = _refusal(lambda c=case: load_cohort((CORPUS / c["file"]).read_bytes(), "f"))
        if message is not None:
            assert not any(word in message for word in internals), (case["file"], message)


# -- every path reads the same ------------------------------------------------------------


def _validate_pieces(frames: list[pd.DataFrame], table: reader.Table) -> None:
    """Validate pieces as the chunked scorer does: each on its own, then ids across them."""
    if not frames:
        validate_cohort(table.header_frame())
    ids = [validate_cohort(frame).frame["customer_id"] for frame in frames]
    if "customer_id" in validate_cohort(frames[0]).frame and not pd.concat(ids).is_unique:
        raise TermDepositError("customer ids appear more than once")


@pytest.mark.parametrize(
    "case", [c for c in CASES if not c["file"].endswith(("x", "m", "s"))], ids=case_id
)
def test_every_corpus_file_reads_the_same_whole_in_blocks_and_by_ranges(case):
    path = CORPUS / case["file"]
    expect = case["expect"].lower()
    whole = _refusal(lambda: validate_cohort(reader.open_table(path).read()))
    blocks = _refusal(
        lambda: _validate_pieces(list(reader.open_table(path).frames(97)), reader.open_table(path))
    )
    ranges = _refusal(
        lambda: _validate_pieces(
            [reader.read_part(p) for p in reader.plan_parts(reader.open_table(path), 97)],
            reader.open_table(path),
        )
    )
    assert (whole is None, blocks is None, ranges is None) == (case["accept"],) * 3, (
        whole,
        blocks,
        ranges,
    )
    if case["accept"]:
        frame = reader.open_table(path).read()
        pd.testing.assert_frame_equal(_blocks(path, 97), frame)
        pd.testing.assert_frame_equal(_ranges(path, 97), frame)
    else:
        assert expect in whole.lower() and expect in blocks.lower() and expect in ranges.lower()


_CELL = st.text(alphabet=string.ascii_letters + ' ,;"\n\r\té€ü', max_size=12)


def _csv_text(rows: list[list[str]], separator: str, newline: str) -> str:
    """RFC 4180 CSV: a cell holding the separator, a quote or a line break is quoted."""

    def cell(value: str) -> str:
        if any(c in value for c in (separator, '"', "\r", "\n")):
            return '"' + value.replace('"', '""') + '"'
        return value

    return "".join(separator.join(cell(v) for v in row) + newline for row in rows)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cells=st.lists(st.lists(_CELL, min_size=3, max_size=3), min_size=1, max_size=30),
    separator=st.sampled_from([",", ";", "\t"]),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16"]),
    block=st.integers(16, 400),
)
def test_blocks_and_ranges_of_any_size_give_the_whole_files_cells(
    tmp_path, cells, separator, newline, encoding, block
):
    if newline == "\r":
        cells = [[c.replace("\n", "").replace("\r", "") for c in row] for row in cells]
    text = _csv_text([["a", "b", "c"], *cells], separator, newline)
    path = _write(tmp_path, text.encode(encoding))
    whole = _refusal(lambda: reader.open_table(path).read())
    if whole is not None:
        assert whole == _refusal(lambda: _blocks(path, block))
        return
    frame = reader.open_table(path).read()
    assert len(frame) == len(cells)
    pd.testing.assert_frame_equal(_blocks(path, block), frame)
    pd.testing.assert_frame_equal(_ranges(path, block), frame)


@pytest.mark.parametrize("block", [40, 120, 10_000])
def test_a_file_mixing_encodings_is_refused_at_any_block_size(tmp_path, block):
    text = _many_rows(12)
    data = (
        text.encode()
        .replace(b"C0000002", "Société".encode())
        .replace(b"C0000009", "Müller".encode("cp1252"))
    )
    path = _write(tmp_path, data)
    for read in (
        lambda: reader.open_table(path).read(),
        lambda: _blocks(path, block),
        lambda: _ranges(path, block),
    ):
        assert "mixes two text encodings" in _refusal(read)


def test_a_cp1252_file_whose_first_accent_is_late_reads_as_cp1252(tmp_path):
    text = _many_rows(200).replace("C0000190", "Société")
    path = _write(tmp_path, text.encode("cp1252"))
    frame = _blocks(path, 256)
    assert frame.iloc[190, 0] == "Société"
    pd.testing.assert_frame_equal(frame, reader.open_table(path).read())


def test_utf16_without_bom_and_in_odd_blocks(tmp_path):
    path = _write(tmp_path, SMALL.encode("utf-16-le"))
    expected = reader.read_table(SMALL.encode(), "x.csv")
    pd.testing.assert_frame_equal(reader.open_table(path).read(), expected)
    pd.testing.assert_frame_equal(_blocks(path, 33), expected)
    pd.testing.assert_frame_equal(_ranges(path, 33), expected)


def test_a_row_with_more_values_than_the_header_names_its_row(tmp_path):
    lines = SMALL.strip("\n").split("\n")
    lines[3] += ",surprise"
    path = _write(tmp_path, ("\n".join(lines) + "\n").encode())
    for read in (lambda: reader.open_table(path).read(), lambda: _blocks(path, 60)):
        assert "row 4 has 21 values, but the header names 20 columns" in _refusal(read)
    trailing = _write(tmp_path, (HEADER + "\n" + ",\n".join(ROWS) + ",\n").encode(), "t.csv")
    pd.testing.assert_frame_equal(
        reader.open_table(trailing).read(), reader.read_table(SMALL.encode(), "x.csv")
    )


def test_utf8_bom_and_separator_in_quotes(tmp_path):
    data = codecs.BOM_UTF8 + SMALL.replace("admin.", '"admin,."').encode()
    frame = reader.read_table(data, "x.csv")
    assert list(frame.columns)[0] == "customer_id" and frame.iloc[1, 2] == "admin,."
