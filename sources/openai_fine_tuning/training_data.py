"""A job's training and validation files (JSONL), archived line by line: `training_examples`
rows, and the `files` columns that rebuild each file byte for byte.

A file is read once, ever (its content never changes). The body streams through a SHA-256 and
into a spooled temporary file (memory stays flat whatever the size), then is split on `\\n`
only: U+2028 inside a JSON string is not a line break (`str.splitlines()` would say it is).
A body whose length differs from the file's `bytes`, or that arrives broken on every attempt,
loads nothing of the file: it is named in the summary and read again next run.

How a file is rebuilt (`openai-ft export`): the BOM if `bom`, then every `raw` in line order
joined by the `line_ending` (`\\r\\n` or `\\n`), then one more line ending if `final_newline`.
`line_ending` is `crlf` only when every line break of the file is `\\r\\n`; in a file with mixed
endings a `\\r` before a `\\n` stays in `raw`, so the rebuild is still exact. A file that is not
UTF-8 gets its bad bytes replaced (`utf8` false): it cannot be rebuilt exactly, and is named.

Longer than the other modules on purpose: download, layout, rows and rebuild rules of one
file are one concern; splitting them would spread the byte-for-byte promise over files.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from typing import IO, Any, Dict, Iterator, List, Optional, Tuple

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .errors import BodyLostError
from .http.client import FineTuningApi
from .ledger import JobLedger
from .rows import file_row, require_item
from .settings import FILES_PATH, TRAINING_BATCH_ROWS, TRAINING_FILE_ROLES
from .stats import UnreadableFile

Row = Dict[str, Any]
BOM = b"\xef\xbb\xbf"
SPOOL_BYTES = 8 * 1024 * 1024  # past this the body goes to a temporary file


class TrainingFileError(Exception):
    """The body is not the file the metadata describes (length), or never arrived whole."""


def training_files(job: Row) -> List[str]:
    """Ids of the files the job trains and validates on, each once."""
    ids = [job.get(field) for field, _ in TRAINING_FILE_ROLES]
    return list(dict.fromkeys(i for i in ids if isinstance(i, str) and i))


@dataclass
class Body:
    """A downloaded body: its bytes in a spool at position 0, their length and SHA-256."""

    spool: IO[bytes]
    size: int
    sha256: str


def _spooled(chunks: Iterator[bytes]) -> Body:
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    digest, size = hashlib.sha256(), 0
    try:
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return Body(spool, size, digest.hexdigest())


_CHAT_KEYS = frozenset({"messages", "tools", "parallel_tool_calls", "functions"})


def _kind(example: Any, method: Optional[str]) -> Tuple[Optional[str], Optional[int], bool]:
    """(kind, messages, has_tools) of a parsed line. `dpo` has `input` and preferred outputs
    (its input messages are counted); other lines are `reinforcement` in a reinforcement job
    (or, when the job does not say, when reference fields sit beside `messages`), else `chat`.
    """
    if not isinstance(example, dict):
        return None, None, False
    if "input" in example and ("preferred_output" in example or "non_preferred_output" in example):
        given = example["input"] if isinstance(example["input"], dict) else {}
        messages = given.get("messages")
        tools = given.get("tools") or example.get("tools")
        return "dpo", len(messages) if isinstance(messages, list) else None, bool(tools)
    messages = example.get("messages")
    count = len(messages) if isinstance(messages, list) else None
    if method is None:
        reinforcement = bool(set(example) - _CHAT_KEYS)
    else:
        reinforcement = method == "reinforcement"
    return ("reinforcement" if reinforcement else "chat"), count, bool(example.get("tools"))


@dataclass
class Layout:
    """How the file's lines are laid out: enough, with the rows, to rebuild it exactly."""

    lines: int = 0
    breaks: int = 0  # line breaks (\n) seen
    crlf_breaks: int = 0  # of which \r\n
    final_newline: bool = False
    bom: bool = False
    utf8: bool = True
    invalid: int = 0  # lines that are not JSON (blank ones included)

    @property
    def crlf(self) -> bool:
        return self.breaks > 0 and self.crlf_breaks == self.breaks

    def columns(self, body: Body) -> Row:
        return {
            "sha256": body.sha256,
            "lines": self.lines,
            "line_ending": "crlf" if self.crlf else "lf",
            "final_newline": self.final_newline,
            "bom": self.bom,
            "utf8": self.utf8,
        }


