"""Results bodies decode the same whatever the chunking: base64 (wrapped, quoted or not) and
plain CSV, told apart by their first bytes; their rows come as Arrow tables typed as the table
is, read by pyarrow exactly as the Python rule reads them, and a broken file yields nothing."""

from __future__ import annotations

import base64
import io
import random
from typing import List, Optional

import pyarrow as pa
import pytest

from sources.openai_fine_tuning import results
from sources.openai_fine_tuning.results import (
    ContentDecoder,
    ResultsFileError,
    RuleNeededError,
    arrow_batches,
    iter_result_batches,
    python_batches,
)

CSV = "".join(
    f"{step},{0.5 / step:.6f},{0.4 + step / 1e4:.6f},,\n" for step in range(1, 400)
).encode()
CSV = b"step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n" + CSV


def _decode(body: bytes, rng: random.Random) -> bytes:
    decoder = ContentDecoder()
    out, at = b"", 0
    while at < len(body):
        size = rng.randint(1, 300)
        out += decoder.feed(body[at : at + size])
        at += size
    return out + decoder.finish()


@pytest.mark.parametrize(
    "body",
    [
        base64.b64encode(CSV),
        base64.encodebytes(CSV),  # wrapped at 76 characters
        b'"' + base64.b64encode(CSV) + b'"',  # sent as one JSON string
        CSV,
        b"\r\n" + CSV.replace(b"\n", b"\r\n"),
    ],
    ids=["base64", "wrapped", "json-string", "plain", "plain-crlf"],
)
def test_any_chunking_gives_the_csv(body):
    rng = random.Random(len(body))
    for _ in range(20):
        decoded = _decode(body, rng)
        assert decoded.replace(b"\r\n", b"\n").strip() == CSV.strip()


def test_a_tiny_body_is_decided_at_the_end():
    assert _decode(base64.b64encode(b"step\n1\n"), random.Random(1)) == b"step\n1\n"
    assert _decode(b"step,a\n1,2\n", random.Random(1)) == b"step,a\n1,2\n"


def test_broken_base64_is_an_error_not_a_partial_result():
    with pytest.raises(ResultsFileError, match=r"^not valid base64 \("):
        _decode(base64.b64encode(CSV)[:-3] + b"*==", random.Random(2))


# ---- the CSV as Arrow tables --------------------------------------------------------------

FILE, JOB = "file-abc", "ftjob-xyz"
HEADER = "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"


class _Api:
    """What `iter_result_batches` asks of the API: the body of one file, in chunks."""

    def __init__(self, body: Optional[bytes], chunk: int = 1000) -> None:
        self.body, self.chunk = body, chunk

    def read_file_content(self, file_id, read_body):
        if self.body is None:
            return None  # 404
        body = self.body
        return read_body(
            iter([body[at : at + self.chunk] for at in range(0, len(body), self.chunk)])
        )


def _tables(body: bytes) -> List[pa.Table]:
    return list(iter_result_batches(_Api(body), FILE, JOB))


def _rows(tables: List[pa.Table]) -> List[dict]:
    return [row for table in tables for row in table.to_pylist()]


def _by_rule(body: bytes) -> List[pa.RecordBatch]:
    return list(python_batches(io.BytesIO(body)))


def _by_arrow(body: bytes) -> List[pa.RecordBatch]:
    return list(arrow_batches(io.BytesIO(body)))


def test_rows_and_types():
    body = (
        "\ufeff step , train_loss ,train_accuracy,valid_loss,valid_mean_token_accuracy,tokens\r\n"
        "1,0.5,0.25,,,100\r\n"
        '2,"0.125",0.5,1e-3,0.75,200\r\n'
        "\r\n"  # blank lines are skipped
        "3.0,-0,1,,,\r\n"
    )
    (table,) = _tables(base64.b64encode(body.encode()))
    assert table.schema == pa.schema(
        [
            pa.field("file_id", pa.string(), nullable=False),
            pa.field("step", pa.int64(), nullable=False),
            pa.field("fine_tuning_job_id", pa.string(), nullable=False),
            *(pa.field(name, pa.float64()) for name in HEADER.split(",")[1:]),
            pa.field("tokens", pa.float64()),  # integers only: still DOUBLE
        ]
    )
    ids = {"file_id": FILE, "fine_tuning_job_id": JOB}
    assert table.to_pylist() == [
        {**ids, "step": 1, "train_loss": 0.5, "train_accuracy": 0.25, "valid_loss": None,
         "valid_mean_token_accuracy": None, "tokens": 100.0},
        {**ids, "step": 2, "train_loss": 0.125, "train_accuracy": 0.5, "valid_loss": 0.001,
         "valid_mean_token_accuracy": 0.75, "tokens": 200.0},
        {**ids, "step": 3, "train_loss": -0.0, "train_accuracy": 1.0, "valid_loss": None,
         "valid_mean_token_accuracy": None, "tokens": None},
    ]  # fmt: skip
    assert _by_arrow(body.encode())  # the fast reader read it (no fall back to the rule)


