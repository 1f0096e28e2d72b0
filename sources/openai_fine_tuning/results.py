"""A job's results file (`GET /files/{id}/content`) as rows: downloaded as a stream, decoded
from base64 when it is base64 (recent jobs) or taken as is (older jobs' plain CSV).

Memory stays flat whatever the file size: the body is decoded chunk by chunk into a spooled
temporary file (on disk past a few MB), then read twice: once to check every line, once to
yield rows. Checking first means a broken file loads nothing rather than its first half.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import tempfile
from typing import IO, Any, Dict, Iterator, List, Optional

from .http.client import FineTuningApi
from .settings import RESULT_BATCH_ROWS

SPOOL_BYTES = 4 * 1024 * 1024  # past this the decoded CSV goes to a temporary file
# base64 bodies may be wrapped in lines, or come as one JSON string: both are ignored
_BASE64_NOISE = b' \t\r\n"'
_BASE64_ALPHABET = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=" + _BASE64_NOISE
)
_SNIFF_BYTES = 128


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


def _number(cell: str, line: int, name: str) -> Optional[float]:
    if not cell.strip():
        return None
    try:
        return float(cell)
    except ValueError:
        raise ResultsFileError(
            f"not a results CSV: line {line}, column {name!r} is not a number ({cell[:20]!r})"
        ) from None


def iter_rows(spool: IO[bytes], file_id: str, job_id: str) -> Iterator[Dict[str, Any]]:
    """Rows of the decoded CSV: `step` an integer, every other cell a float or None."""
    spool.seek(0)
    text = io.TextIOWrapper(spool, encoding="utf-8-sig", newline="")
    try:
        reader = csv.reader(text)
        header = next(reader, None)
        names = [name.strip() for name in header or ()]
        if "step" not in names:
            shown = ", ".join(names[:8]) or "empty"
            raise ResultsFileError(f"not a results CSV: no 'step' column (header: {shown})")
        step_at = names.index("step")
        for cells in reader:
            if not cells:
                continue
            line = reader.line_num
            if len(cells) != len(names):
                raise ResultsFileError(
                    f"not a results CSV: line {line} has {len(cells)} fields, the header"
                    f" {len(names)}"
                )
            step = _number(cells[step_at], line, "step")
            if step is None or not step.is_integer():
                raise ResultsFileError(
                    f"not a results CSV: line {line} has no whole 'step' ({cells[step_at]!r})"
                )
            row: Dict[str, Any] = {"file_id": file_id, "fine_tuning_job_id": job_id}
            for name, cell in zip(names, cells, strict=True):
                row[name] = _number(cell, line, name)
            row["step"] = int(step)
            yield row
    except UnicodeDecodeError:
        raise ResultsFileError("not UTF-8 text") from None
    except csv.Error as error:
        raise ResultsFileError(f"not a results CSV ({error})") from None
    finally:
        text.detach()


def iter_result_batches(
    api: FineTuningApi, file_id: str, job_id: str
) -> Optional[Iterator[List[Dict[str, Any]]]]:
    """The file's rows in batches, after every line was checked; None when the file is gone.

    Raises:
        ResultsFileError: naming what is wrong with the content, before any row is yielded.
    """
    spool = download_csv(api, file_id)
    if spool is None:
        return None
    try:
        for _ in iter_rows(spool, file_id, job_id):
            pass
    except BaseException:
        spool.close()
        raise
    return _batches(spool, file_id, job_id)


def _batches(spool: IO[bytes], file_id: str, job_id: str) -> Iterator[List[Dict[str, Any]]]:
    with spool:
        batch: List[Dict[str, Any]] = []
        for row in iter_rows(spool, file_id, job_id):
            batch.append(row)
            if len(batch) >= RESULT_BATCH_ROWS:
                yield batch
                batch = []
        if batch:
            yield batch