def _lines(spool: IO[bytes], layout: Layout) -> Iterator[Tuple[bytes, bool]]:
    """(line without its `\n`, whether a `\n` ended it) for each line, the BOM removed; a
    `\r` before the `\n` is kept (whether it belongs to the line ending is known only at the
    end). Fills the layout's line-break facts."""
    first = True
    for piece in spool:  # a binary file iterates on b"\n" only
        if first:
            first = False
            if piece.startswith(BOM):
                layout.bom, piece = True, piece[len(BOM) :]
        terminated = piece.endswith(b"\n")
        layout.final_newline = terminated
        if terminated:
            layout.breaks += 1
            layout.crlf_breaks += piece.endswith(b"\r\n")
            piece = piece[:-1]
        yield piece, terminated


# `training_examples` as Arrow: its rows go to dlt as tables (written as Parquet, no per-row
# normalize work), with the types the column hints declare
# (dlt adds no `_dlt_id` to Arrow rows, and `_dlt_load_id` as configured: the table is created
# from an empty table of this schema, not dlt's marker, which would add both as NOT NULL)
SCHEMA = pa.schema(
    [
        pa.field("file_id", pa.string(), nullable=False),
        pa.field("line", pa.int64(), nullable=False),
        pa.field("raw", pa.string(), nullable=False),
        pa.field("valid_json", pa.bool_(), nullable=False),
        pa.field("kind", pa.string()),
        pa.field("messages", pa.int64()),
        pa.field("has_tools", pa.bool_()),
        pa.field("chars", pa.int64(), nullable=False),
    ]
)
# in the spooled batches only: the line's `\r` may be half of a `\r\n` ending
_CR = pa.field("_cr", pa.bool_(), nullable=False)


def _spool_rows(
    body: Body, file_id: str, method: Optional[str], layout: Layout, out: IO[bytes]
) -> None:
    """Writes one row per line, in order, as Arrow record batches to `out` (an IPC stream).
    `_cr` marks a line whose `\r` is the first half of a `\r\n` line ending, in case the
    file turns out to be CRLF (see `_tables`)."""
    schema = SCHEMA.append(_CR)
    columns: Dict[str, List[Any]] = {name: [] for name in schema.names}
    with pa.ipc.new_stream(out, schema) as writer:

        def flush() -> None:
            writer.write_batch(pa.record_batch(columns, schema=schema))
            for values in columns.values():
                values.clear()

        raw, valid_json, kinds, counts, tools, chars, crs = (
            columns[name]
            for name in ("raw", "valid_json", "kind", "messages", "has_tools", "chars", "_cr")
        )
        number = 0
        for number, (raw_bytes, terminated) in enumerate(_lines(body.spool, layout), start=1):
            try:
                text = raw_bytes.decode("utf-8")
            except UnicodeDecodeError:
                layout.utf8 = False
                text = raw_bytes.decode("utf-8", errors="replace")
            cr = terminated and raw_bytes.endswith(b"\r")
            try:
                example = orjson.loads(raw_bytes[:-1] if cr else raw_bytes)
                valid = True
            except orjson.JSONDecodeError:  # blank lines too
                example, valid = None, False
                layout.invalid += 1
            kind, messages, has_tools = _kind(example, method)
            raw.append(text)
            valid_json.append(valid)
            kinds.append(kind)
            counts.append(messages)
            tools.append(has_tools if valid else None)
            chars.append(len(text))
            crs.append(cr)
            if len(raw) >= TRAINING_BATCH_ROWS:
                columns["file_id"] = [file_id] * len(raw)
                columns["line"] = list(range(number - len(raw) + 1, number + 1))
                flush()
        layout.lines = number
        if raw:
            columns["file_id"] = [file_id] * len(raw)
            columns["line"] = list(range(number - len(raw) + 1, number + 1))
            flush()


