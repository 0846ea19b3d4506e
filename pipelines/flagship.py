"""The flagship: raw text -> curated and synthetic data -> trained, evaluated students -> one HTML report.

    distillery run pipelines/flagship.py                        # small size, embedded local Ray
    distillery run pipelines/flagship.py --set size=full        # full size
    distillery submit pipelines/flagship.py --address http://HEAD:8265 --output /shared/flagship

OUTPUT (default out/flagship) receives, in order:

    heldout/       the clean held-out split: 10% of the documents by a hash of the id, curated (evaluation data)
    raw/           the rest, uncurated: the baseline's training data
    curated/       the rest, curated (pipelines/curate.py) and decontaminated against heldout/
    debiased/      curated/ with over-represented gender mentions thinned: the curated training data
    synthetic/     qa/, rephrase/, instructions/, distill/: what SmolLM2 wrote from debiased/, filtered
    students/      training runs: dense on the curated+synthetic curriculum and on the raw stream (every seed),
                   MoE and long-context on the curriculum
    eval.json      every student on heldout/; experiment.md: mean +- std over seeds per arm
    report.html    the whole run (``distillery report``)

With ``--resume`` each pipeline step reuses what it finished before and training continues from its checkpoints,
so a rerun after a failure redoes only what is missing; both are keyed by content, not paths: a step reruns
when its input data, an eval set or the teacher's model folder changed, and a student retrains from scratch
when the data it trains on (or its configs) changed (pipelines/train.py ``resume_run``). Without ``--resume``
everything is recomputed.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from pipelines.curate import curate, debias, raw_split
from pipelines.evaluate import evaluate_students, summarize, summary_table
from pipelines.train import SIZES, TrainingSize, train_students


@dataclass(frozen=True)
class FlagshipSize:
    synthesis_fraction: float  # of the curated documents the teacher writes from
    seeds: tuple[int, ...]
    training: TrainingSize


FLAGSHIP_SIZES = {"test": FlagshipSize(0.005, (0,), SIZES["test"]),
                  "small": FlagshipSize(0.02, (0,), SIZES["small"]),
                  "full": FlagshipSize(0.25, (0, 1, 2), SIZES["full"])}


def workflow(output: str | None = None, address: str | None = None, resume: bool = False, num_cpus: int | None = None,
             size: str = "small", source: str = "data/sample", seeds: str | None = None) -> dict:
    """Run every step; return a summary (also written to OUTPUT/flagship.json)."""
    from pipelines.bias_report import multipliers_from_parquet
    from pipelines.errors import DistilleryError
    from curricula.ray_session import RayOptions, ray_session
    from pipelines.synthesize import distillation, grounded_qa, instructions, rephrasings, smollm2_teacher
    from teachers.smollm2 import smollm2_dir

    if size not in FLAGSHIP_SIZES:
        raise DistilleryError(f"size: must be one of {', '.join(FLAGSHIP_SIZES)}, got {size!r}")
    plan = FLAGSHIP_SIZES[size]
    chosen = tuple(int(s) for s in seeds.split(",")) if seeds else plan.seeds
    out = Path(output or "out/flagship")
    tokenizer_dir = str(smollm2_dir())
    times: dict[str, float] = {}

    def step(pipeline) -> dict:
        name = str(Path(pipeline.output).relative_to(out))
        started = time.perf_counter()
        manifest = pipeline.run(address=address, resume=resume)
        times[name] = round(time.perf_counter() - started, 1)
        print(f"{name}: {manifest['input']['rows']:,} rows in -> {manifest['output']['rows']:,} kept "
              f"({times[name]:.0f} s)", flush=True)
        return manifest

    with ray_session(address, RayOptions(num_cpus=num_cpus)):
        heldout, raw, curated, debiased = (str(out / name) for name in ("heldout", "raw", "curated", "debiased"))
        qa = str(out / "synthetic" / "qa")
        step(curate(source, heldout, part="heldout"))
        step(raw_split(source, raw))
        step(curate(source, curated, part="train", eval_sets=(heldout,)))
        step(debias(curated, debiased, multipliers_from_parquet(curated)))
        teacher, fraction = smollm2_teacher(), plan.synthesis_fraction
        step(grounded_qa(debiased, qa, teacher, fraction))
        step(rephrasings(debiased, str(out / "synthetic" / "rephrase"), teacher, fraction))
        step(instructions(qa, str(out / "synthetic" / "instructions"), teacher))
        step(distillation(debiased, str(out / "synthetic" / "distill"), teacher, fraction))

    started = time.perf_counter()
    synthetic = {"synthetic_qa": qa, "synthetic_rephrase": str(out / "synthetic" / "rephrase")}
    runs = train_students(debiased, synthetic, raw, out / "students", plan.training, chosen,
                          str(Path(tokenizer_dir) / "tokenizer.json"), resume=resume)
    times["train"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    rows = evaluate_students(runs, heldout, out / "eval.json", plan.training.seq_len, tokenizer_dir)
    table = summary_table(summarize(rows))
    (out / "experiment.md").write_text(table + "\n")
    times["evaluate"] = round(time.perf_counter() - started, 1)
    print(table, flush=True)

    from pipelines.report import write_html_report

    write_html_report(out, out / "report.html")
    summary = {"size": size, "seeds": list(chosen), "output": str(out), "seconds": times, "students": [r["name"] for r in rows],
               "precision": _precisions(runs), "report": str(out / "report.html")}
    (out / "flagship.json").write_text(json.dumps(summary, indent=1))
    print(f"report: {out / 'report.html'}")
    return summary


if __name__ == "__main__":
    workflow()


def _precisions(runs: list[Path]) -> dict[str, str | None]:
    """Which precision each student trained in (its config.json; why, and the CPU's features, are there)."""
    found = {}
    for run in runs:
        config = Path(run) / "config.json"
        found[Path(run).name] = (json.loads(config.read_text()).get("precision") or {}).get("resolved") \
            if config.is_file() else None
    return found
