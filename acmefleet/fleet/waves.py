"""Waves: ``1,10%,100%`` means a canary of one host, then up to 10 % of the fleet, then all."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class WaveSpecError(ValueError):
    pass


def parse_sizes(spec: str) -> list[str]:
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise WaveSpecError("--waves needs at least one size, e.g. 1,10%,100%")
    for part in parts:
        number = part[:-1] if part.endswith("%") else part
        if not number.isdigit() or int(number) == 0 or (part.endswith("%") and int(number) > 100):
            raise WaveSpecError(f"--waves: {part!r} is neither a count nor a percentage 1-100%")
    return parts


def cumulative_targets(parts: Sequence[str], total: int) -> list[int]:
    """How many hosts are done after each wave (a percentage is of the whole fleet)."""
    targets: list[int] = []
    for part in parts:
        size = math.ceil(total * int(part[:-1]) / 100) if part.endswith("%") else int(part)
        targets.append(min(total, max(size, targets[-1] if targets else 0)))
    if not targets or targets[-1] < total:
        targets.append(total)
    return [t for i, t in enumerate(targets) if i == 0 or t > targets[i - 1]]


def split(items: Sequence[T], spec: str) -> list[list[T]]:
    targets = cumulative_targets(parse_sizes(spec), len(items))
    waves, start = [], 0
    for end in targets:
        if end > start:
            waves.append(list(items[start:end]))
        start = end
    return waves


class BudgetSpecError(ValueError):
    pass


@dataclass(frozen=True)
class Budget:
    """``--max-fail``: how many failed hosts a wave may have, a count or a share of the wave."""

    amount: int = 0
    percent: bool = False

    def allowed(self, wave_size: int) -> int:
        return math.floor(wave_size * self.amount / 100) if self.percent else self.amount

    def __str__(self) -> str:
        return f"{self.amount}{'%' if self.percent else ''}"


def parse_budget(spec: str | None) -> Budget:
    """``N`` or ``P%`` (0-100); None is 0: any failure stops the roll-out."""
    if spec is None:
        return Budget()
    text = spec.strip()
    percent = text.endswith("%")
    number = text[:-1] if percent else text
    if not number.isdigit() or (percent and int(number) > 100):
        raise BudgetSpecError(f"--max-fail: {spec!r} is neither a count nor a percentage 0-100%")
    return Budget(int(number), percent)


def failure_budget(spec: str | None, wave_size: int) -> int:
    """How many failed hosts a wave may have (``N`` or ``P%`` of the wave); default 0."""
    return parse_budget(spec).allowed(wave_size)
