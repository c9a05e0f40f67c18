"""SSIMULACRA 2.1's fixed parts, from libjxl (tools/ssimulacra2.cc, lib/jxl/cms/opsin_params.h):
the XYB constants, the 108 weights, the recursive Gaussian's taps and the sRGB curve.

Shared by the numpy passes (``ssimulacra2.py``) and the numba kernels
(``_numba_ssimulacra2.py``), which must use the same float32 values.
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["recursive_gaussian_taps"]

_F32 = np.float32
_NUM_SCALES = 6
_MIN_SIDE = 8  # libjxl stops at a scale whose input is smaller than 8 pixels on a side
_C2 = _F32(0.0009)

# Opsin absorbance of libjxl's XYB (lib/jxl/cms/opsin_params.h), rows mix linear R, G, B.
_OPSIN = np.array(
    [
        [0.30, 1.0 - 0.078 - 0.30, 0.078],
        [0.23, 1.0 - 0.078 - 0.23, 0.078],
        [0.24342268924547819, 0.20476744424496821, 1.0 - 0.24342268924547819 - 0.20476744424496821],
    ]
).astype(_F32)
_BIAS = _F32(0.0037930732552754493)
_BIAS_CBRT = _F32(0.0037930732552754493 ** (1.0 / 3.0))

# Msssim::Score(): for each channel (X, Y, B), scale (1:1 .. 1:32) and norm (1, 4), three
# weights in a row: SSIM', ringing (artifact), blurring (detail lost).
_WEIGHTS = np.array([
    0.0, 0.0007376606707406586, 0.0, 0.0, 0.0007793481682867309, 0.0,
    0.0, 0.0004371155730107379, 0.0, 1.1041726426657346, 0.00066284834129271,
    0.00015231632783718752, 0.0, 0.0016406437456599754, 0.0, 1.8422455520539298,
    11.441172603757666, 0.0, 0.0007989109436015163, 0.000176816438078653, 0.0,
    1.8787594979546387, 10.94906990605142, 0.0, 0.0007289346991508072, 0.9677937080626833,
    0.0, 0.00014003424285435884, 0.9981766977854967, 0.00031949755934435053,
    0.0004550992113792063, 0.0, 0.0, 0.0013648766163243398, 0.0, 0.0, 0.0, 0.0, 0.0,
    7.466890328078848, 0.0, 17.445833984131262, 0.0006235601634041466, 0.0, 0.0,
    6.683678146179332, 0.00037724407979611296, 1.027889937768264, 225.20515300849274, 0.0,
    0.0, 19.213238186143016, 0.0011401524586618361, 0.001237755635509985,
    176.39317598450694, 0.0, 0.0, 24.43300999870476, 0.28520802612117757,
    0.0004485436923833408, 0.0, 0.0, 0.0, 34.77906344483772, 44.835625328877896, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0008680556573291698, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0005313191874358747, 0.0, 0.00016533814161379112, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0004179171803251336, 0.0017290828234722833, 0.0, 0.0020827005846636437, 0.0, 0.0,
    8.826982764996862, 23.19243343998926, 0.0, 95.1080498811086, 0.9863978034400682,
    0.9834382792465353, 0.0012286405048278493, 171.2667255897307, 0.9807858872435379, 0.0,
    0.0, 0.0, 0.0005130064588990679, 0.0, 0.00010854057858411537,
])  # fmt: skip


def recursive_gaussian_taps(sigma: float = 1.5) -> np.ndarray:
    """The FIR taps ``h[0..N-1]`` (centre first; ``h[-k] = h[k]``) of libjxl's recursive Gaussian.

    libjxl's ``CreateRecursiveGaussian`` (Charalampidis 2016, three truncated cosines, radius
    ``N = round(3.2795 sigma + 0.2546)``) runs ``y_k[n] = n2_k (x[n-N-1] + x[n+N-1])
    - d1_k y_k[n-1] - y_k[n-2]``. Its poles lie on the unit circle at ``omega_k = k pi / 2N``
    with ``2N omega_k`` an odd multiple of pi, so the two inputs cancel each other's response
    after ``2N`` samples: the recursion is exactly a symmetric FIR filter of ``2N - 1`` taps
    (9 for sigma 1.5), here its impulse response computed in float64. ``FastGaussian`` reads
    zeros outside the image, which the FIR does the same way.
    """
    radius = round(3.2795 * sigma + 0.2546)
    omega = np.array([1.0, 3.0, 5.0]) * math.pi / (2.0 * radius)
    p = np.array([1.0, -1.0, 1.0]) / np.tan(0.5 * omega)
    r = np.array([1.0, -1.0, 1.0]) * p * p / np.sin(omega)
    rho = np.exp(-0.5 * sigma * sigma * omega * omega) / radius
    d13 = p[0] * r[1] - r[0] * p[1]
    zeta15 = (p[1] * r[2] - r[1] * p[2]) / d13
    zeta35 = (p[2] * r[0] - r[2] * p[0]) / d13
    a = np.array([p, r, [zeta15, zeta35, 1.0]])
    gamma = np.array(
        [1.0, radius * radius - sigma * sigma, zeta15 * rho[0] + zeta35 * rho[1] + rho[2]]
    )
    beta = np.linalg.solve(a, gamma)
    n2 = -beta * np.cos(omega * (radius + 1.0))
    d1 = -2.0 * np.cos(omega)
    # Impulse response at the centre of a long zero signal (input index N + 2N).
    length = 4 * radius + 1
    impulse = 3 * radius
    prev = np.zeros(3)
    prev2 = np.zeros(3)
    out = np.zeros(length)
    for n in range(-radius + 1, length):
        s = float(n - radius - 1 == impulse) + float(n + radius - 1 == impulse)
        y = n2 * s - d1 * prev - prev2
        prev2, prev = prev, y
        if n >= 0:
            out[n] = y.sum()
    return out[impulse : impulse + radius]


_TAPS = recursive_gaussian_taps(1.5).astype(_F32)
_TAPS.setflags(write=False)


@functools.lru_cache(maxsize=1)
def _srgb_to_linear() -> np.ndarray:
    """Linear sRGB in 0..1 of each 8-bit value (the IEC 61966-2-1 curve, float64 rounded once)."""
    v = np.arange(256) / 255.0
    lut = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(_F32)
    lut.setflags(write=False)
    return lut
