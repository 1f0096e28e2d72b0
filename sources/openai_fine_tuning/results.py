"""A job's results file (`GET /files/{id}/content`) as Arrow tables: downloaded as a stream,
decoded from base64 when it is base64 (recent jobs) or taken as is (older jobs' plain CSV).

Memory stays flat whatever the file size: the body is decoded chunk by chunk into a spooled
temporary file (on disk past a few MB), parsed once into Arrow record batches of bounded rows,
spooled in turn as an IPC stream, and only then yielded: every line is checked before the
first row goes out, so a broken file loads nothing rather than its first half.

Two readers, one rule. pyarrow's CSV reader reads the file, every column typed DOUBLE from the
header, some 15x faster than Python. Python's `csv` module and `float()` are the rule: when
pyarrow refuses the file, or what it read is not what the rule accepts (a missing or fractional
`step`, names it reads otherwise, a line past csv's field limit), the file is read again by
the rule, which names the line and column of the problem, or builds the same columns for the
few forms only it accepts (`1_000`, a cell of spaces, a quoted value spanning lines). pyarrow
never accepts what the rule refuses (`tests/.../test_results.py` compares both on many odd
cells). NaN and infinities load as NULL, as they did when rows went to dlt as dicts.

Longer than most modules on purpose: download, both readers and the one rule they share are
one concern (what a results file is); split, the rule would sit apart from its fast reader.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import tempfile
from dataclasses import dataclass
from typing import IO, Dict, Iterable, Iterator, List, Optional

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from dlt.common.normalizers.naming.snake_case import NamingConvention as SnakeCase

from .http.client import FineTuningApi
from .settings import RESULT_BATCH_ROWS, RESULT_COLUMNS

SPOOL_BYTES = 4 * 1024 * 1024  # past this the decoded CSV goes to a temporary file
CSV_BLOCK_BYTES = 128 * 1024  # read by pyarrow at a time (more: more memory, no faster)
# base64 bodies may be wrapped in lines, or come as one JSON string: both are ignored
_BASE64_NOISE = b' \t\r\n"'
_BASE64_ALPHABET = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=" + _BASE64_NOISE
)
_SNIFF_BYTES = 128

# `results` as Arrow: the columns every table has (the CSV's others follow, DOUBLE); the
# source adds `_dlt_id` from the primary key, as to every Arrow table (`columnar.with_row_ids`)
_FILE_ID = pa.field("file_id", pa.string(), nullable=False)
_STEP = pa.field("step", pa.int64(), nullable=False)
_JOB_ID = pa.field("fine_tuning_job_id", pa.string(), nullable=False)
_DECLARED = frozenset(RESULT_COLUMNS)  # in the table from the start: kept even when empty


class ResultsFileError(Exception):
    """The content is not a results CSV (bad base64, not text, not CSV, no `step` column)."""


class ContentDecoder:
    """Turns the body's chunks into the CSV's bytes: base64-decoded, or passed through.

    The kind is decided from the first bytes: a base64 body has only base64 characters
    (whitespace and quotes aside); a plain CSV has a comma or other text in its header line.
    """

    def __init__(self) -> None:
        self._head = b""
        self._base64: Optional[bool] = None
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        if self._base64 is None:
            self._head += chunk
            if len(self._head.translate(None, _BASE64_NOISE)) < _SNIFF_BYTES:
                return b""
            return self._decide()
        return self._decode(chunk) if self._base64 else chunk

    def finish(self) -> bytes:
        out = self._decide() if self._base64 is None else b""
        if self._base64 and self._pending:
            out += self._decode(b"", final=True)
        return out

    def _decide(self) -> bytes:
        head, self._head = self._head, b""
        first_line = head.lstrip().split(b"\n", 1)[0]
        self._base64 = bool(head.strip()) and all(
            byte in _BASE64_ALPHABET for byte in first_line[:_SNIFF_BYTES]
        )
        return self._decode(head) if self._base64 else head

    def _decode(self, chunk: bytes, final: bool = False) -> bytes:
        data = self._pending + chunk.translate(None, _BASE64_NOISE)
        usable = len(data) if final else len(data) - len(data) % 4
        self._pending = data[usable:]
        try:
            return base64.b64decode(data[:usable], validate=True)
        except (binascii.Error, ValueError) as error:
            raise ResultsFileError(f"not valid base64 ({error})") from None


def _decoded_spool(chunks: Iterator[bytes]) -> IO[bytes]:
    """The decoded CSV of a body's chunks, in a spooled temporary file at position 0."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    decoder = ContentDecoder()
    try:
        for chunk in chunks:
            spool.write(decoder.feed(chunk))
        spool.write(decoder.finish())
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


def download_csv(api: FineTuningApi, file_id: str) -> Optional[IO[bytes]]:
    """The decoded CSV of a file, in a spooled temporary file at position 0; None on 404.

    A connection lost mid-body is retried like any request (`max_attempts`).
    """
    return api.read_file_content(file_id, _decoded_spool)


