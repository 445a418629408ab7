"""Fast CSV reading and writing for large cohorts, each giving exactly the plain pandas result.

Reading CSV records with Arrow (multi-threaded, every cell as text; the blocks come from
:mod:`termdeposit.data.reader`), turning text into numbers and
shared category strings without per-cell Python work, and writing the scored CSV from Arrow
strings. Each function either returns what the
plain pandas code returns, byte for byte, or declines (returns None or raises
:class:`FastPathDeclinedError`) so its caller runs the plain code: speed never changes a result.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from pandas.api.types import is_float_dtype, is_integer_dtype, is_string_dtype

from termdeposit.data.exports import FORMULA_PREFIXES, neutralise_frame

#: Rows formatted at once by :func:`csv_bytes` (keeps Arrow string offsets far from 2 GiB).
WRITE_BATCH_ROWS = 100_000
_UTF8_BOM = b"\xef\xbb\xbf"
#: Floats in this range (and zero) are formatted by Arrow exactly as numpy/pandas format them,
#: once a trailing ".0" is added to integral values; others go through numpy.
_FLOAT_FAST_RANGE = (1e-4, 1e9)


_POOLS: dict[int, ThreadPoolExecutor] = {}


_POOLS_LOCK = threading.Lock()


def shared_pool(workers: int) -> ThreadPoolExecutor:
    """A long-lived pool: the same threads every call (new threads each time would each get
    their own malloc arena, and the process would keep their freed memory)."""
    with _POOLS_LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="termdeposit")
        return _POOLS[workers]


class FastPathDeclinedError(Exception):
    """The fast path cannot vouch for a result identical to the plain path's."""


def read_block(data: bytes, separator: str, width: int) -> pd.DataFrame | None:
    """Read whole CSV records (UTF-8, no header) as pandas would with ``header=None,
    dtype=str, keep_default_na=False, skipinitialspace=True``: ``width`` text columns named
    0, 1, ...; or return None when the result might differ (a row of another width, a cell
    starting with a space, text that is not UTF-8), for the caller to read it with pandas.
    """
    names = [str(i) for i in range(width)]
    read = pcsv.ReadOptions(column_names=names, use_threads=True)
    parse = pcsv.ParseOptions(
        delimiter=separator,
        quote_char='"',
        double_quote=True,
        escape_char=False,
        newlines_in_values=True,
        ignore_empty_lines=True,
    )
    convert = pcsv.ConvertOptions(
        column_types={name: pa.string() for name in names},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        check_utf8=True,
    )
    try:
        table = pcsv.read_csv(
            pa.BufferReader(data), read_options=read, parse_options=parse, convert_options=convert
        )
        frame = _as_text_frame(table)
    except (pa.ArrowInvalid, FastPathDeclinedError):
        return None
    return frame.set_axis(list(range(width)), axis=1)


def _as_text_frame(table: pa.Table) -> pd.DataFrame:
    """The table as pandas text columns; declines where pandas would strip a leading space."""
    for column in table.columns:
        if column.null_count or pc.any(pc.starts_with(column, " ")).as_py():
            raise FastPathDeclinedError("a cell starts with a space (pandas skips initial spaces)")
    return table.to_pandas()