def test_nan_and_infinities_are_null_and_empty_new_columns_are_left_out():
    """As when rows went to dlt as dicts: its JSON wrote NaN and infinities as null, and a
    None made no column. Declared columns stay, empty or not."""
    body = f"{HEADER},never,sometimes\n1,nan,inf,-inf,,,\n2,NaN,-Infinity,1,,,3\n".encode()
    (table,) = _tables(body)
    names = ["file_id", "step", "fine_tuning_job_id", *HEADER.split(",")[1:], "sometimes"]
    assert table.column_names == names
    assert [row["train_loss"] for row in table.to_pylist()] == [None, None]
    assert [row["train_accuracy"] for row in table.to_pylist()] == [None, None]
    assert [row["valid_loss"] for row in table.to_pylist()] == [None, 1.0]
    assert [row["sometimes"] for row in table.to_pylist()] == [None, 3.0]


def test_a_header_only_file_has_no_rows():
    assert _tables(f"{HEADER}\n".encode()) == []
    assert _tables(b"step,train_loss") == []


def test_a_file_gone_is_none():
    assert iter_result_batches(_Api(None), FILE, JOB) is None


BIG = f"{HEADER},x\n" + "".join(f"{s},{1 / s!r},0.5,,,{s % 7}\n" for s in range(1, 2501))


@pytest.mark.parametrize(
    "body",
    [BIG, BIG.replace("\n2500,", "\n2500, ", 1)],  # a cell of spaces: only the rule reads it
    ids=["arrow", "rule"],
)
def test_more_rows_than_a_batch_come_in_bounded_tables(monkeypatch, body):
    monkeypatch.setattr(results, "RESULT_BATCH_ROWS", 1000)
    tables = _tables(body.encode())
    assert [t.num_rows for t in tables] == [1000, 1000, 500]
    expected = []
    for step in range(1, 2501):
        cells = {"train_loss": 1 / step, "train_accuracy": 0.5, "x": float(step % 7)}
        expected.append({"file_id": FILE, "step": step, "fine_tuning_job_id": JOB, **cells})
    got = [{k: v for k, v in row.items() if v is not None} for row in _rows(tables)]
    assert got == expected
    assert all(t.schema.field("x").type == pa.float64() for t in tables)


def test_repeated_names_keep_the_last_cell_and_empty_names_are_empty():
    body = b"step, a ,a,\n1,1,2,\n2,3,,5\n"
    rows = _rows(_tables(body))
    assert [(r["a"], r["_empty"]) for r in rows] == [(2.0, None), (None, 5.0)]
    assert [r.to_pylist() for r in _by_arrow(body)] == [r.to_pylist() for r in _by_rule(body)]


BROKEN = [
    (b"step,\xff\xfe\n1,2\n", "not UTF-8 text"),
    (b"step,train_loss\n1,0.5\n2,\xff\n", "not UTF-8 text"),
    (b"hello,world\n1,2\n", "not a results CSV: no 'step' column (header: hello, world)"),
    (b"", "not a results CSV: no 'step' column (header: empty)"),
    (b"\nstep,a\n1,2\n", "not a results CSV: no 'step' column (header: empty)"),
    (b"step,train_loss\n1,0.5,9\n", "not a results CSV: line 2 has 3 fields, the header 2"),
    (b"step,train_loss\n1\n", "not a results CSV: line 2 has 1 fields, the header 2"),
    (
        b"step,train_loss\n1,0.5\n2,abc\n",
        "not a results CSV: line 3, column 'train_loss' is not a number ('abc')",
    ),
    (b"step,a\n1,NA\n", "not a results CSV: line 2, column 'a' is not a number ('NA')"),
    (b"step,train_loss\n1.5,0.5\n", "not a results CSV: line 2 has no whole 'step' ('1.5')"),
    (b"step,train_loss\n,0.5\n", "not a results CSV: line 2 has no whole 'step' ('')"),
    (b"step,train_loss\nnan,0.5\n", "not a results CSV: line 2 has no whole 'step' ('nan')"),
    (b'step,a\n"1,2\n', "not a results CSV: line 2 has 1 fields, the header 2"),
    (b"step,a\n1,2\x00\n", "not a results CSV: line 2, column 'a' is not a number ('2\\x00')"),
    (
        b"step,a\n1,0." + b"0" * 131_072 + b"1\n",  # pyarrow has no limit: the rule has
        "not a results CSV (field larger than field limit (131072))",
    ),
    (b"step,a\n1e19,2\n", "not a results CSV: line 2, 'step' is out of range ('1e19')"),
    (b"step,file_id\n1,2\n", "not a results CSV: a column 'file_id' (the table's own 'file_id')"),
    (b"step,Step\n1,2\n", "not a results CSV: a column 'Step' (the table's own 'step')"),
    (
        b"step,Train Loss,train_loss\n1,2,3\n",
        "not a results CSV: columns 'Train Loss' and 'train_loss' would be one column"
        " ('train_loss')",
    ),
]