_NAMING = SnakeCase()  # dlt's default naming: names it would make one column are refused
_OURS = ("file_id", "step", "fine_tuning_job_id", "_dlt_id", "_dlt_load_id")  # not the CSV's


@dataclass(frozen=True)
class Layout:
    """Where a header's columns are: `names` stripped; `values`, each column but `step` once
    (named as in the table: an empty name is `_empty`, as dlt names an empty key), in header
    order, at the position of its last cell (a name twice keeps its last value, as a row dict
    did)."""

    names: List[str]
    step_at: int
    values: Dict[str, int]

    @classmethod
    def of(cls, names: List[str]) -> Layout:
        """The layout of a header's stripped names.

        Raises:
            ResultsFileError: there is no `step` column, a column the table fills itself
                (`file_id`...), or two that would be one column of the table.
        """
        if "step" not in names:
            shown = ", ".join(names[:8]) or "empty"
            raise ResultsFileError(f"not a results CSV: no 'step' column (header: {shown})")
        seen: Dict[str, Optional[str]] = dict.fromkeys(_OURS)
        values: Dict[str, int] = {}
        for at, name in enumerate(names):
            if name == "step":
                continue
            column = name or "_empty"
            normalized = _NAMING.normalize_path(column)
            other = seen.setdefault(normalized, name)
            if other is None:
                raise ResultsFileError(
                    f"not a results CSV: a column {name!r} (the table's own {normalized!r})"
                )
            if other != name:
                raise ResultsFileError(
                    f"not a results CSV: columns {other!r} and {name!r} would be one column"
                    f" ({normalized!r})"
                )
            values[column] = at  # a name twice: its first place, its last cell
        return cls(names, names.index("step"), values)

    def schema(self) -> pa.Schema:
        """The spooled batches' columns: `step`, then every other column as DOUBLE."""
        return pa.schema(
            [pa.field("step", pa.int64(), nullable=False)]
            + [pa.field(name, pa.float64()) for name in self.values]
        )


def _number(cell: str, line: int, name: str) -> Optional[float]:
    if not cell.strip():
        return None
    try:
        return float(cell)
    except ValueError:
        raise ResultsFileError(
            f"not a results CSV: line {line}, column {name!r} is not a number ({cell[:20]!r})"
        ) from None


_INT64 = (-(2**63), 2**63)


def python_batches(spool: IO[bytes]) -> Iterator[pa.RecordBatch]:
    """The rule: the CSV's rows as record batches (`step` whole, every other cell a number or
    empty), read by Python's `csv` and `float()`.

    Raises:
        ResultsFileError: naming the first line and column that breaks the rule.
    """
    spool.seek(0)
    text = io.TextIOWrapper(spool, encoding="utf-8-sig", newline="")
    try:
        reader = csv.reader(text)
        header = next(reader, None)
        layout = Layout.of([name.strip() for name in header or ()])
        schema = layout.schema()
        steps: List[int] = []
        columns: Dict[str, List[Optional[float]]] = {name: [] for name in layout.values}
        for cells in reader:
            if not cells:
                continue
            line = reader.line_num
            if len(cells) != len(layout.names):
                raise ResultsFileError(
                    f"not a results CSV: line {line} has {len(cells)} fields, the header"
                    f" {len(layout.names)}"
                )
            step = _number(cells[layout.step_at], line, "step")
            if step is None or not step.is_integer():
                raise ResultsFileError(
                    f"not a results CSV: line {line} has no whole 'step'"
                    f" ({cells[layout.step_at]!r})"
                )
            numbers = [_number(c, line, n) for n, c in zip(layout.names, cells, strict=True)]
            if not _INT64[0] <= step < _INT64[1]:
                raise ResultsFileError(
                    f"not a results CSV: line {line}, 'step' is out of range"
                    f" ({cells[layout.step_at][:20]!r})"
                )
            steps.append(int(step))
            for name, at in layout.values.items():
                columns[name].append(numbers[at])
            if len(steps) >= RESULT_BATCH_ROWS:
                yield pa.record_batch([steps, *columns.values()], schema=schema)
                steps.clear()
                for values in columns.values():
                    values.clear()
        if steps:
            yield pa.record_batch([steps, *columns.values()], schema=schema)
    except UnicodeDecodeError:
        raise ResultsFileError("not UTF-8 text") from None
    except csv.Error as error:
        raise ResultsFileError(f"not a results CSV ({error})") from None
    finally:
        text.detach()


class RuleNeededError(Exception):
    """pyarrow did not read the file as the rule would: the rule reads it."""


def _raw_header(spool: IO[bytes]) -> List[str]:
    """The header's names as the rule reads them, unstripped."""
    spool.seek(0)
    text = io.TextIOWrapper(spool, encoding="utf-8-sig", newline="")
    try:
        return next(csv.reader(text), None) or []
    except (UnicodeDecodeError, csv.Error):
        raise RuleNeededError from None
    finally:
        text.detach()


