"""A judge panel: K prompt variants ("simulated annotators"), each carrying a few
in-context examples of pairs humans decided, preferring pairs where the judge was wrong.
Pure: plain values in, plain values out.

The example sets are frozen into a *judge version* named by a hash of what the panel is
shown (which pairs, with which human labels, in which variant). A new version starts its
thresholds from its own evidence, and a pair shown to the panel as an example never
counts as evidence for it.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """A human-decided pair that may become an example."""

    pair_id: str
    human: str  # A | B (stored order)
    judge: str | None  # the judge's final label (None: it gave none)

    @property
    def corrected(self) -> bool:
        """Humans corrected the judge here (or the judge could not decide)."""
        return self.judge != self.human


@dataclass(frozen=True)
class Example:
    """An example as the panel sees it."""

    prompt: str
    response_a: str
    response_b: str
    label: str  # A | B, in the order shown


@dataclass(frozen=True)
class Version:
    """The frozen example sets of a panel: one tuple of (pair id, label) per variant."""

    variants: tuple[tuple[tuple[str, str], ...], ...]

    @property
    def hash(self) -> str:
        blob = json.dumps([list(map(list, v)) for v in self.variants])
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def example_ids(self) -> frozenset[str]:
        return frozenset(pid for v in self.variants for pid, _ in v)

    def to_json(self) -> str:
        return json.dumps([list(map(list, v)) for v in self.variants])

    @staticmethod
    def from_json(text: str) -> Version:
        return Version(tuple(tuple((p, lab) for p, lab in v) for v in json.loads(text)))


def choose(candidates: Sequence[Candidate], variants: int, per_variant: int, seed: int) -> Version:
    """``variants`` example sets of up to ``per_variant`` pairs each, no pair in two sets:
    pairs humans corrected the judge on first (they teach the most), then others; drawn
    reproducibly from ``seed``. Fewer candidates give fewer (or smaller) sets; none give
    one empty set (a single prompt)."""
    rng = random.Random(seed)
    corrected = [c for c in candidates if c.corrected and c.human in ("A", "B")]
    rest = [c for c in candidates if not c.corrected and c.human in ("A", "B")]
    rng.shuffle(corrected)
    rng.shuffle(rest)
    # each variant takes its share of the corrected pairs first, then of the others
    pool = (corrected + rest)[: variants * per_variant]
    sets = [pool[i::variants] for i in range(variants)]
    chosen = tuple(tuple((c.pair_id, c.human) for c in s) for s in sets if s)
    return Version(chosen or ((),))
