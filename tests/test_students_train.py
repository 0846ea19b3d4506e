"""Training loop: schedules, accumulation, real-text learning, exact resume, NaN stop, feedback, safety."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from curricula.batch import FeedbackStream, TokenBatch
from students.checkpoint import latest_checkpoint, load_checkpoint
from students.data import ParquetTokenStream, read_documents
from students.errors import ConfigError, TrainingDiverged
from students.model import ModelConfig, Student
from students.train import TrainConfig, lr_at, read_metrics, train

REPO = Path(__file__).resolve().parents[1]
MODEL = dict(vocab_size=49152, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=32)

pytestmark = pytest.mark.usefixtures("one_torch_thread")



@pytest.fixture(scope="module")
def documents(smollm2_dir):
    """150 real documents of the bundled corpus, tokenised with SmolLM2's tokenizer."""
    table = pq.read_table(REPO / "data" / "sample", columns=["id", "text", "source"]).sort_by("id").slice(0, 150)
    from students.data import tokenize_texts
    ids = tokenize_texts([t[:2000] for t in table.column("text").to_pylist()], smollm2_dir)
    return ids, table.column("source").to_pylist()


def stream(documents, **kw):
    return ParquetTokenStream(documents=documents, **{"batch_size": 4, "seq_len": 32, **kw})


def quiet(**kw) -> TrainConfig:
    return TrainConfig(**{"progress": False, "warmup_steps": 2, "lr": 3e-3, **kw})


def test_schedules():
    cos = TrainConfig(steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
    assert lr_at(cos, 0) == pytest.approx(0.1) and lr_at(cos, 9) == pytest.approx(1.0)
    assert lr_at(cos, 10) == pytest.approx(1.0) and lr_at(cos, 55) == pytest.approx(0.55)
    assert lr_at(cos, 99) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 89 / 90)))
    wsd = TrainConfig(steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.0, schedule="wsd", decay_fraction=0.2)
    assert lr_at(wsd, 50) == 1.0 and lr_at(wsd, 79) == 1.0
    assert lr_at(wsd, 89) == pytest.approx(0.5) and lr_at(wsd, 99) == pytest.approx(0.0)
    with pytest.raises(ConfigError, match="schedule"):
        TrainConfig(schedule="linear")
    with pytest.raises(ConfigError, match="warmup_steps"):
        TrainConfig(steps=5, warmup_steps=6)


def test_loss_falls_on_real_text_and_metrics_are_written(tmp_path, documents):
    result = train(ModelConfig(**MODEL), quiet(steps=30, checkpoint_every=100), stream(documents), tmp_path)
    metrics = read_metrics(tmp_path)
    assert [m["step"] for m in metrics] == list(range(1, 31))
    first, last = np.mean(result.losses[:3]), np.mean(result.losses[-3:])
    assert first > 9.5 and last < first - 2.0  # ln(49152) = 10.8 at the start
    assert set(metrics[-1]["domain_loss"]) <= set(documents[1]) and metrics[-1]["tokens"] == 4 * 32
    assert result.last_checkpoint.name == "step-0000030"


class Killed(Exception):
    pass


class KillAfter:
    """Wraps a stream and raises after ``n`` batches: a run killed mid-way."""

    def __init__(self, inner, n):
        self.inner, self.n = inner, n

    def __iter__(self):
        for i, batch in enumerate(self.inner):
            if i == self.n:
                raise Killed
            yield batch

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)


@pytest.mark.parametrize("moe", [False, True])
def test_resume_reproduces_the_uninterrupted_loss_curve(tmp_path, documents, moe):
    model = ModelConfig(**MODEL, **(dict(n_experts=4, top_k=2) if moe else {}))
    cfg = quiet(steps=10, checkpoint_every=4, grad_accum=2)
    train(model, cfg, stream(documents), tmp_path / "whole")
    with pytest.raises(Killed):  # killed during step 7 (batch 13 of 2 per step): checkpoint 4 is the latest
        train(model, cfg, KillAfter(stream(documents), 13), tmp_path / "split")
    assert latest_checkpoint(tmp_path / "split").name == "step-0000004"
    train(model, cfg, stream(documents), tmp_path / "split", resume=True)  # fresh process state, resumes from step 4
    whole, split = read_metrics(tmp_path / "whole"), read_metrics(tmp_path / "split")
    assert [m["step"] for m in split] == list(range(1, 11))
    assert [m["loss"] for m in split] == [m["loss"] for m in whole]  # exactly equal floats
    a, b = Student(model), Student(model)
    load_checkpoint(latest_checkpoint(tmp_path / "whole"), a, restore_rng=False)
    load_checkpoint(latest_checkpoint(tmp_path / "split"), b, restore_rng=False)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_accumulation_equals_one_big_batch(tmp_path, documents):
    big = train(ModelConfig(**MODEL), quiet(steps=1, grad_accum=1, warmup_steps=0), stream(documents, batch_size=4), tmp_path / "a")
    acc = train(ModelConfig(**MODEL), quiet(steps=1, grad_accum=2, warmup_steps=0), stream(documents, batch_size=2), tmp_path / "b")
    assert acc.losses[0] == pytest.approx(big.losses[0], abs=1e-5)
    a, b = Student(ModelConfig(**MODEL)), Student(ModelConfig(**MODEL))
    load_checkpoint(big.last_checkpoint, a, restore_rng=False)
    load_checkpoint(acc.last_checkpoint, b, restore_rng=False)
    for x, y in zip(a.parameters(), b.parameters()):  # AdamW's first step is ~lr * sign(grad): where a gradient
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-4)  # is ~eps, summation order moves it by ~1e-5


