"""Teacher-as-judge: the teacher scores each row 1-10 against a rubric; rows below ``threshold`` are rejected.

``JudgeScore`` annotates rows (it adds ``judge_score``; ids and text are unchanged) and rejects those scored
below the threshold ("judge score below T") or whose verdict cannot be read ("malformed JSON output ...").
The judged text is ``text``, or ``instruction``/``response`` (or ``question``/``answer``, ``prompt``/``chosen``)
when the row has them. With constrained decoding the verdict is JSON ``{"score": 1..10}``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from operators.base import check
from teachers.engines import Sampling
from teachers.task import Reject, TeacherOp, first_sample, parse_json

RUBRIC = ("Score from 1 to 10. 1-2: wrong, harmful, incoherent or empty. 3-4: mostly unhelpful or off-topic. "
          "5-6: partly correct or unclear. 7-8: correct, clear and useful. 9-10: excellent: correct, complete, "
          "well written.")
SCORE_SCHEMA = json.dumps({"type": "object", "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 10}},
                           "required": ["score"], "additionalProperties": False}, sort_keys=True)
PAIRS = (("instruction", "response"), ("question", "answer"), ("prompt", "chosen"))


@dataclass(frozen=True)
class JudgeScore(TeacherOp):
    threshold: int = 6
    rubric: str = RUBRIC
    sampling: Sampling = Sampling(max_tokens=16, temperature=0.0)
    constrained: bool = True

    task: ClassVar[str] = "judge"
    template_version: ClassVar[str] = "judge-1"
    columns: ClassVar[dict[str, pa.DataType]] = {"judge_score": pa.int32()}

    def __post_init__(self) -> None:
        super().__post_init__()
        check(isinstance(self.threshold, int) and 1 <= self.threshold <= 10, self, "threshold",
              f"must be an integer in 1..10, got {self.threshold!r}")

    def judged(self, row: dict[str, Any]) -> str:
        for left, right in PAIRS:
            if row.get(left) and row.get(right):
                return f"Instruction:\n{row[left]}\n\nResponse:\n{row[right]}"
        return f"Text:\n{row.get(self.text_column) or ''}"

    def run(self, rows: list[dict[str, Any]]) -> list[dict[str, Any] | Reject]:
        sampling = self.sampling.replace(json_schema=SCORE_SCHEMA) if self.constrained else self.sampling
        prompts = [self.render((("user", f"Rate the quality of the following.\n\n{self.judged(row)}\n\nRubric: "
                                         f"{self.rubric}\nReply with JSON: {{\"score\": N}}"),)) for row in rows]
        results: list[dict[str, Any] | Reject] = []
        for response, _ in self.ask(prompts, sampling):
            try:
                score = parse_json(first_sample(response), {"score": int})["score"]
                if not 1 <= score <= 10:
                    raise Reject("judge score outside 1-10", str(score))
                results.append(Reject(f"judge score below {self.threshold}", f"score {score}")
                               if score < self.threshold else {"judge_score": score})
            except Reject as reject:
                results.append(reject)
        return results

    def assemble(self, batch: pa.Table, rows: list[dict], results: list) -> pa.Table:
        scores = [r.get("judge_score") if isinstance(r, dict) else _score_of(r) for r in results]
        kept = [r if isinstance(r, Reject) else {"judge_score": s} for r, s in zip(results, scores)]
        out = super().assemble(batch, rows, kept)
        index = out.column_names.index("judge_score")
        return out.set_column(index, "judge_score", pa.array(scores, pa.int32()))


def _score_of(reject: Reject) -> int | None:
    """A row rejected for a low score keeps its score (the detail is 'score N')."""
    if reject.detail.startswith("score ") and reject.detail[6:].isdigit():
        return int(reject.detail[6:])
    return None
