"""Results bodies decode the same whatever the chunking: base64 (wrapped, quoted or not) and
plain CSV, told apart by their first bytes."""

from __future__ import annotations

import base64
import random

import pytest

from sources.openai_fine_tuning.results import ContentDecoder, ResultsFileError

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
