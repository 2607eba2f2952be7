"""Sticky, deterministic assignment of a subject (an API key or a user) to a variant.

The bucket is the first 8 bytes of SHA-256 over the experiment id and the subject, read as a
fraction of 2**64: the same subject gets the same variant in every process, replica and
restart (never Python's salted ``hash()``), and distinct subjects spread uniformly, so each
variant's share of subjects converges to its traffic share.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass

from ragserve.errors import InputError

SHARE_TOLERANCE = 1e-9
_SCALE = float(2**64)


@dataclass(frozen=True)
class Split:
    """Variants and their traffic shares, in a fixed order; shares are positive and sum to 1."""

    variants: tuple[str, ...]
    shares: tuple[float, ...]

    @classmethod
    def of(cls, shares: Mapping[str, float]) -> Split:
        """Validate ``{variant: share}``; raises ``InputError`` with the reason."""
        if len(shares) < 2:
            raise InputError("an experiment needs at least two variants")
        for name, share in shares.items():
            if not name or not name.strip():
                raise InputError("variant names must not be empty")
            if not math.isfinite(share) or share <= 0:
                raise InputError(f"variant {name!r} needs a share above 0, got {share}")
        total = math.fsum(shares.values())
        if abs(total - 1.0) > SHARE_TOLERANCE:
            raise InputError(f"variant shares must sum to 1, got {total:g}")
        return cls(tuple(shares), tuple(shares.values()))

    def assign(self, experiment_id: str, subject: str) -> str:
        """The subject's variant: stable for (experiment, subject), proportional to shares."""
        point = bucket(experiment_id, subject)
        cumulative = 0.0
        for variant, share in zip(self.variants, self.shares, strict=True):
            cumulative += share
            if point < cumulative:
                return variant
        return self.variants[-1]  # the shares' rounding left a sliver at the top


def bucket(experiment_id: str, subject: str) -> float:
    """A uniform point in [0, 1) fixed by (experiment, subject)."""
    digest = hashlib.sha256(f"{experiment_id}\x00{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE
