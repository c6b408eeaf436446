"""Parameter values: a fixed number or a distribution drawn once per path.

A scenario parameter such as ``referrals.per_team_per_month`` may be written as
``4.2`` or as ``{dist: triangular, low: 3, mode: 4.2, high: 5}``. Each kind of
distribution knows its support (checked against the field's allowed range when
the scenario is validated) and its inverse CDF, so that per-path values are
``ppf(u)`` of one uniform per path and parameter: changing one parameter's
distribution never moves the draws of another (common random numbers).
"""
from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


def _special():
    """scipy.special, imported on first use: a scenario of fixed values never needs it,
    and leaving it out keeps the start of a run under a second."""
    from scipy import special
    return special


def _kept_mass(za: float, zb: float) -> float:
    """Phi(zb) - Phi(za), from the tail where it keeps its precision: Phi near 1 has none
    left (1 - Phi(9) is below a double's step at 1), so a range above the mean is
    measured as its mirror image below it."""
    ndtr = _special().ndtr
    return float(ndtr(-za) - ndtr(-zb)) if za > 0 else float(ndtr(zb) - ndtr(za))


def _truncated_std_normal_ppf(u, za: float, zb: float) -> np.ndarray:
    """Inverse CDF of the standard normal truncated to [za, zb] (increasing in u); a
    range above the mean is drawn as its mirror image (as kernels.truncation does), and
    one with no representable mass (beyond about 37 sd) at the bound nearest the mean."""
    sp = _special()
    u = np.asarray(u, dtype=np.float64)
    flip = za > 0
    plo, phi = (sp.ndtr(-zb), sp.ndtr(-za)) if flip else (sp.ndtr(za), sp.ndtr(zb))
    if not phi > plo:
        return np.full(u.shape, za if flip else zb)
    if flip:
        return -sp.ndtri(plo + (1.0 - u) * (phi - plo))
    return sp.ndtri(plo + u * (phi - plo))


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

    @property
    def is_fixed(self) -> bool:
        return False

    def support(self) -> tuple[float, float]:
        raise NotImplementedError

    def ppf(self, u: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def mean(self) -> float:
        raise NotImplementedError


class Fixed(_Dist):
    """A known value (what a plain number in the YAML file becomes)."""

    dist: Literal["fixed"] = "fixed"
    value: float

    @property
    def is_fixed(self) -> bool:
        return True

    def support(self):
        return (self.value, self.value)

    def ppf(self, u):
        return np.full(np.shape(u), self.value, dtype=np.float64)

    def mean(self):
        return self.value


class Uniform(_Dist):
    dist: Literal["uniform"]
    low: float
    high: float

    @model_validator(mode="after")
    def _order(self):
        if not self.low < self.high:
            raise ValueError("uniform needs low < high")
        return self

    def support(self):
        return (self.low, self.high)

    def ppf(self, u):
        return self.low + (self.high - self.low) * np.asarray(u, dtype=np.float64)

    def mean(self):
        return 0.5 * (self.low + self.high)


class Normal(_Dist):
    """Normal, optionally truncated to [low, high]."""

    dist: Literal["normal"]
    mean_: float = Field(alias="mean")
    sd: float = Field(gt=0)
    low: float = -math.inf
    high: float = math.inf
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False,
                              frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _order(self):
        if not self.low < self.high:
            raise ValueError("normal needs low < high")
        return self

    def support(self):
        return (self.low, self.high)

    def _z_bounds(self):
        return (self.low - self.mean_) / self.sd, (self.high - self.mean_) / self.sd

    def ppf(self, u):
        x = self.mean_ + self.sd * _truncated_std_normal_ppf(u, *self._z_bounds())
        return np.clip(x, self.low, self.high)

    def mean(self):
        a, b = self._z_bounds()
        mass = _kept_mass(a, b)
        if mass <= 0.0:   # all at the bound nearest the mean
            return self.low if a > 0 else self.high
        pdf = lambda z: math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi) if math.isfinite(z) else 0.0  # noqa: E731
        return self.mean_ + self.sd * (pdf(a) - pdf(b)) / mass


class LogNormal(_Dist):
    """Lognormal given by its median and sigma (the sd of the log), optionally truncated."""

    dist: Literal["lognormal"]
    median: float = Field(gt=0)
    sigma: float = Field(gt=0)
    low: float = Field(default=0.0, ge=0)
    high: float = math.inf

    @model_validator(mode="after")
    def _order(self):
        if not self.low < self.high:
            raise ValueError("lognormal needs low < high")
        return self

    def support(self):
        return (self.low, self.high)

    def _z_bounds(self):
        z = lambda x: (math.log(x / self.median) / self.sigma) if x > 0 else -math.inf  # noqa: E731
        return z(self.low), (z(self.high) if math.isfinite(self.high) else math.inf)

    def ppf(self, u):
        return self.median * np.exp(self.sigma * _truncated_std_normal_ppf(u, *self._z_bounds()))

    def mean(self):
        a, b = self._z_bounds()
        mass = _kept_mass(a, b)
        if mass <= 0.0:   # all at the bound nearest the median
            return self.low if a > 0 else self.high
        # E[X; a < Z < b] for a lognormal, divided by the kept mass
        m = self.median * math.exp(0.5 * self.sigma**2)
        return m * _kept_mass(a - self.sigma, b - self.sigma) / mass


class Beta(_Dist):
    """Beta(a, b) rescaled to [low, high] (default [0, 1])."""

    dist: Literal["beta"]
    a: float = Field(gt=0)
    b: float = Field(gt=0)
    low: float = 0.0
    high: float = 1.0

    @model_validator(mode="after")
    def _order(self):
        if not self.low < self.high:
            raise ValueError("beta needs low < high")
        return self

    def support(self):
        return (self.low, self.high)

    def ppf(self, u):
        return self.low + (self.high - self.low) * _special().betaincinv(self.a, self.b, u)

    def mean(self):
        return self.low + (self.high - self.low) * self.a / (self.a + self.b)


class Triangular(_Dist):
    dist: Literal["triangular"]
    low: float
    mode: float
    high: float

    @model_validator(mode="after")
    def _order(self):
        if not (self.low <= self.mode <= self.high and self.low < self.high):
            raise ValueError("triangular needs low <= mode <= high and low < high")
        return self

    def support(self):
        return (self.low, self.high)

    def ppf(self, u):
        u = np.asarray(u, dtype=np.float64)
        lo, mode, hi = self.low, self.mode, self.high
        c = (mode - lo) / (hi - lo)
        left = lo + np.sqrt(u * (hi - lo) * (mode - lo))
        right = hi - np.sqrt((1 - u) * (hi - lo) * (hi - mode))
        return np.where(u < c, left, right)

    def mean(self):
        return (self.low + self.mode + self.high) / 3.0


Distribution = Annotated[
    Fixed | Uniform | Normal | LogNormal | Beta | Triangular,
    Field(discriminator="dist"),
]

DISTRIBUTION_NAMES = ("fixed", "uniform", "normal", "lognormal", "beta", "triangular")
