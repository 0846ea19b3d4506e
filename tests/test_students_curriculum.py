"""The trainer on the real curriculum stream (curricula.stream.CurriculumStream): an online DoReMi mixture
over the sample corpus's domains receives the trainer's per-domain losses, and a killed run resumes exactly."""
from __future__ import annotations

from pathlib import Path

import pytest

from students.model import ModelConfig
from students.train import TrainConfig, read_metrics, train
from test_students_train import KillAfter, Killed

REPO = Path(__file__).resolve().parents[1]


class KillAfterFeedback(KillAfter):
    """``KillAfter`` that also passes the trainer's per-domain losses on (a FeedbackStream)."""

    def report_losses(self, losses, step):
        self.inner.report_losses(losses, step)


@pytest.mark.slow
def test_curriculum_stream_feeds_training_and_resumes(tmp_path, smollm2_dir, one_torch_thread):
    from curricula.mixture import DoReMi
    from curricula.source import split_by_source
    from curricula.stream import CurriculumStream

    def stream():
        return CurriculumStream(split_by_source(REPO / "data" / "sample"),
                                DoReMi(eta=1.0), smollm2_dir / "tokenizer.json",
                                seq_len=32, batch_size=4, seed=0, document_ids=True)

    model = ModelConfig(vocab_size=49152, d_model=64, n_layers=2, n_heads=4, max_seq_len=32)
    cfg = TrainConfig(steps=6, lr=3e-3, warmup_steps=1, checkpoint_every=3, progress=False)
    whole = stream()
    train(model, cfg, whole, tmp_path / "whole")
    with pytest.raises(Killed):
        train(model, cfg, KillAfterFeedback(stream(), 4), tmp_path / "split")
    train(model, cfg, stream(), tmp_path / "split", resume=True)
    a, b = read_metrics(tmp_path / "whole"), read_metrics(tmp_path / "split")
    assert [m["loss"] for m in a] == [m["loss"] for m in b]
    assert [m["domain_loss"] for m in a] == [m["domain_loss"] for m in b]
    weights = whole.current_weights()
    assert abs(float(sum(weights)) - 1.0) < 1e-6 and len(set(round(float(w), 6) for w in weights)) > 1  # adapted
