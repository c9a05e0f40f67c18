"""Verdicts: summaries + thresholds -> pass / warn / fail, with every failed check named.

Profiles live in ``dask.config`` under ``giflab.verdicts.profiles`` (YAML). A profile maps a
summary key, or one of the pair-level facts below, to thresholds ``fail-below``,
``warn-below``, ``fail-above``, ``warn-above``:

* ``composite_quality`` — GifLab's composite (its checker fails below 0.70, warns below 0.80);
* ``timing_drift`` — relative change of the total display time, ``|Tc - To| / To``;
* ``timing_drift_ms`` — the same change in milliseconds (a small share of a long GIF);
* ``frame_count_change`` — share of the original's distinct frames (frames a viewer can tell
  apart: each that differs from the one before) the compressed GIF no longer shows.

``strict`` and ``lenient`` also check ``ssimulacra2_mean`` (warn below 70, fail below 50 /
fail below 30, on the SSIMULACRA 2 README's scale); SSIMULACRA2 is opt-in, so the check is
skipped unless the metric was computed. ``default`` has no SSIMULACRA2 check.

A check whose value was not computed is listed as skipped; a value that is NaN makes the check
"unknown", which warns: a verdict never passes on a number nobody measured, unless the pair is
identical on screen (every frame equal, same timeline), when nothing is left to
measure and the check passes, still naming the value as missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from giflab_dask import config
from giflab_dask.errors import GiflabError

__all__ = ["Check", "Verdict", "evaluate", "load_profile"]

_KINDS = ("fail-below", "warn-below", "fail-above", "warn-above")
_ORDER = {"pass": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # pass | warn | fail | skipped
    value: float | None
    threshold: float | None = None
    rule: str | None = None  # e.g. "fail-below"
    message: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    status: str  # pass | warn | fail
    checks: tuple[Check, ...] = field(default_factory=tuple)
    profile: str = "default"

    @property
    def reasons(self) -> list[str]:
        """One line per check that warned or failed, naming value and threshold."""
        return [c.message for c in self.checks if c.status in ("warn", "fail")]

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "profile": self.profile,
            "reasons": self.reasons,
            "checks": [asdict(c) for c in self.checks],
        }


def load_profile(profile: str | Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """A named profile from config, or a mapping given directly; validated eagerly."""
    if profile is None:
        profile = str(config.get("verdicts.profile"))
    if isinstance(profile, str):
        profiles = config.get("verdicts.profiles") or {}
        if profile not in profiles:
            raise GiflabError(
                f"unknown verdict profile {profile!r}; configured: {', '.join(sorted(profiles))} "
                "(add one under giflab.verdicts.profiles)"
            )
        name, rules = profile, dict(profiles[profile])
    else:
        name, rules = "custom", dict(profile)
    for key, thresholds in rules.items():
        if not isinstance(thresholds, Mapping):
            raise GiflabError(f"profile {name!r}: {key} needs a mapping of thresholds")
        bad = set(thresholds) - set(_KINDS)
        if bad:
            raise GiflabError(
                f"profile {name!r}: {key} has unknown threshold(s) {sorted(bad)}; "
                f"use {', '.join(_KINDS)}"
            )
    return name, rules


def _check(
    key: str, value: float | None, thresholds: Mapping[str, float], identical: bool = False
) -> Check:
    if value is None:
        return Check(key, "skipped", None, message=f"{key}: not computed")
    if not math.isfinite(value):
        if identical:
            message = f"{key}: could not be measured (missing); the frames are identical"
            return Check(key, "pass", value, message=message)
        return Check(key, "warn", value, message=f"{key}: could not be measured (missing)")
    for rule in _KINDS:  # fail rules before warn rules
        if rule not in thresholds:
            continue
        limit = float(thresholds[rule])
        below = rule.endswith("below")
        if (value < limit) if below else (value > limit):
            level = rule.split("-")[0]
            relation = "<" if below else ">"
            return Check(key, level, value, limit, rule, f"{key} {value:.4g} {relation} {limit:g}")
    return Check(key, "pass", value, message=f"{key} {value:.4g} ok")


def evaluate(
    summaries: Mapping[str, float],
    profile: str | Mapping[str, Any] | None = None,
    *,
    identical: bool = False,
) -> Verdict:
    """Apply a profile's thresholds to a pair's summaries (plus its pair-level facts).

    ``identical``: the pair's displayed frames are equal everywhere, on the same timeline.
    """
    name, rules = load_profile(profile)
    checks = [
        _check(key, summaries.get(key), thresholds, identical) for key, thresholds in rules.items()
    ]
    worst = max(
        (c.status for c in checks if c.status in _ORDER), key=_ORDER.__getitem__, default="pass"
    )
    return Verdict(worst, tuple(checks), name)
