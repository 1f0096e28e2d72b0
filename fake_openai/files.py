"""The files jobs name: training and validation data, results CSVs, some expired or deleted.

Contents are built on first use and then kept: generating a large world builds no file, and the
`bytes` of a record is the length of what `/content` serves. Training data comes in each
method's JSONL shape, and some files carry what real uploads carry (see `QUIRKS`).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Set

from fake_openai.training import noise

TOPICS = ("support", "search", "billing", "triage", "summaries", "sql")
# what uploads carry that a reader must cope with; the world puts each on one file
QUIRKS = (
    "crlf",  # lines end with \r\n (written on Windows)
    "no_final_newline",  # the last line has no line ending
    "u2028_emoji",  # raw U+2028 and an emoji inside JSON strings (not \u-escaped)
    "bom",  # starts with a UTF-8 byte-order mark
    "invalid_lines",  # one line that is not JSON and one blank line (a job that failed on it)
)
BOM = b"\xef\xbb\xbf"
LINE_SEPARATOR = "\u2028"  # a line break for `str.splitlines()`, not for JSONL
EMOJI = "\U0001f680"
NOT_JSON = '{"messages": [{"role": "user", "content": "Where is my ord'  # cut off mid-string
# the distinct lines of a big file, repeated up to its size: a file of many MB builds fast
BIG_FILE_DISTINCT_LINES = 512


class UnknownFileError(KeyError):
    """Raised for a file id that does not exist (never did, or was deleted): the API's 404."""


@dataclass
class StoredFile:
    record: Dict[str, Any]
    build: Callable[[], bytes]
    base64: bool = False  # serve the base64 encoding of what `build` returns
    content: Optional[bytes] = None


class FileStore:
    """File records by id, their (lazy) contents, and which ones were deleted."""

    def __init__(self) -> None:
        self._files: Dict[str, StoredFile] = {}
        self._deleted: Set[str] = set()

    def add(self, record: Dict[str, Any], build: Callable[[], bytes], base64: bool = False) -> None:
        self._files[record["id"]] = StoredFile(record, build, base64)

    def exists(self, file_id: str) -> bool:
        return file_id in self._files and file_id not in self._deleted

    def _stored(self, file_id: str) -> StoredFile:
        if not self.exists(file_id):
            raise UnknownFileError(file_id)
        return self._files[file_id]

    def _materialize(self, stored: StoredFile) -> bytes:
        if stored.content is None:
            raw = stored.build()
            stored.content = base64.b64encode(raw) if stored.base64 else raw
            if stored.record.get("bytes") is None:
                stored.record["bytes"] = len(stored.content)
        return stored.content

    def record(self, file_id: str) -> Dict[str, Any]:
        stored = self._stored(file_id)
        self._materialize(stored)
        return dict(stored.record)

    def content(self, file_id: str) -> bytes:
        return self._materialize(self._stored(file_id))

    def set_builder(self, file_id: str, build: Callable[[], bytes]) -> None:
        """Before the content is first built: what builds it (content never changes once
        served, so a built file keeps its bytes)."""
        stored = self._files[file_id]
        if stored.content is not None:
            raise ValueError(f"{file_id} was already built")
        stored.build = build

    def set_base64(self, file_id: str, encoded: bool) -> None:
        """Before the content is first built: whether it is served base64-encoded."""
        self._files[file_id].base64 = encoded

    def set_content(self, file_id: str, content: bytes) -> None:
        stored = self._stored(file_id)
        stored.content = content
        stored.record["bytes"] = len(content)

    def patch(self, file_id: str, fields: Dict[str, Any]) -> None:
        stored = self._stored(file_id)
        self._materialize(stored)  # so an explicit `bytes` is not overwritten later
        stored.record.update(fields)

    def delete(self, file_id: str) -> None:
        self._stored(file_id)
        self._deleted.add(file_id)


def data_file_record(
    file_id: str, created_at: int, kind: str, number: int, expires: bool
) -> Dict[str, Any]:
    """A training (`kind` "train") or validation ("valid") upload; `bytes` comes with the
    content."""
    record: Dict[str, Any] = {
        "object": "file",
        "id": file_id,
        "bytes": None,  # the content's length, once built
        "created_at": created_at,
        "filename": f"{kind}_{TOPICS[number % len(TOPICS)]}_{number}.jsonl",
        "purpose": "fine-tune",
        "status": "processed",
    }
    if expires:
        record["expires_at"] = created_at + 30 * 86_400
    return record


def results_file_record(file_id: str, created_at: int) -> Dict[str, Any]:
    return {
        "object": "file",
        "id": file_id,
        "bytes": None,
        "created_at": created_at,
        "filename": "step_metrics.csv",
        "purpose": "fine-tune-results",
        "status": "processed",
    }