def archive_file(
    api: FineTuningApi, file_id: str, record: Row, method: Optional[str] = None
) -> Optional[Tuple[Layout, Body, IO[bytes]]]:
    """Downloads and checks the file; None when its content is gone (404).

    Returns the layout, the body and a spool of the `training_examples` rows (an Arrow IPC
    stream), all lines read before any row goes out: a file whose body is wrong loads
    nothing.

    Raises:
        TrainingFileError: the body's length is not the metadata's `bytes`, or it never
            arrived whole.
    """
    try:
        body = api.read_file_content(file_id, _spooled)
    except BodyLostError as error:
        raise TrainingFileError(str(error)) from None
    if body is None:
        return None
    expected = record.get("bytes")
    if isinstance(expected, int) and body.size != expected:
        body.spool.close()
        raise TrainingFileError(f"the body has {body.size:,} bytes, its metadata says {expected:,}")
    layout = Layout()
    rows = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    try:
        _spool_rows(body, file_id, method, layout, rows)
    except BaseException:
        rows.close()
        body.spool.close()
        raise
    rows.seek(0)
    return layout, body, rows


def _tables(rows: IO[bytes], crlf: bool) -> Iterator[pa.Table]:
    """The spooled rows, a table per batch; in a CRLF file each line's `\r` goes with its
    `\n`."""
    with rows, pa.ipc.open_stream(rows) as reader:
        for batch in reader:
            table = pa.Table.from_batches([batch])
            if crlf:
                cr = table["_cr"]
                trimmed = pc.utf8_slice_codeunits(table["raw"], 0, -1)
                raw = pc.if_else(cr, trimmed, table["raw"])
                table = table.set_column(table.schema.get_field_index("raw"), "raw", raw)
                chars = pc.subtract(table["chars"], pc.cast(cr, pa.int64()))
                table = table.set_column(table.schema.get_field_index("chars"), "chars", chars)
            yield table.drop_columns(["_cr"]).cast(SCHEMA)  # computed columns come back nullable


@dataclass(frozen=True)
class TrainingItems:
    """What `iter_training_items` yields: rows for a table."""

    table: str  # `training_examples` or `files`
    rows: Any  # an Arrow table of `training_examples`, or a list of `files` rows


def iter_training_items(api: FineTuningApi, ledger: JobLedger, job: Row) -> Iterator[TrainingItems]:
    """The rows of the job's training and validation files not archived yet, then each file's
    `files` row (metadata and the columns that rebuild it).

    A file is requested once, ever; a 404 (metadata or content) is counted and not requested
    again. A file whose body is wrong is named in the summary, its metadata row still loads,
    and the job stays open for `training_data`: the next run reads it again.
    """
    method = job["method"].get("type") if isinstance(job.get("method"), dict) else None
    complete = True
    for file_id in training_files(job):
        if not ledger.claim_content(file_id):
            continue  # archived before, gone, or being read for another job of this run
        endpoint = api.endpoint(f"{FILES_PATH}/{file_id}")
        record = api.get_file(file_id)
        if record is None:
            ledger.content_done(file_id, missing=True)
            api.stats.count_missing_file(file_id)
            continue
        metadata = file_row(require_item(record, endpoint, "file"), endpoint)
        try:
            archived = archive_file(api, file_id, record, method)
        except TrainingFileError as error:
            api.stats.count_unreadable(UnreadableFile(file_id, job["id"], str(error), "training"))
            complete = False
            yield TrainingItems("files", [metadata])
            ledger.file_done(file_id)  # its metadata is loaded; the content is read again
            continue
        if archived is None:  # the metadata is there, the content is gone
            ledger.file_done(file_id)
            ledger.content_done(file_id, missing=True)
            api.stats.count_missing_file(file_id)
            yield TrainingItems("files", [metadata])
            continue
        layout, body, rows = archived
        body.spool.close()
        for table in _tables(rows, layout.crlf):
            yield TrainingItems("training_examples", table)
        api.stats.count_training_file(file_id, layout.invalid, layout.utf8)
        yield TrainingItems("files", [{**metadata, **layout.columns(body)}])
        ledger.content_done(file_id)
    if complete:
        ledger.settle(job["id"], "training_data")