def test_nan_from_a_forward_hook_stops_and_keeps_the_last_good_checkpoint(tmp_path, documents):
    """The NaN is injected by a forward hook on the final norm from the 4th forward pass (step 4)."""
    model = Student(ModelConfig(**MODEL))
    calls = {"n": 0}

    def poison(module, inputs, output):
        calls["n"] += 1
        return output * float("nan") if calls["n"] >= 4 else output

    model.norm.register_forward_hook(poison)
    with pytest.raises(TrainingDiverged, match=re.escape("step 3: loss is nan")) as error:
        train(model.cfg, quiet(steps=10, checkpoint_every=2), stream(documents), tmp_path, model=model)
    assert "step-0000002" in str(error.value)
    assert latest_checkpoint(tmp_path).name == "step-0000002"
    assert [m["step"] for m in read_metrics(tmp_path)] == [1, 2, 3]
    restored = Student(model.cfg)
    load_checkpoint(latest_checkpoint(tmp_path), restored, restore_rng=False)
    assert all(torch.isfinite(p).all() for p in restored.parameters())


def test_nan_from_a_huge_learning_rate(tmp_path, documents):
    """A real divergence: lr = 1e30 makes weights ~1e30, whose squares overflow in RMSNorm."""
    with pytest.raises(TrainingDiverged, match="loss is nan"):
        train(ModelConfig(**MODEL), quiet(steps=5, lr=1e30, warmup_steps=0), stream(documents), tmp_path)


class Feedback:
    def __init__(self, inner):
        self.inner, self.reports = inner, []

    def __iter__(self):
        return iter(self.inner)

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)

    def report_losses(self, losses, step):
        self.reports.append((step, losses))


def test_feedback_stream_receives_per_domain_losses(tmp_path, documents):
    fb = Feedback(stream(documents))
    assert isinstance(fb, FeedbackStream)
    train(ModelConfig(**MODEL), quiet(steps=3), fb, tmp_path)
    metrics = read_metrics(tmp_path)
    assert [s for s, _ in fb.reports] == [0, 1, 2]
    assert [losses for _, losses in fb.reports] == [m["domain_loss"] for m in metrics]


def test_parquet_stream_resumes_and_shards(tmp_path, documents):
    from students.data import write_token_parquet

    path = write_token_parquet(tmp_path / "tokens.parquet", *documents)
    ids, domains = read_documents(path)
    assert ids == [list(d) for d in documents[0]] and domains == documents[1]
    whole = [b.input_ids for _, b in zip(range(12), ParquetTokenStream(path, 4, 32))]
    s = ParquetTokenStream(path, 4, 32)
    it = iter(s)
    [next(it) for _ in range(5)]
    resumed = ParquetTokenStream(path, 4, 32)
    resumed.load_state_dict(json.loads(json.dumps(s.state_dict())))
    assert [np.array_equal(a, b.input_ids) for a, b in zip(whole[5:], resumed)] == [True] * 7
    s0, s1 = ParquetTokenStream(path, 4, 32).shard(0, 2), ParquetTokenStream(path, 4, 32).shard(1, 2)
    b0, b1 = next(iter(s0)), next(iter(s1))
    assert np.array_equal(b0.input_ids, whole[0]) and np.array_equal(b1.input_ids, whole[1])
    batch: TokenBatch = whole and next(iter(ParquetTokenStream(path, 4, 32)))
    assert np.array_equal(batch.labels[:, :-1], batch.input_ids[:, 1:])


# -- no code path unpickles a file: checkpoints, models and caches load as data only --------------------------

SCANNED = ("pipelines", "operators", "teachers", "curricula", "students", "benchmarks", "scripts")
# (module, function) calls that can execute code from the bytes they read. torch.load is safe only with
# weights_only=True; numpy.load is unsafe only with allow_pickle=True; the rest always are.
UNPICKLERS = {("torch", "load"), ("serialization", "load"), ("numpy", "load"), ("pickle", "load"), ("pickle", "loads"),
              ("pickle", "Unpickler"), ("_pickle", "load"), ("_pickle", "loads"), ("cloudpickle", "load"),
              ("cloudpickle", "loads"), ("dill", "load"), ("dill", "loads"), ("joblib", "load"), ("pandas", "read_pickle"),
              ("shelve", "open"), ("marshal", "load"), ("marshal", "loads")}
