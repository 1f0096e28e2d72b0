"""The files jobs name: training and validation data, results CSVs, some expired or deleted.

Contents are built on first use and then kept: generating a large world builds no file, and the
`bytes` of a record is the length of what `/content` serves.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Set

from fake_openai.training import noise

TOPICS = ("support", "search", "billing", "triage", "summaries", "sql")


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


def jsonl_builder(key: int, examples: int, method: str) -> Callable[[], bytes]:
    """Training data in the method's format, `examples` lines, deterministic per key."""

    def build() -> bytes:
        lines = []
        for n in range(examples):
            topic = TOPICS[int(noise(key, n, 40) * len(TOPICS))]
            user = {"role": "user", "content": f"Question {n} about {topic}?"}
            answer = {"role": "assistant", "content": f"Answer {n}: see the {topic} guide."}
            if method == "dpo":
                example: Dict[str, Any] = {
                    "input": {"messages": [user]},
                    "preferred_output": [answer],
                    "non_preferred_output": [{"role": "assistant", "content": "No idea."}],
                }
            elif method == "reinforcement":
                example = {"messages": [user], "correct_answer": f"Answer {n}"}
            else:
                example = {"messages": [user, answer]}
            lines.append(json.dumps(example))
        return ("\n".join(lines) + "\n").encode()

    return build