@pytest.mark.parametrize(("body", "message"), BROKEN, ids=[m for _, m in BROKEN])
def test_a_broken_file_loads_nothing_and_says_why(body, message):
    with pytest.raises(ResultsFileError) as raised:
        iter_result_batches(_Api(body), FILE, JOB)  # raised before any table: nothing loads
    assert str(raised.value) == message
    with pytest.raises(RuleNeededError):  # the fast reader leaves the saying to the rule
        _by_arrow(body)


def test_a_file_broken_past_its_first_batch_loads_nothing(monkeypatch):
    monkeypatch.setattr(results, "RESULT_BATCH_ROWS", 100)
    body = BIG + "2501,0.5,oops,,,\n"
    with pytest.raises(ResultsFileError, match=r"^not a results CSV: line 2502, column 'train_ac"):
        iter_result_batches(_Api(body.encode()), FILE, JOB)


_CELLS = [
    "", " ", "1", "-0", "1.5", " 2 ", "nan", "-nan", "inf", "-Infinity", "1e5", "1E-3", ".5",
    "5.", "+1", "1_000", "0x10", "abc", '"3"', '""', '"1"2', '1"2', "\t4", "1e", "\u0661",
    "\u00a01", "2.000", "9007199254740993", "1e400", "4.9e-324", "2.5e-324", '"a,b"', '" 7 "',
    '"8\n"', "NA", "null", "\x00", "1 2", "--1", "1.2.3", "\ufeff1", "true", "00.5", "1d5",
    "infinity", '"""1"""',
]  # fmt: skip
_STEPS = [
    "1", "2", "3.0", " 4", "1e1", "1.5", "", "nan", "inf", "-3", "9223372036854775807",
    "-9223372036854775808", '"6"', "7.0000000001", "1_0",
]  # fmt: skip
_HEADERS = [["step", "a"], [" step ", "a", "a"], ["a", "step"], ["step"], ["step", "", "A B"]]


def _odd_csv(rng: random.Random) -> bytes:
    header = rng.choice(_HEADERS)
    lines = [",".join(header)]
    for _ in range(rng.randint(0, 5)):
        cells = [rng.choice(_STEPS if h.strip() == "step" else _CELLS) for h in header]
        if rng.random() < 0.05:
            cells = cells[:-1] if rng.random() < 0.5 else cells + ["1"]
        lines.append("" if rng.random() < 0.05 else ",".join(cells))
    end = rng.choice(["\n", "\r\n", "\r"])
    body = (end.join(lines) + end * (rng.random() < 0.8)).encode()
    return b"\xef\xbb\xbf" + body if rng.random() < 0.1 else body


def _outcome(read, body: bytes):
    try:
        return [(b.schema, results._finite(b).to_pylist()) for b in read(body)]
    except (ResultsFileError, RuleNeededError) as error:
        return type(error)


def test_the_fast_reader_reads_as_the_rule_or_leaves_it_to_the_rule():
    """On odd cells, lines and headers: whatever pyarrow reads is what the rule reads (same
    columns, same values, -0.0 and NaN told apart by repr); what it refuses, the rule reads
    or names. Both outcomes occur."""
    rng, read = random.Random(7), 0
    for _ in range(3000):
        body = _odd_csv(rng)
        fast = _outcome(_by_arrow, body)
        if fast is RuleNeededError:
            continue
        read += 1
        assert repr(fast) == repr(_outcome(_by_rule, body)), body
    assert 300 < read < 2700


def test_numbers_round_as_python_floats():
    rng = random.Random(3)
    cells = [repr(rng.uniform(-1e6, 1e6)) for _ in range(2000)]
    cells += [
        f"{rng.random():.{rng.randint(1, 25)}f}e{rng.randint(-320, 308)}" for _ in range(2000)
    ]
    cells += ["".join(rng.choice("0123456789") for _ in range(30)) + "." + "9" * 20]
    body = ("step,a\n" + "".join(f"{n},{c}\n" for n, c in enumerate(cells, 1))).encode()
    (batch,) = _by_arrow(body)
    assert [repr(v) for v in batch.column(1).to_pylist()] == [repr(float(c)) for c in cells]