def _tool(topic: str) -> Dict[str, Any]:
    # short: a large world serves the length of every file, so each is built once
    return {
        "type": "function",
        "function": {
            "name": f"lookup_{topic}",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }


_TOOLS = {topic: [_tool(topic)] for topic in TOPICS}  # shared: examples are encoded, not kept


class _Bits:
    """Choices of one example from a single noise draw: each takes the next few bits."""

    __slots__ = ("value",)

    def __init__(self, key: int, n: int) -> None:
        self.value = int(noise(key, n, 40) * 2**53)  # 53 random bits

    def below(self, share: float) -> bool:
        """True with probability `share` (to 1/128)."""
        self.value, low = divmod(self.value, 128)
        return low < share * 128

    def pick(self, options: Sequence[Any]) -> Any:
        self.value, index = divmod(self.value, len(options))
        return options[index]


def _example(key: int, n: int, method: str, quirk: Optional[str]) -> Dict[str, Any]:
    """Example `n` of a file: a pure function of (key, n), in the method's shape (built for
    speed: a large world's file records are served with their content's length)."""
    bits = _Bits(key, n)
    topic = bits.pick(TOPICS)
    question = f"Question {n} about {topic}?"
    if quirk == "u2028_emoji" and n % 5 == 0:
        question = f"Question {n} about {topic}:{LINE_SEPARATOR}second line {EMOJI}"
    answer = f"Answer {n}: see the {topic} guide."
    messages: List[Dict[str, Any]] = []
    if bits.below(0.7):
        role = "developer" if bits.below(0.3) else "system"
        messages.append({"role": role, "content": f"You answer {topic} questions briefly."})
    messages.append({"role": "user", "content": question})
    with_tools = bits.below(0.2)
    call: Dict[str, Any] = {}
    if with_tools:
        call_id = f"call_{n:04d}{bits.value % 16**8:08x}"
        function = {"name": f"lookup_{topic}", "arguments": f'{{"query": "{topic} {n}"}}'}
        call = {
            "role": "assistant",
            "tool_calls": [{"id": call_id, "type": "function", "function": function}],
        }
    if method == "dpo":
        given: Dict[str, Any] = {"messages": messages}
        if with_tools:
            given["tools"] = _TOOLS[topic]
        preferred = call if with_tools else {"role": "assistant", "content": answer}
        return {
            "input": given,
            "preferred_output": [preferred],
            "non_preferred_output": [{"role": "assistant", "content": "No idea."}],
        }
    if method == "reinforcement":
        example: Dict[str, Any] = {"messages": messages}
        if with_tools:
            example["tools"] = _TOOLS[topic]
        # reference fields, read by graders as {{item.correct_answer}}, {{item.difficulty}}
        example["correct_answer"] = f"Answer {n}"
        example["difficulty"] = bits.pick(("easy", "medium", "hard"))
        return example
    if with_tools:
        messages.append(call)
        result = f'{{"results": ["{topic} guide, section {n % 7 + 1}"]}}'
        messages.append({"role": "tool", "tool_call_id": call_id, "content": result})
        messages.append({"role": "assistant", "content": answer})
        example = {"messages": messages, "tools": _TOOLS[topic]}
        if bits.below(0.5):
            example["parallel_tool_calls"] = bits.below(0.5)
        return example
    if bits.below(0.35):  # two turns: the draft answer is not trained on
        draft = {"role": "assistant", "content": f"Draft {n}: it depends.", "weight": 0}
        messages += [draft, {"role": "user", "content": "Be precise, please."}]
        messages.append({"role": "assistant", "content": answer, "weight": 1})
    else:
        messages.append({"role": "assistant", "content": answer})
    return {"messages": messages}


# compact, and non-ASCII kept raw (as most tools write JSONL)
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _line(example: Dict[str, Any]) -> bytes:
    return _encode(example).encode()


def jsonl_builder(
    key: int,
    examples: int,
    method: str,
    quirk: Optional[str] = None,
    target_bytes: Optional[int] = None,
) -> Callable[[], bytes]:
    """Training data in the method's format, `examples` lines, deterministic per key.

    Args:
        key: Noise key of the examples.
        examples: Number of examples (lines).
        method: `supervised` (chat), `dpo` or `reinforcement`.
        quirk: One of `QUIRKS`, or None for a plain file (`\n` after every line).
        target_bytes: Instead of `examples` lines, about this many bytes (at least, less than
            one line more): `BIG_FILE_DISTINCT_LINES` distinct lines, repeated.
    """
    if quirk is not None and quirk not in QUIRKS:
        raise ValueError(f"unknown quirk {quirk!r}; known: {QUIRKS}")

    def build() -> bytes:
        count = examples if target_bytes is None else BIG_FILE_DISTINCT_LINES
        lines = [_line(_example(key, n, method, quirk)) for n in range(count)]
        if quirk == "invalid_lines":  # after a third a cut-off line, after two thirds a blank
            lines.insert(2 * len(lines) // 3, b"")
            lines.insert(len(lines) // 3, NOT_JSON.encode())
        ending = b"\r\n" if quirk == "crlf" else b"\n"
        if target_bytes is not None:
            block = b"".join(line + ending for line in lines)
            times, rest = divmod(target_bytes, len(block))
            tail = bytearray()
            for line in lines:
                if len(tail) >= rest:
                    break
                tail += line + ending
            body = block * times + bytes(tail)
        else:
            body = ending.join(lines) + ending
        if quirk == "no_final_newline":
            body = body[: -len(ending)]
        return BOM + body if quirk == "bom" else body

    return build
