"""Instruction tasks: self-instruct (Wang et al. 2023) and Evol-Instruct (WizardLM, Xu et al. 2023).

* ``SelfInstruct`` — each seed task row, with ``examples - 1`` other tasks of its batch as in-context examples,
  prompts the teacher for new instructions (JSON ``{"instruction"}``, one per sample: ``sampling.n``). The paper's filters: 3 to 150
  words, no keywords a text model cannot act on (image, graph, file, draw, ...), not starting with
  punctuation, and novelty: ROUGE-L < ``novelty`` (0.7) against every task of the batch and every
  instruction kept before it. (Across batches and against the whole seed set: add ``RougeNovelty`` with
  ``reference_path`` and a ``MinHashDedup`` stage.)
* ``EvolInstruct`` — rewrites each instruction by one evolution chosen by a hash of its id: in-depth
  (constraints, deepen, concretize, reasoning) or in-breadth (a new, rarer instruction of the same domain),
  with the paper's prompts. Failed evolutions are eliminated as in the paper: no information gain (same as
  the original, or ROUGE-L >= ``max_similarity``), copied words of the evolving prompt, too short, and, with
  ``respond=True``, a response that refuses ("sorry" in under 80 words) or holds only punctuation/stop words.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from operators.base import check
from teachers.diversity import rouge_l_tokens, tokens
from teachers.documents import STOPWORDS
from teachers.task import GenerationTask, Reject, each_sample, first_sample, object_schema, parse_json, pick, plain_text

BANNED = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps", "draw",
          "plot", "go to", "video", "audio", "music", "flowchart", "diagram")


@dataclass(frozen=True)
class SelfInstruct(GenerationTask):
    examples: int = 4
    novelty: float = 0.7
    min_words: int = 3
    max_words: int = 150
    constrained: bool = True

    task: ClassVar[str] = "self_instruct"
    template_version: ClassVar[str] = "self-instruct-1"
    columns: ClassVar[dict[str, pa.DataType]] = {"instruction": pa.string()}

    def __post_init__(self) -> None:
        super().__post_init__()
        check(isinstance(self.examples, int) and self.examples >= 1, self, "examples", "must be an integer >= 1")
        check(0 < self.novelty <= 1, self, "novelty", f"must be in (0, 1], got {self.novelty!r}")

    def context(self, rows: list[dict[str, Any]], index: int) -> list[str]:
        others = [r for j, r in enumerate(rows) if j != index]
        chosen = [rows[index]["text"]]
        key = str(rows[index]["id"])
        while others and len(chosen) < self.examples:
            chosen.append(others.pop(pick(f"{key}:{len(chosen)}", self.sampling.seed, len(others)))["text"])
        return chosen

    def messages(self, examples: list[str]):
        listed = "\n".join(f"Task {i + 1}: {t}" for i, t in enumerate(examples))
        return (("user", f"Come up with a new task instruction. Here are some example tasks:\n{listed}\n\nWrite one "
                         "new task instruction that is different from all of them and that a text-only assistant "
                         'can do. Reply with JSON: {"instruction": "..."}'),)

    def run(self, rows: list[dict[str, Any]]) -> list[list[dict[str, Any] | Reject]]:
        sampling = self.sampling.replace(json_schema=object_schema({"instruction": {}}, 400)) if self.constrained \
            else self.sampling
        prompts = [self.render(self.messages(self.context(rows, i))) for i in range(len(rows))]
        existing = [(r["text"] or "") for r in rows]
        existing_tokens = [tokens(t) for t in existing]
        results: list[list[dict[str, Any] | Reject]] = []
        for response, stamp in self.ask(prompts, sampling):
            results.append(each_sample(response, stamp, lambda sample: self.novel(sample, existing, existing_tokens)))
        return results

    def novel(self, sample, existing: list[str], existing_tokens: list[list[str]]) -> dict[str, Any]:
        """The sample's instruction if it passes the paper's filters; it then joins ``existing``."""
        instruction = parse_json(sample, {"instruction": str})["instruction"]
        self.check_instruction(instruction, existing, existing_tokens)
        existing.append(instruction)
        existing_tokens.append(tokens(instruction))
        return {"text": instruction, "instruction": instruction}

    def check_instruction(self, instruction: str, existing: list[str], existing_tokens: list[list[str]]) -> None:
        words = len(instruction.split())
        if words < self.min_words or words > self.max_words:
            raise Reject(f"instruction length outside {self.min_words}-{self.max_words} words", f"{words} words")
        lowered = instruction.lower()
        banned = [w for w in BANNED if re.search(rf"\b{re.escape(w)}\b", lowered)]
        if banned:
            raise Reject("instruction needs more than text (banned keyword)", f"{banned[0]!r} in: {instruction[:200]}")
        if not instruction[0].isalnum():
            raise Reject("instruction starts with punctuation", instruction[:200])
        mine = tokens(instruction)
        best, where = 0.0, -1
        for i, other in enumerate(existing_tokens):
            score = rouge_l_tokens(mine, other)
            if score > best:
                best, where = score, i
        if best >= self.novelty:
            raise Reject(f"too similar to an existing instruction (ROUGE-L >= {self.novelty:g})",
                         f"ROUGE-L {best:.2f} with: {existing[where][:200]}")


_DEPTH = ("I want you to act as a Prompt Rewriter. Your objective is to rewrite a given prompt into a more complex "
          "version to make famous AI systems (e.g., ChatGPT and GPT-4) a bit harder to handle. But the rewritten "
          "prompt must be reasonable and must be understood and responded to by humans. You SHOULD complicate the "
          "given prompt using the following method:\n{method}\nThe #Rewritten Prompt# can only add 10 to 20 words "
          "into #The Given Prompt#. '#The Given Prompt#', '#Rewritten Prompt#', 'given prompt' and 'rewritten "
          "prompt' are not allowed to appear in #Rewritten Prompt#.\n#The Given Prompt#:\n{instruction}\n"
          "#Rewritten Prompt#:")
_BREADTH = ("I want you to act as a Prompt Creator. Your goal is to draw inspiration from the #Given Prompt# to "
            "create a brand new prompt. This new prompt should belong to the same domain as the #Given Prompt# but "
            "be even more rare. The LENGTH and complexity of the #Created Prompt# should be similar to that of the "
            "#Given Prompt#. The #Created Prompt# must be reasonable and must be understood and responded to by "
            "humans. '#Given Prompt#', '#Created Prompt#', 'given prompt' and 'created prompt' are not allowed to "
            "appear in #Created Prompt#.\n#Given Prompt#:\n{instruction}\n#Created Prompt#:")
EVOLUTIONS = {
    "constraints": "Please add one more constraint or requirement into #The Given Prompt#.",
    "deepen": "If #The Given Prompt# contains inquiries about certain issues, the depth and breadth of the inquiry "
              "can be increased.",
    "concretize": "Please replace general concepts with more specific concepts.",
    "reasoning": "If #The Given Prompt# can be solved with just a few simple thinking processes, you can rewrite it "
                 "to explicitly request multiple-step reasoning.",
    "breadth": None,  # in-breadth evolution
}
_COPIED = re.compile(r"#?\s*(the )?(given|rewritten|created) prompt\s*#?", re.I)
_LABEL = re.compile(r"^\s*#?\s*(rewritten|created) prompt\s*#?\s*:\s*", re.I)


@dataclass(frozen=True)
class EvolInstruct(GenerationTask):
    evolutions: tuple[str, ...] = tuple(EVOLUTIONS)
    max_similarity: float = 0.9
    min_words: int = 3
    respond: bool = False          # also answer the evolved instruction (and apply the response rules)
    response_max_tokens: int = 256
    allow_truncated: bool = False
    instruction_column: str = "text"  # where the instruction to evolve is (e.g. "question" of grounded QA rows)

    task: ClassVar[str] = "evol_instruct"
    template_version: ClassVar[str] = "evol-1"
    columns: ClassVar[dict[str, pa.DataType]] = {"instruction": pa.string(), "evolution": pa.string(),
                                                 "parent_instruction": pa.string(), "response": pa.string()}

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "evolutions", tuple(self.evolutions))
        check(bool(self.evolutions) and all(e in EVOLUTIONS for e in self.evolutions), self, "evolutions",
              f"must be a non-empty subset of {list(EVOLUTIONS)}, got {self.evolutions!r}")

    def evolution_of(self, row: dict[str, Any]) -> str:
        return self.evolutions[pick(str(row["id"]), self.sampling.seed, len(self.evolutions))]

    def prompt(self, evolution: str, instruction: str) -> str:
        method = EVOLUTIONS[evolution]
        text = _BREADTH.format(instruction=instruction) if method is None else \
            _DEPTH.format(method=method, instruction=instruction)
        return self.render((("user", text),))

    def run(self, rows: list[dict[str, Any]]) -> list[dict[str, Any] | Reject]:
        check(self.instruction_column in rows[0], self, "instruction_column",
              f"the input has no column {self.instruction_column!r} (columns: {', '.join(rows[0])})")
        evolutions = [self.evolution_of(row) for row in rows]
        originals = [row.get(self.instruction_column) or "" for row in rows]
        asked = self.ask([self.prompt(e, original) for original, e in zip(originals, evolutions)])
        results: list[dict[str, Any] | Reject] = []
        for original, evolution, (response, stamp) in zip(originals, evolutions, asked):
            try:
                evolved = _LABEL.sub("", plain_text(first_sample(response), self.allow_truncated)).strip()
                self.check_evolution(original, evolved)
                results.append({"text": evolved, "instruction": evolved, "evolution": evolution,
                                "parent_instruction": original, "generated_at": stamp})
            except Reject as reject:
                results.append(reject)
        if self.respond:
            self.add_responses(results)
        return results

    def check_evolution(self, original: str, evolved: str) -> None:
        if _COPIED.search(evolved):
            raise Reject("evolution copied words from the evolving prompt", evolved[:200])
        if len(evolved.split()) < self.min_words:
            raise Reject("evolved instruction too short", evolved[:200])
        similarity = rouge_l_tokens(tokens(original), tokens(evolved))
        if tokens(original) == tokens(evolved) or similarity >= self.max_similarity:
            raise Reject("no information gain over the original instruction", f"ROUGE-L {similarity:.2f}: {evolved[:200]}")

    def add_responses(self, results: list) -> None:
        todo = [i for i, r in enumerate(results) if not isinstance(r, Reject)]
        sampling = self.sampling.replace(max_tokens=self.response_max_tokens)
        prompts = [self.render((("user", results[i]["instruction"]),)) for i in todo]
        for i, (response, _) in zip(todo, self.ask(prompts, sampling, part=":response")):
            try:
                answer = plain_text(first_sample(response), self.allow_truncated)
                words = tokens(answer)
                if "sorry" in words and len(answer.split()) < 80:
                    raise Reject("evolved instruction is hard to answer (the teacher refused)", answer[:200])
                if all(w in STOPWORDS for w in words):
                    raise Reject("response holds only punctuation and stop words", answer[:200])
                results[i]["response"] = answer
            except Reject as reject:
                results[i] = reject
