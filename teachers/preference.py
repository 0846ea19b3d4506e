"""Preference pairs: two samples of the teacher's answer to a prompt, judged by the teacher into chosen/rejected.

For each prompt row: two samples (``n=2``, one seed: vLLM gives the samples seeds ``seed`` and ``seed + 1``,
at ``temperature`` > 0 so they can differ), then one judging request showing both answers as A and B
(JSON ``{"better": "A" | "B"}``). With ``swap_check`` the teacher judges again with A and B swapped and a
pair it judges inconsistently is rejected. Rejects: identical samples, an unparseable verdict, inconsistency,
and every engine failure (with its reason).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from operators.base import check
from teachers.engines import Sampling
from teachers.task import GenerationTask, Reject, first_sample, parse_json, plain_text

VERDICT_SCHEMA = json.dumps({"type": "object", "properties": {"better": {"type": "string", "enum": ["A", "B"]}},
                             "required": ["better"], "additionalProperties": False}, sort_keys=True)


@dataclass(frozen=True)
class PreferencePairs(GenerationTask):
    sampling: Sampling = Sampling(temperature=0.8, top_p=0.95, max_tokens=256)
    judge_max_tokens: int = 16
    swap_check: bool = False
    allow_truncated: bool = False
    constrained: bool = True

    task: ClassVar[str] = "preference_pairs"
    template_version: ClassVar[str] = "preference-1"
    columns: ClassVar[dict[str, pa.DataType]] = {"prompt": pa.string(), "chosen": pa.string(),
                                                 "rejected": pa.string(), "verdict": pa.string()}

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.sampling.temperature > 0, self, "sampling", "temperature must be > 0 for two different samples")

    def judge_prompt(self, prompt: str, a: str, b: str):
        return self.render((("user", f"Which response answers the instruction better: more helpful, correct and "
                                     f"clear?\n\nInstruction:\n{prompt}\n\nResponse A:\n{a}\n\nResponse B:\n{b}\n\n"
                                     'Reply with JSON: {"better": "A"} or {"better": "B"}'),))

    def run(self, rows: list[dict[str, Any]]) -> list[dict[str, Any] | Reject]:
        sampled = self.ask([self.render((("user", row["text"] or ""),)) for row in rows],
                           self.sampling.replace(n=2), part=":samples")
        results: list[dict[str, Any] | Reject] = []
        for row, (response, stamp) in zip(rows, sampled):
            try:
                first_sample(response)
                if len(response.samples) < 2:
                    raise Reject("engine error", f"{len(response.samples)} samples for 2 requested")
                a, b = (plain_text(s, self.allow_truncated) for s in response.samples[:2])
                if a == b:
                    raise Reject("the two samples are identical", a[:200])
                results.append({"prompt": row["text"], "a": a, "b": b, "generated_at": stamp})
            except Reject as reject:
                results.append(reject)
        todo = [i for i, r in enumerate(results) if not isinstance(r, Reject)]
        judging = self.sampling.replace(n=1, temperature=0.0, top_p=1.0, max_tokens=self.judge_max_tokens,
                                        json_schema=VERDICT_SCHEMA if self.constrained else None)
        orders = [("a", "b")] + ([("b", "a")] if self.swap_check else [])
        verdicts: dict[int, list[str | Reject]] = {i: [] for i in todo}
        for first, second in orders:
            prompts = [self.judge_prompt(results[i]["prompt"], results[i][first], results[i][second]) for i in todo]
            for i, (response, _) in zip(todo, self.ask(prompts, judging, part=f":judge-{first}{second}")):
                try:
                    better = parse_json(first_sample(response), {"better": str})["better"].strip().upper()
                    if better not in ("A", "B"):
                        raise Reject("judge verdict is neither A nor B", better[:50])
                    verdicts[i].append(first if better == "A" else second)
                except Reject as reject:
                    verdicts[i].append(reject)
        for i in todo:
            found = verdicts[i]
            failed = next((v for v in found if isinstance(v, Reject)), None)
            if failed is not None:
                results[i] = failed
            elif len(set(found)) > 1:
                results[i] = Reject("judge inconsistent when the order is swapped", ", ".join(found))
            else:
                winner = found[0]
                loser = "b" if winner == "a" else "a"
                r = results[i]
                results[i] = {"text": r["prompt"], "prompt": r["prompt"], "chosen": r[winner], "rejected": r[loser],
                              "verdict": "A" if winner == "a" else "B", "generated_at": r["generated_at"]}
        return results
