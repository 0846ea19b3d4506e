"""Tasks over documents: grounded question answering and rephrasing into styles.

* ``GroundedQA`` — question/answer pairs (one per sample: ``sampling.n`` per document), answered from the document only (JSON output
                   ``{"question", "answer"}``); the answer's content words must mostly occur in the document
                   (``min_grounding``), else the row is rejected as ungrounded. ``source_ids`` keeps the document id.
* ``Rephrase``   — rewrites a document in a style (WRAP, Maini et al. 2024): ``encyclopedic`` (Wikipedia-like)
                   or ``qa`` (questions and answers). Each document gets one style, chosen from ``styles`` by a
                   hash of its id and the seed, so the choice does not depend on batching; ``sampling.n``
                   rewrites per document.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from operators.base import check
from teachers.diversity import tokens
from teachers.task import GenerationTask, Reject, each_sample, object_schema, parse_json, pick, plain_text

STOPWORDS = frozenset("a an and are as at be by for from has have in is it its of on or that the this to was were "
                      "which with".split())


def grounding(answer: str, document: str) -> float:
    """The share of the answer's content words that occur in the document (1.0 for an answer of stopwords)."""
    words = [w for w in tokens(answer) if w not in STOPWORDS]
    if not words:
        return 1.0
    vocabulary = set(tokens(document))
    return sum(w in vocabulary for w in words) / len(words)


@dataclass(frozen=True)
class GroundedQA(GenerationTask):
    max_doc_chars: int = 2000
    min_grounding: float = 0.5
    constrained: bool = True  # JSON-schema constrained decoding where the engine supports it

    task: ClassVar[str] = "grounded_qa"
    template_version: ClassVar[str] = "qa-1"
    columns: ClassVar[dict[str, pa.DataType]] = {"question": pa.string(), "answer": pa.string()}

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0 <= self.min_grounding <= 1, self, "min_grounding", f"must be in [0, 1], got {self.min_grounding!r}")

    def messages(self, document: str):
        return (("system", "You write question-answer pairs grounded in a document. Reply with JSON only."),
                ("user", f"Document:\n{document[: self.max_doc_chars]}\n\nWrite one question that this document "
                         "answers, and its answer, using only facts stated in the document. Reply with JSON: "
                         '{"question": "...", "answer": "..."}'))

    def run(self, rows: list[dict[str, Any]]) -> list[list[dict[str, Any] | Reject]]:
        sampling = self.sampling
        if self.constrained:
            sampling = sampling.replace(json_schema=object_schema({"question": {}, "answer": {}}))
        answers = self.ask([self.render(self.messages(row["text"] or "")) for row in rows], sampling)
        return [each_sample(response, stamp, lambda sample, document=row["text"] or "": self.pair(sample, document))
                for row, (response, stamp) in zip(rows, answers)]

    def pair(self, sample, document: str) -> dict[str, Any]:
        pair = parse_json(sample, {"question": str, "answer": str})
        share = grounding(pair["answer"], document)
        if share < self.min_grounding:
            raise Reject("answer not grounded in the document",
                         f"{share:.2f} of the answer's content words occur in the document: {pair['answer'][:200]}")
        return {"question": pair["question"], "answer": pair["answer"],
                "text": f"Question: {pair['question']}\nAnswer: {pair['answer']}"}


STYLES = {
    "encyclopedic": "Rewrite the following text in the style of an encyclopedia article such as Wikipedia: neutral, "
                    "factual, clear and well organised. Keep every fact; add none.",
    "qa": "Convert the following text into a question-and-answer format: a series of questions, each followed by "
          "its answer, covering the text's information. Keep every fact; add none.",
}


@dataclass(frozen=True)
class Rephrase(GenerationTask):
    styles: tuple[str, ...] = ("encyclopedic", "qa")
    max_doc_chars: int = 2000
    allow_truncated: bool = False  # keep outputs cut at max_tokens (else rejected)

    task: ClassVar[str] = "rephrase"
    template_version: ClassVar[str] = "rephrase-1"
    columns: ClassVar[dict[str, pa.DataType]] = {"style": pa.string()}

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "styles", tuple(self.styles))
        check(bool(self.styles) and all(s in STYLES for s in self.styles), self, "styles",
              f"must be a non-empty subset of {sorted(STYLES)}, got {self.styles!r}")

    def style_of(self, row: dict[str, Any]) -> str:
        return self.styles[pick(str(row["id"]), self.sampling.seed, len(self.styles))]

    def run(self, rows: list[dict[str, Any]]) -> list[list[dict[str, Any] | Reject]]:
        styles = [self.style_of(row) for row in rows]
        prompts = [self.render((("user", f"{STYLES[style]}\n\nText:\n{(row['text'] or '')[: self.max_doc_chars]}"),))
                   for row, style in zip(rows, styles)]
        return [each_sample(response, stamp, lambda sample, style=style: {
                    "text": plain_text(sample, self.allow_truncated), "style": style})
                for style, (response, stamp) in zip(styles, self.ask(prompts))]