# Third-party code that unpickles files itself, reached from this repository, each with the reason it is allowed.
VENDORED_ALLOWED = {
    "profanity_check": "alt-profanity-check==1.9.1 (pinned, dev extra) joblib-loads the model.joblib and "
                       "vectorizer.joblib inside its own PyPI wheel, by package-resource path, never a user's file; "
                       "only tests/test_toxicity.py uses it, as the weak labeller",
}


def unsafe_loads(path: Path) -> list[str]:
    """``FILE:LINE: CALL`` for each call in a Python file that may unpickle what it reads (imports and aliases
    followed: ``import numpy as np``, ``from pickle import loads``, ``from ray import cloudpickle``)."""
    import ast

    tree = ast.parse(path.read_text(), str(path))
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"

    def dotted(func) -> str | None:
        parts = []
        while isinstance(func, ast.Attribute):
            parts.append(func.attr)
            func = func.value
        if not isinstance(func, ast.Name):
            return None
        return ".".join([aliases.get(func.id, func.id), *reversed(parts)])

    found = []
    for node in ast.walk(tree):
        name = dotted(node.func) if isinstance(node, ast.Call) else None
        if name is None or "." not in name:
            continue
        module, function = name.rsplit(".", 1)
        if (module.rsplit(".", 1)[-1], function) not in UNPICKLERS:
            continue
        keywords = {k.arg: k.value for k in node.keywords}
        if "torch" in module:  # safe only with weights_only=True
            flag = keywords.get("weights_only")
            safe = isinstance(flag, ast.Constant) and flag.value is True
        elif module.endswith("numpy"):  # safe unless allow_pickle is given and not literally False
            flag = keywords.get("allow_pickle")
            safe = flag is None or isinstance(flag, ast.Constant) and flag.value is False
        else:
            safe = False
        if safe:
            continue
        found.append(f"{path}:{node.lineno}: {name}")
    return found


def test_no_unsafe_pickle_loading():
    files = sorted(f for folder in SCANNED for f in (REPO / folder).rglob("*.py"))
    assert len(files) > 100 and any(f.parent.name == "scripts" for f in files)  # the scan sees the whole package
    assert [hit for f in files for hit in unsafe_loads(f)] == []


def test_the_pickle_scanner_catches_planted_violations(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("\n".join([
        "import pickle, joblib", "import numpy as np", "import torch as T", "from ray import cloudpickle",
        "from pickle import loads as unpickle", "import pandas",
        "T.load('a.pt')", "T.load('b.pt', weights_only=False)", "T.load('ok.pt', weights_only=True)",
        "pickle.load(open('c', 'rb'))", "unpickle(b'')", "cloudpickle.loads(b'')", "joblib.load('m.joblib')",
        "np.load('x.npy', allow_pickle=True)", "np.load('ok.npy')", "np.load('ok2.npy', allow_pickle=False)",
        "pandas.read_pickle('p')", ""]))
    assert [hit.split(": ", 1)[1] for hit in unsafe_loads(planted)] == [
        "torch.load", "torch.load", "pickle.load", "pickle.loads", "ray.cloudpickle.loads", "joblib.load",
        "numpy.load", "pandas.read_pickle"]
    assert [int(hit.split(":")[1]) for hit in unsafe_loads(planted)] == [7, 8, 10, 11, 12, 13, 14, 17]


def test_vendored_unpickling_is_only_the_allowlisted_package_models():
    import importlib.util
    import re as regex

    for module, reason in VENDORED_ALLOWED.items():
        spec = importlib.util.find_spec(module)
        assert spec is not None, f"{module} is not installed ({reason.split(' (')[0]}); scripts/setup.sh installs it"
        hits = [hit for f in sorted(Path(spec.origin).parent.rglob("*.py")) for hit in unsafe_loads(f)]
        assert hits and all(hit.endswith("joblib.load") for hit in hits), hits
        for hit in hits:  # each loads a file of the package itself, by package-resource path
            path, line = hit.split(":")[:2]
            call = "\n".join(Path(path).read_text().splitlines()[int(line) - 1:int(line) + 2])
            assert regex.search(rf"""(resources\.files|resource_filename)\(\s*["']{module}["']""", call), call
    # Nothing in the package imports them: only the test that labels toxicity does.
    users = sorted(str(f.relative_to(REPO)) for folder in (*SCANNED, "tests") for f in (REPO / folder).rglob("*.py")
                   if any(regex.search(rf"^\s*(import|from)\s+{m}\b", f.read_text(), regex.M) for m in VENDORED_ALLOWED))
    assert users == ["tests/test_toxicity.py"]
