"""Result objects of a validated pair (the result store arrives with batch validation)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from giflab_dask.verdicts import Verdict

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PairResult"]


@dataclass
class PairResult:
    """Everything computed for one (original, compressed) pair.

    ``summaries`` maps ``<output>_<stat>`` (e.g. ``ssim_mean``, ``psnr_p5``) and the pair-level
    values (``composite_quality``, ``psnr_of_mean_mse``, ``timing_drift``,
    ``frame_count_change``) to floats; ``per_frame`` maps each metric output to its per-frame
    vector (one value per original frame, NaN where a frame could not be measured);
    ``mapping[i]`` is the compressed frame shown with original frame ``i``; ``missing`` names
    each metric that could not be computed and why.
    """

    original: str
    compressed: str
    original_key: str
    compressed_key: str
    summaries: dict[str, float]
    per_frame: dict[str, np.ndarray]
    mapping: np.ndarray
    alignment: dict[str, Any]
    verdict: Verdict
    missing: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.verdict.status

    def per_frame_frame(self) -> pd.DataFrame:
        """Per-frame vectors as a pandas DataFrame (index: original frame; ``compressed_frame``)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "per_frame_frame() needs pandas: pip install 'giflab-dask[notebook]'"
            ) from exc
        data = {"compressed_frame": self.mapping, **self.per_frame}
        frame = pd.DataFrame(data)
        frame.index.name = "original_frame"
        return frame

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no per-frame vectors)."""

        def clean(v: float) -> float | None:
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

        return {
            "original": self.original,
            "compressed": self.compressed,
            "original_key": self.original_key,
            "compressed_key": self.compressed_key,
            "verdict": self.verdict.to_dict(),
            "summaries": {k: clean(v) for k, v in self.summaries.items()},
            "missing": self.missing,
            "alignment": self.alignment,
        }
