"""Mixtures and schedules: which share of training sequences each domain gets, as a function of training
tokens.

* ``Mixture``       — validated domain weights (normalised to sum 1).
* ``constant``      — one mixture throughout.
* ``piecewise``     — piecewise-linear interpolation between mixtures at given token counts.
* ``cosine``        — cosine interpolation from one mixture to another over ``total_tokens``.
* ``temperature``   — p_i proportional to n_i^(1/T) from domain sizes (documents by default, or any sizes
                      you pass, e.g. token counts from ``pretokenize``'s ``num_tokens`` column).
* ``DoReMi``        — online DoReMi (Xie et al., 2023): exponentiated-gradient steps on per-domain excess loss
                      over a reference loss, smoothed toward uniform, fed by ``report_losses``.

A schedule maps the global training-token count (all workers together) to a weight vector in a fixed
domain order; ``DoReMi`` also keeps state, saved in the stream's state dict. Bad configuration raises
``CurriculumConfigError`` naming the field.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from curricula.errors import CurriculumConfigError


def _require(condition: bool, field_name: str, message: str) -> None:
    if not condition:
        raise CurriculumConfigError(f"{field_name}: {message}")


@dataclass(frozen=True)
class Mixture:
    """Domain weights. Any non-negative numbers with a positive total; ``probabilities`` normalises."""

    weights: Mapping[str, float]

    def __post_init__(self) -> None:
        _require(isinstance(self.weights, Mapping) and len(self.weights) > 0, "Mixture.weights",
                 "must be a non-empty mapping domain -> weight")
        for name, w in self.weights.items():
            _require(isinstance(w, (int, float)) and math.isfinite(w) and w >= 0, f"Mixture.weights[{name!r}]",
                     f"must be a finite number >= 0, got {w!r}")
        total = float(sum(self.weights.values()))
        _require(total > 0, "Mixture.weights", f"must sum to a positive total, got {total}")

    def probabilities(self, domains: Sequence[str], field_name: str = "Mixture.weights") -> np.ndarray:
        """Weights in ``domains`` order, normalised; a domain the mixture does not name gets 0."""
        unknown = sorted(set(self.weights) - set(domains))
        _require(not unknown, f"{field_name}[{unknown[0]!r}]" if unknown else field_name,
                 f"unknown domain (domains: {', '.join(domains)})")
        p = np.array([float(self.weights.get(d, 0.0)) for d in domains])
        return p / p.sum()


def _as_mixture(m: Mixture | Mapping[str, float]) -> Mixture:
    return m if isinstance(m, Mixture) else Mixture(dict(m))


class Schedule:
    """Base class: ``bind`` fixes the domain order once, ``weights(tokens)`` gives the target mixture."""

    domains: tuple[str, ...] = ()

    def bind(self, domains: Sequence[str]) -> "Schedule":
        self.domains = tuple(domains)
        return self

    def weights(self, tokens: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"schedule": type(self).__name__}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class Constant(Schedule):
    def __init__(self, mixture: Mixture | Mapping[str, float]):
        self.mixture = _as_mixture(mixture)

    def bind(self, domains: Sequence[str]) -> "Constant":
        super().bind(domains)
        self._p = self.mixture.probabilities(self.domains, "schedule.mixture.weights")
        return self

    def weights(self, tokens: int) -> np.ndarray:
        return self._p

    def describe(self) -> dict[str, Any]:
        return {"schedule": "constant", "weights": dict(self.mixture.weights)}


class Piecewise(Schedule):
    """Linear interpolation between ``(tokens, mixture)`` points; constant before the first and after the last."""

    def __init__(self, points: Sequence[tuple[int, Mixture | Mapping[str, float]]], shape: str = "linear"):
        _require(len(points) >= 1, "schedule.points", "needs at least one (tokens, mixture) point")
        steps = [int(t) for t, _ in points]
        _require(all(t >= 0 for t in steps), "schedule.points", "token counts must be >= 0")
        _require(all(a < b for a, b in zip(steps, steps[1:])), "schedule.points",
                 f"token counts must increase strictly, got {steps}")
        _require(shape in ("linear", "cosine"), "schedule.shape", f"must be 'linear' or 'cosine', got {shape!r}")
        self.steps = steps
        self.mixtures = [_as_mixture(m) for _, m in points]
        self.shape = shape

    def bind(self, domains: Sequence[str]) -> "Piecewise":
        super().bind(domains)
        self._ps = [m.probabilities(self.domains, f"schedule.points[{i}].weights")
                    for i, m in enumerate(self.mixtures)]
        return self

    def weights(self, tokens: int) -> np.ndarray:
        if tokens <= self.steps[0]:
            return self._ps[0]
        if tokens >= self.steps[-1]:
            return self._ps[-1]
        i = int(np.searchsorted(self.steps, tokens, side="right")) - 1
        frac = (tokens - self.steps[i]) / (self.steps[i + 1] - self.steps[i])
        if self.shape == "cosine":
            frac = 0.5 * (1.0 - math.cos(math.pi * frac))
        return (1.0 - frac) * self._ps[i] + frac * self._ps[i + 1]

    def describe(self) -> dict[str, Any]:
        return {"schedule": f"piecewise-{self.shape}",
                "points": [[t, dict(m.weights)] for t, m in zip(self.steps, self.mixtures)]}


def constant(mixture: Mixture | Mapping[str, float]) -> Constant:
    return Constant(mixture)


def piecewise(points: Sequence[tuple[int, Mixture | Mapping[str, float]]]) -> Piecewise:
    return Piecewise(points, shape="linear")


def cosine(start: Mixture | Mapping[str, float], end: Mixture | Mapping[str, float], total_tokens: int) -> Piecewise:
    """Cosine interpolation from ``start`` (0 tokens) to ``end`` (``total_tokens``), then constant."""
    _require(int(total_tokens) > 0, "schedule.total_tokens", f"must be > 0, got {total_tokens}")
    return Piecewise([(0, start), (int(total_tokens), end)], shape="cosine")


def temperature_mixture(sizes: Mapping[str, float], temperature: float) -> Mixture:
    """p_i proportional to n_i^(1/T): T=1 is proportional to size, larger T flattens toward uniform."""
    _require(isinstance(temperature, (int, float)) and temperature > 0, "temperature",
             f"must be > 0, got {temperature!r}")
    for name, n in sizes.items():
        _require(n > 0, f"sizes[{name!r}]", f"must be > 0 (an empty domain?), got {n}")
    return Mixture({name: float(n) ** (1.0 / temperature) for name, n in sizes.items()})


class Temperature(Constant):
    """Temperature sampling. Sizes default to each domain's document count (the stream fills them in);
    pass ``sizes`` (e.g. tokens per domain) to use another measure."""

    def __init__(self, temperature: float, sizes: Mapping[str, float] | None = None):
        _require(isinstance(temperature, (int, float)) and temperature > 0, "schedule.temperature",
                 f"must be > 0, got {temperature!r}")
        self.temperature = float(temperature)
        self.sizes = dict(sizes) if sizes is not None else None
        self.size_unit = "given" if sizes is not None else "documents"

    def with_sizes(self, sizes: Mapping[str, float]) -> "Temperature":
        if self.sizes is None:
            self.sizes = dict(sizes)
        return self

    def bind(self, domains: Sequence[str]) -> "Temperature":
        _require(self.sizes is not None, "schedule.sizes", "unknown: pass sizes or let the stream count documents")
        self.mixture = temperature_mixture(self.sizes, self.temperature)
        return super().bind(domains)

    def describe(self) -> dict[str, Any]:
        return {"schedule": "temperature", "temperature": self.temperature, "size_unit": self.size_unit,
                "sizes": self.sizes, "weights": ({d: round(float(w), 6) for d, w in zip(self.domains, self._p)}
                                                 if self.domains else None)}


@dataclass
class DoReMi(Schedule):
    """Online DoReMi: alpha <- normalise(alpha * exp(eta * max(loss - reference, 0))), then
    alpha <- (1 - smoothing) * alpha + smoothing * uniform (the paper uses eta = 1, smoothing = 1e-3).

    ``reference_losses``: per-domain loss of a reference model (missing domains: 0, i.e. plain loss).
    ``initial``: starting mixture (default uniform). ``average_weights()`` is the paper's output mixture
    (the mean of the weights over all updates), handy as a static mixture for a later run.
    """

    reference_losses: Mapping[str, float] = field(default_factory=dict)
    eta: float = 1.0
    smoothing: float = 1e-3
    initial: Mixture | Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        _require(self.eta > 0, "schedule.eta", f"must be > 0, got {self.eta}")
        _require(0 <= self.smoothing <= 1, "schedule.smoothing", f"must be in [0, 1], got {self.smoothing}")
        self.step = -1
        self.updates = 0

    def bind(self, domains: Sequence[str]) -> "DoReMi":
        super().bind(domains)
        k = len(self.domains)
        unknown = sorted(set(self.reference_losses) - set(self.domains))
        _require(not unknown, f"schedule.reference_losses[{unknown[0]!r}]" if unknown else "",
                 f"unknown domain (domains: {', '.join(self.domains)})")
        self._ref = np.array([float(self.reference_losses.get(d, 0.0)) for d in self.domains])
        self._alpha = (_as_mixture(self.initial).probabilities(self.domains, "schedule.initial.weights")
                       if self.initial is not None else np.full(k, 1.0 / k))
        self._sum = np.zeros(k)
        return self

    def weights(self, tokens: int) -> np.ndarray:
        return self._alpha

    def report_losses(self, losses: Mapping[str, float], step: int) -> None:
        unknown = sorted(set(losses) - set(self.domains))
        _require(not unknown, f"losses[{unknown[0]!r}]" if unknown else "",
                 f"unknown domain (domains: {', '.join(self.domains)})")
        excess = np.zeros(len(self.domains))
        for i, d in enumerate(self.domains):
            if d in losses and math.isfinite(float(losses[d])):
                excess[i] = max(float(losses[d]) - self._ref[i], 0.0)
        logits = np.log(np.maximum(self._alpha, 1e-300)) + self.eta * excess
        alpha = np.exp(logits - logits.max())
        alpha /= alpha.sum()
        self._alpha = (1.0 - self.smoothing) * alpha + self.smoothing / len(self.domains)
        self._sum += self._alpha
        self.updates += 1
        self.step = int(step)

    def average_weights(self) -> dict[str, float]:
        avg = self._sum / self.updates if self.updates else self._alpha
        return {d: float(w) for d, w in zip(self.domains, avg)}

    def describe(self) -> dict[str, Any]:
        return {"schedule": "doremi", "eta": self.eta, "smoothing": self.smoothing,
                "reference_losses": dict(self.reference_losses)}

    def state_dict(self) -> dict[str, Any]:
        return {"alpha": self._alpha.tolist(), "sum": self._sum.tolist(), "updates": self.updates, "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._alpha = np.array(state["alpha"], dtype=float)
        self._sum = np.array(state["sum"], dtype=float)
        self.updates = int(state["updates"])
        self.step = int(state["step"])


def as_schedule(spec: Schedule | Mixture | Mapping[str, float]) -> Schedule:
    """A schedule, or a mixture/dict meaning a constant schedule."""
    return spec if isinstance(spec, Schedule) else Constant(spec)