def arrow_batches(spool: IO[bytes]) -> Iterator[pa.RecordBatch]:
    """The rule's batches, read by pyarrow's CSV reader.

    Raises:
        RuleNeededError: pyarrow refused the file, or read something the rule would not accept
            (or would read otherwise); nothing is said of why, the rule will.
    """
    raw = _raw_header(spool)
    try:
        layout = Layout.of([name.strip() for name in raw])
    except ResultsFileError:
        raise RuleNeededError from None
    spool.seek(0)
    if max(map(len, spool), default=0) > csv.field_size_limit():
        raise RuleNeededError  # a field may be past the rule's limit (~60 ms per 1M lines)
    schema = layout.schema()
    spool.seek(0)
    convert = pa_csv.ConvertOptions(
        column_types={name: pa.float64() for name in raw},
        null_values=[""],  # only an empty cell is NULL ("nan" is NaN, "NA" not a number)
        quoted_strings_can_be_null=True,
    )
    read = pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False)
    try:
        reader = pa_csv.open_csv(spool, read_options=read, convert_options=convert)
        if reader.schema.names != raw:
            raise RuleNeededError
        for batch in reader:
            step = batch.column(layout.step_at)
            if step.null_count:
                raise RuleNeededError
            steps = pc.cast(step, pa.int64())  # refuses fractions, NaN, infinities, overflow
            values = [batch.column(at) for at in layout.values.values()]
            yield pa.record_batch([steps, *values], schema=schema)
    except pa.ArrowException:  # ArrowInvalid mostly: not a number, a field too many...
        raise RuleNeededError from None


def _spool_batches(batches: Iterable[pa.RecordBatch], out: IO[bytes]) -> None:
    """Writes the batches to `out` as an IPC stream, regrouped to `RESULT_BATCH_ROWS` rows
    each (the last fewer); nothing at all when there is no row."""
    writer: Optional[pa.ipc.RecordBatchStreamWriter] = None
    pending: List[pa.RecordBatch] = []
    rows = 0
    try:
        for batch in map(_finite, batches):
            if writer is None:
                writer = pa.ipc.new_stream(out, batch.schema)
            pending.append(batch)
            rows += batch.num_rows
            while rows >= RESULT_BATCH_ROWS:
                table = pa.Table.from_batches(pending).combine_chunks()
                writer.write_table(table.slice(0, RESULT_BATCH_ROWS))
                pending = table.slice(RESULT_BATCH_ROWS).to_batches()
                rows -= RESULT_BATCH_ROWS
        if rows:
            writer.write_table(pa.Table.from_batches(pending).combine_chunks())  # type: ignore[union-attr]
    finally:
        if writer is not None:
            writer.close()


def check_and_spool(spool: IO[bytes]) -> IO[bytes]:
    """The decoded CSV's rows, every line checked, as an IPC stream in a spooled temporary
    file at position 0 (empty when the file has no row).

    Raises:
        ResultsFileError: naming what is wrong with the content.
    """
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    try:
        try:
            _spool_batches(arrow_batches(spool), out)
        except RuleNeededError:
            out.seek(0)
            out.truncate()
            _spool_batches(python_batches(spool), out)
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out


def _finite(batch: pa.RecordBatch) -> pa.RecordBatch:
    """NULL for NaN and infinities (`nan`, `inf` cells), as when rows went to dlt as dicts:
    its JSON writes them as null."""
    columns = batch.columns
    for at in range(1, len(columns)):
        finite = pc.is_finite(columns[at])
        if pc.all(finite).as_py() is False:  # nulls aside (`all` skips them; None if all are)
            columns[at] = pc.if_else(finite, columns[at], None)
    return pa.record_batch(columns, schema=batch.schema)


def _tables(rows: IO[bytes], file_id: str, job_id: str) -> Iterator[pa.Table]:
    """The spooled batches as `results` tables: the file's and the job's ids, `step`, then
    the CSV's other columns. A column not declared and empty in every row of a table is left
    out of it, as a row dict's None made no column: a column exists once some row has a
    value."""
    with rows:
        if not rows.read(1):
            return
        rows.seek(0)
        with pa.ipc.open_stream(rows) as reader:
            for batch in reader:
                n = batch.num_rows
                fields = [_FILE_ID, _STEP, _JOB_ID]
                columns = [pa.repeat(file_id, n), batch.column(0), pa.repeat(job_id, n)]
                for at in range(1, batch.num_columns):  # after `step`
                    field, column = batch.schema.field(at), batch.column(at)
                    if field.name in _DECLARED or column.null_count < n:
                        fields.append(field)
                        columns.append(column)
                yield pa.Table.from_arrays(columns, schema=pa.schema(fields))


def iter_result_batches(
    api: FineTuningApi, file_id: str, job_id: str
) -> Optional[Iterator[pa.Table]]:
    """The file's rows as Arrow tables of at most `RESULT_BATCH_ROWS` rows, after every line
    was checked; None when the file is gone.

    Raises:
        ResultsFileError: naming what is wrong with the content, before any row is yielded.
    """
    spool = download_csv(api, file_id)
    if spool is None:
        return None
    with spool:
        rows = check_and_spool(spool)
    return _tables(rows, file_id, job_id)