def to_number(text: pd.Series) -> pd.Series:
    """``pd.to_numeric(text, errors="coerce")`` computed by Arrow when every cell parses.

    Arrow's parser and pandas' give the same float for every decimal string (both round
    correctly); cells Arrow refuses send the whole column to pandas.
    """
    try:
        values = pc.cast(pa.array(text, type=pa.string()), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return pd.to_numeric(text, errors="coerce")
    if values.null_count:
        return pd.to_numeric(text, errors="coerce")
    return pd.Series(values.to_numpy(zero_copy_only=False), index=text.index, dtype="float64")


def as_object(values: pd.Series) -> pd.Series:
    """``values.astype(object)``, with one shared Python string per distinct value.

    Equal values; building it costs one string per category instead of one per cell, and the
    encoder's dictionary look-ups are faster on shared strings.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    objects = np.asarray(list(uniques), dtype=object)
    return pd.Series(objects[codes], index=values.index, dtype=object)


def parse_by_distinct_values(
    parser: Callable[[pd.DataFrame, list[Any]], dict[str, pd.Series]],
    frame: pd.DataFrame,
    columns: tuple[str, ...],
    distinct: dict[str, pd.Series] | None = None,
) -> dict[str, pd.Series] | None:
    """Run a per-cell parser of the contract on each column's distinct values, then spread the
    parsed values back to every row.

    A column of a million rows holds a few hundred distinct values at most (ids aside), so the
    parser's string work runs on those only. Returns None when the parser reports a problem
    for any value: the caller then parses the whole frame, for the problem's row numbers.

    Args:
        distinct: filled with each column's parsed distinct values, when given.
    """
    parsed: dict[str, pd.Series] = {}
    for column in columns:
        if column not in frame:
            continue
        codes, uniques = pd.factorize(frame[column], use_na_sentinel=False)
        problems: list[Any] = []
        values = parser(pd.DataFrame({column: uniques}), problems).get(column)
        if problems or values is None:
            return None
        if distinct is not None:
            distinct[column] = values
        spread = values.to_numpy()[codes]
        parsed[column] = pd.Series(spread, index=frame.index, dtype=values.dtype)
    return parsed


def _float_text(values: np.ndarray) -> pa.Array:
    """Floats as pandas writes them (numpy's shortest repr; NaN as an empty cell)."""
    text = pc.cast(pa.array(values, type=pa.float64()), pa.string())
    integral = pc.invert(pc.match_substring_regex(text, r"[.en]"))
    text = pc.if_else(integral, pc.binary_join_element_wise(text, ".0", ""), text)
    magnitude = np.abs(values)
    low, high = _FLOAT_FAST_RANGE
    slow = ~((magnitude == 0) | ((magnitude >= low) & (magnitude < high))) & np.isfinite(values)
    if slow.any():
        fixed = np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)
        fixed[slow] = values[slow].astype(str)
        text = pa.array(fixed, type=pa.string())
    if np.isnan(values).any():
        text = pc.if_else(pa.array(np.isnan(values)), "", text)
    return text


def _text_cell(value: str) -> str:
    """One text cell neutralised against formulas and quoted as the csv module quotes it."""
    if value.startswith(FORMULA_PREFIXES):
        value = "'" + value
    if "," in value or '"' in value or "\n" in value:
        value = '"' + value.replace('"', '""') + '"'
    return value


def _text_cells(text: pa.Array) -> pa.Array:
    """:func:`_text_cell` on every cell, with Arrow kernels (for columns of distinct values)."""
    first = pc.utf8_slice_codeunits(text, 0, 1)
    formula = pc.is_in(first, value_set=pa.array(list(FORMULA_PREFIXES)))
    if pc.any(formula).as_py():
        text = pc.if_else(formula, pc.binary_join_element_wise("'", text, ""), text)
    needs_quotes = pc.or_(
        pc.or_(pc.match_substring(text, ","), pc.match_substring(text, '"')),
        pc.match_substring(text, "\n"),
    )
    if pc.any(needs_quotes).as_py():
        quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
        text = pc.if_else(needs_quotes, quoted, text)
    return text


def _column_values(series: pd.Series) -> tuple[str, Any]:
    """The column's kind (int, float, text) and its values (numpy, or Arrow for text)."""
    dtype = series.dtype
    if is_integer_dtype(dtype) and isinstance(dtype, np.dtype):
        return "int", series.to_numpy()
    if is_float_dtype(dtype) and dtype == np.float64:
        return "float", series.to_numpy()
    if is_string_dtype(dtype):
        try:
            text = pa.array(series, type=pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
            raise FastPathDeclinedError("a text column holds non-text values") from exc
        if text.null_count:
            raise FastPathDeclinedError("a text column holds missing values")
        return "text", text
    raise FastPathDeclinedError(f"no fast writer for dtype {dtype}")


def _few_distinct(values: Any, sample: int = 10_000) -> bool:
    head = values[:sample]
    distinct = (
        pc.count_distinct(head).as_py() if isinstance(head, pa.Array) else len(pd.unique(head))
    )
    return distinct * 10 <= len(head)


def _formatted_uniques(kind: str, uniques: Any) -> list[str]:
    if kind == "text":
        return [_text_cell(v) for v in uniques.to_pylist()]
    return [str(v) for v in np.asarray(uniques).astype(str)]


def _column_text(series: pd.Series) -> pa.Array:
    """The cells of one column as pandas writes them, formatted by Arrow.

    Columns with few distinct values (categories, decisions, most inputs) are formatted once
    per value, exactly as pandas formats them, and expanded by code; others cell by cell.
    """
    kind, values = _column_values(series)
    negative_zero = kind == "float" and bool(np.any((values == 0) & np.signbit(values)))
    if _few_distinct(values) and not negative_zero:
        if kind == "text":
            encoded = pc.dictionary_encode(values)
            codes, uniques = encoded.indices, encoded.dictionary
            return pa.array(_formatted_uniques(kind, uniques), type=pa.string()).take(codes)
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        table = pa.array([*_formatted_uniques(kind, uniques), ""], type=pa.string())
        return table.take(pa.array(np.where(codes < 0, len(uniques), codes)))
    if kind == "int":
        return pc.cast(pa.array(values), pa.string())
    if kind == "float":
        return _float_text(values)
    return _text_cells(values)


def csv_bytes(frame: pd.DataFrame, header: bool = True) -> bytes:
    """``neutralise_frame(frame).to_csv(index=False, header=header)`` as UTF-8 bytes, fast.

    Integer, float64 and text columns are formatted by Arrow; any other frame goes through
    pandas. Tests compare both outputs byte for byte.
    """
    try:
        text = _csv_bytes_fast(frame, header)
        pa.default_memory_pool().release_unused()  # give Arrow's scratch memory back
        return text
    except FastPathDeclinedError:
        return neutralise_frame(frame).to_csv(index=False, header=header).encode("utf-8")


def _csv_bytes_fast(frame: pd.DataFrame, header: bool) -> bytes:
    if frame.shape[1] < 2 or not frame.columns.is_unique:
        raise FastPathDeclinedError("single or duplicated columns")
    head = neutralise_frame(frame.iloc[:0]).to_csv(index=False).encode("utf-8") if header else b""
    pieces = [frame.iloc[s : s + WRITE_BATCH_ROWS] for s in range(0, len(frame), WRITE_BATCH_ROWS)]
    # Arrow's kernels release the GIL: pieces are formatted side by side, joined in order.
    lines = shared_pool(2).map(_lines, pieces) if len(pieces) > 1 else map(_lines, pieces)
    return b"".join([head, *lines])


def _lines(piece: pd.DataFrame) -> bytes:
    """The CSV lines of some rows (no header)."""
    cells = [_column_text(piece[name]) for name in piece.columns]
    lines = pc.binary_join_element_wise(*cells, ",")
    return _string_data(pc.binary_join_element_wise(lines, "", "\n"))


def _string_data(array: pa.Array | pa.ChunkedArray) -> bytes:
    """The characters of a string array with no separator: all its values, concatenated."""
    if isinstance(array, pa.ChunkedArray):
        return b"".join(_string_data(chunk) for chunk in array.chunks)
    if len(array) == 0:
        return b""
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset :]
    begin, end = int(offsets[0]), int(offsets[len(array)])
    return array.buffers()[2].slice(begin, end - begin).to_pybytes()
