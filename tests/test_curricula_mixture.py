"""Mixtures, schedules, temperature sampling, online DoReMi and the low-discrepancy selector (no data)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from curricula.mixture import (CurriculumConfigError, DoReMi, Mixture, Temperature, constant, cosine, piecewise,
                               temperature_mixture)
from curricula.selector import AdherenceLog, DomainSelector

DOMAINS = ["code", "web", "books", "math"]


def run_selector(schedule, n: int, seq_len: int = 64, seed: int = 0):
    schedule.bind(DOMAINS)
    sel = DomainSelector(len(DOMAINS), seed)
    planned, picked = np.zeros((n, len(DOMAINS))), np.zeros(n, dtype=int)
    for i in range(n):
        w = schedule.weights(i * seq_len)
        planned[i] = sel.targets(w)
        picked[i], credits = sel.propose(w)
        sel.commit(credits)
    return planned, picked


def worst_window_error(planned: np.ndarray, picked: np.ndarray, window: int = 1000) -> float:
    """Max over every window of ``window`` consecutive sequences and every domain of |realised - planned|."""
    onehot = np.eye(planned.shape[1])[picked]
    cum_real = np.vstack([np.zeros(planned.shape[1]), np.cumsum(onehot, axis=0)])
    cum_plan = np.vstack([np.zeros(planned.shape[1]), np.cumsum(planned, axis=0)])
    real = (cum_real[window:] - cum_real[:-window]) / window
    plan = (cum_plan[window:] - cum_plan[:-window]) / window
    return float(np.abs(real - plan).max())


@pytest.mark.parametrize("make", [
    lambda: constant({"code": 0.5, "web": 0.3, "books": 0.15, "math": 0.05}),
    lambda: piecewise([(0, {"web": 1.0}), (200_000, {"code": 1, "web": 1, "books": 1, "math": 1}),
                       (600_000, {"code": 0.7, "math": 0.3})]),
    lambda: cosine({"web": 0.9, "books": 0.1}, {"code": 0.4, "math": 0.6}, total_tokens=800_000),
    lambda: Temperature(3.0, sizes={"code": 5_000, "web": 900_000, "books": 40_000, "math": 1_000}),
], ids=["constant", "piecewise", "cosine", "temperature"])
def test_realised_proportions_within_2_percent_over_every_1000_window(make):
    planned, picked = run_selector(make(), 20_000)
    assert worst_window_error(planned, picked) <= 0.02
    # i.i.d. sampling with the same targets would not hold this bound (what the selector is for)
    rng = np.random.default_rng(0)
    iid = np.array([rng.choice(len(DOMAINS), p=p) for p in planned])
    assert worst_window_error(planned, iid) > 0.02


def test_selector_seed_changes_interleaving_not_proportions():
    sched = lambda: constant({"code": 1, "web": 1, "books": 1, "math": 1})  # noqa: E731
    _, a = run_selector(sched(), 400, seed=0)
    _, b = run_selector(sched(), 400, seed=0)
    _, c = run_selector(sched(), 400, seed=7)
    assert (a == b).all() and not (a == c).all()
    assert np.bincount(c, minlength=4).tolist() == [100, 100, 100, 100]


def test_piecewise_and_cosine_interpolate_exactly():
    sched = piecewise([(100, {"code": 1.0}), (300, {"web": 3, "code": 1})]).bind(DOMAINS)
    assert sched.weights(0).tolist() == [1, 0, 0, 0]
    assert np.allclose(sched.weights(200), [0.5 + 0.5 * 0.25, 0.5 * 0.75, 0, 0])
    assert np.allclose(sched.weights(10_000), [0.25, 0.75, 0, 0])
    cos = cosine({"code": 1.0}, {"math": 1.0}, total_tokens=1000).bind(DOMAINS)
    assert np.allclose(cos.weights(500), [0.5, 0, 0, 0.5])
    assert np.allclose(cos.weights(250), [1 - (1 - math.cos(math.pi / 4)) / 2, 0, 0, (1 - math.cos(math.pi / 4)) / 2])


def test_temperature_sampling_is_n_to_the_one_over_t():
    sizes = {"code": 100, "web": 10_000}
    p = temperature_mixture(sizes, 2.0).probabilities(["code", "web"])
    assert np.allclose(p, [10 / 110, 100 / 110])
    assert np.allclose(temperature_mixture(sizes, 1.0).probabilities(["code", "web"]), [100 / 10100, 10000 / 10100])
    flat = temperature_mixture(sizes, 1e6).probabilities(["code", "web"])
    assert abs(flat[0] - 0.5) < 1e-4


def test_doremi_exponentiated_gradient_step_with_smoothing():
    sched = DoReMi(reference_losses={"code": 1.0, "web": 2.0, "books": 2.0, "math": 3.0}, eta=0.5,
                   smoothing=0.1).bind(DOMAINS)
    assert np.allclose(sched.weights(0), 0.25)
    sched.report_losses({"code": 2.0, "web": 2.5, "books": 1.0, "math": 3.0}, step=10)
    excess = np.array([1.0, 0.5, 0.0, 0.0])  # clipped at 0 (books is below its reference)
    alpha = 0.25 * np.exp(0.5 * excess)
    alpha = 0.9 * alpha / alpha.sum() + 0.1 / 4
    assert np.allclose(sched.weights(0), alpha)
    assert sched.weights(0)[0] > sched.weights(0)[1] > sched.weights(0)[2] == sched.weights(0)[3]
    state = json.loads(json.dumps(sched.state_dict()))
    again = DoReMi(reference_losses={"code": 1.0, "web": 2.0, "books": 2.0, "math": 3.0}, eta=0.5,
                   smoothing=0.1).bind(DOMAINS)
    again.load_state_dict(state)
    assert np.allclose(again.weights(0), alpha) and again.average_weights() == sched.average_weights()
    # repeated excess on one domain keeps raising it, smoothing keeps every domain above smoothing/k
    for step in range(50):
        sched.report_losses({"math": 10.0}, step=11 + step)
    w = sched.weights(0)
    assert w.argmax() == 3 and w.min() >= 0.1 / 4 - 1e-12


def test_adherence_log_records_planned_and_realised(tmp_path):
    planned, picked = run_selector(constant({"code": 3, "web": 1}), 2500)
    log = AdherenceLog(DOMAINS, every=1000, path=tmp_path / "adherence.jsonl")
    for i, (p, d) in enumerate(zip(planned, picked)):
        log.add(p, int(d), tokens=(i + 1) * 64)
    log.flush(2500 * 64)
    lines = [json.loads(x) for x in (tmp_path / "adherence.jsonl").read_text().splitlines()]
    assert [r["sequences"] for r in lines] == [1000, 2000, 2500] and lines == log.records
    assert lines[0]["planned"]["code"] == 0.75 and abs(lines[0]["realised"]["code"] - 0.75) <= 0.002


@pytest.mark.parametrize("build, message", [
    (lambda: Mixture({"code": 0.0, "web": 0.0}), r"^Mixture.weights: must sum to a positive total, got 0.0$"),
    (lambda: Mixture({}), r"^Mixture.weights: must be a non-empty mapping"),
    (lambda: Mixture({"code": -1.0, "web": 2.0}), r"^Mixture.weights\['code'\]: must be a finite number >= 0"),
    (lambda: constant({"code": 1.0, "poetry": 1.0}).bind(DOMAINS),
     r"^schedule.mixture.weights\['poetry'\]: unknown domain \(domains: code, web, books, math\)$"),
    (lambda: piecewise([(0, {"code": 1}), (10, {"cod": 1})]).bind(DOMAINS), r"^schedule.points\[1\].weights\['cod'\]"),
    (lambda: piecewise([(10, {"code": 1}), (10, {"web": 1})]), r"^schedule.points: token counts must increase"),
    (lambda: Temperature(0.0), r"^schedule.temperature: must be > 0"),
    (lambda: temperature_mixture({"code": 0}, 2.0), r"^sizes\['code'\]: must be > 0"),
    (lambda: DoReMi(reference_losses={"poetry": 1.0}).bind(DOMAINS), r"^schedule.reference_losses\['poetry'\]"),
    (lambda: DoReMi().bind(DOMAINS).report_losses({"poetry": 1.0}, 0), r"^losses\['poetry'\]: unknown domain"),
])
def test_configuration_errors_name_the_field(build, message):
    with pytest.raises(CurriculumConfigError, match=message):
        build()
