"""Perceptual full-reference pair kernels: FSIM / FSIMc and GMSD.

Both follow the published definitions and the authors' MATLAB code (``FeatureSIM.m`` with its
``phasecong2``, and ``GMSD.m``), not GifLab's approximations that share their names. They obey
the kernel contract of :mod:`giflab_dask.kernels`: pure numpy/scipy, ``(t, H, W, 3)`` uint8
blocks in, one float64 per frame out, a loop over frames, NaN where a frame cannot be measured.

The log-Gabor filter bank of FSIM depends only on the (downsampled) frame shape, so it is built
once per shape and kept in a small LRU cache (:func:`_log_gabor_bank`); the arrays in the cache
are read-only, so threads can share them. One forward FFT per frame serves all 16 filters.

``backend="auto"`` (the default) runs the per-pixel passes in the fused numba kernels of
:mod:`giflab_dask.kernels._numba_perceptual` when numba can be imported: the downsampling and
colour weighting, the gradient magnitude, each phase-congruency orientation and its median. They
repeat the numpy code's float32 operations in the same order and select the same median
elements, so both backends give the same bits (tests/test_kernels_perceptual_numba.py). What
remains is the FFTs, 2 forward and 32 inverse per frame pair.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import scipy.fft

from giflab_dask.kernels import _numba, _numba_perceptual
from giflab_dask.kernels._luma import check_bool, check_pair

__all__ = ["fsim", "gmsd"]

# Work precision of the per-pixel maps: float32 agrees with the float64 transcription of the
# authors' code to ~1e-7 (FSIM) and ~1e-8 (GMSD) (tests/test_kernels_perceptual.py), and FSIM
# runs in about half the time. Sums over a frame accumulate in float64.
_WORK = np.float32

# YIQ rows used by FeatureSIM.m (NTSC, rounded to three decimals as in the authors' code).
_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
    dtype=np.float64,
)
# MATLAB ``rgb2gray`` weights (first row of inv of the YIQ->RGB matrix, printed 0.2989, 0.5870,
# 0.1140), which GMSD's authors apply before ``GMSD.m``.
_RGB2GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])

# FSIM constants (paper, Table I, and FeatureSIM.m).
_FSIM_T1 = 0.85
_FSIM_T2 = 160.0
_FSIM_T3 = 200.0
_FSIM_T4 = 200.0
_FSIM_LAMBDA = 0.03
# phasecong2 parameters as set in FeatureSIM.m.
_PC_NSCALE = 4
_PC_NORIENT = 4
_PC_MIN_WAVELENGTH = 6.0
_PC_MULT = 2.0
_PC_SIGMA_ON_F = 0.55
_PC_DTHETA_ON_SIGMA = 1.2
_PC_K = 2.0
_PC_EPSILON = 1e-4
_PC_LOWPASS_CUTOFF = 0.45
_PC_LOWPASS_ORDER = 15

# GMSD constant for the 0-255 range (paper, Sec. III; GMSD.m ``T = 170``).
_GMSD_C = 170.0

# Smallest (downsampled) luma on which the 3x3 gradient operators (Scharr for FSIM, Prewitt
# for GMSD) have at least one pixel whose whole window lies inside the frame. Below this every
# gradient value is made of the zero padding, so the metric would describe the padding.
_MIN_GRADIENT_SIDE = 3


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------


def _load_kernels(backend: str, name: str) -> _numba_perceptual.Kernels | None:
    """The numba kernels for a checked ``backend``, or ``None`` for the numpy code."""
    if backend == "numpy":
        return None
    kernels = _numba_perceptual.load()
    if kernels is None and backend == "numba":
        raise ImportError(
            f"{name}: backend='numba' needs numba, which cannot be imported or compiled here. "
            "Install it with pip install 'giflab-dask[numba]', or use backend='auto' (numba "
            "when available, else numpy) or 'numpy'; the values are the same."
        )
    return kernels


# --------------------------------------------------------------------------------------------
# Shared building blocks (all on 2-D float arrays)
# --------------------------------------------------------------------------------------------


def _matlab_round(x: float) -> int:
    """MATLAB ``round`` for x >= 0: halves go away from zero (Python's ``round`` goes to even)."""
    return math.floor(x + 0.5)


def _block_sums(frame: np.ndarray, factor: int) -> np.ndarray:
    """Per-channel sums of ``conv2(channel, ones(F), 'same')`` sampled at ``1:F:end``.

    MATLAB's ``'same'`` keeps the centre of the full convolution, so the F x F window of output
    ``j`` covers input ``j - (F-1)//2 .. j - (F-1)//2 + F - 1`` with zeros outside the image.
    Only the sampled outputs are computed: the zero-padded frame is cut into F x F blocks,
    whose sums are exact in an unsigned integer type.
    """
    rows, cols, channels = frame.shape
    lead = (factor - 1) // 2
    n_r = -(-rows // factor)
    n_c = -(-cols // factor)
    padded = np.zeros((n_r * factor, n_c * factor, channels), np.min_scalar_type(255 * factor**2))
    keep_r = min(rows, n_r * factor - lead)
    keep_c = min(cols, n_c * factor - lead)
    padded[lead : lead + keep_r, lead : lead + keep_c] = frame[:keep_r, :keep_c]
    # Strided slices rather than reshape + sum(axis=(1, 3)), which numpy does slowly.
    row_sums = padded[0::factor].copy()
    for k in range(1, factor):
        row_sums += padded[k::factor]
    sums = row_sums[:, 0::factor].copy()
    for k in range(1, factor):
        sums += row_sums[:, k::factor]
    return sums


def _weighted_planes(
    frame: np.ndarray,
    weights: np.ndarray,
    factor: int,
    kernels: _numba_perceptual.Kernels | None,
) -> list[np.ndarray]:
    """``conv2(w . rgb, fspecial('average', F), 'same')(1:F:end, 1:F:end)`` for each row ``w``
    of ``weights`` (float64, one linear colour transform per row), as float32 planes."""
    if factor == 1:
        rgb = frame.astype(_WORK)
        return [rgb @ w.astype(_WORK) for w in weights]
    # Both steps are linear: weigh the exact integer block sums, in float64 on the smaller
    # array, and round once to float32.
    weights = np.ascontiguousarray(weights / (factor * factor), dtype=np.float64)
    if kernels is not None:
        n_r, n_c = -(-frame.shape[0] // factor), -(-frame.shape[1] // factor)
        planes = np.empty((len(weights), n_r, n_c), dtype=_WORK)
        kernels.block_planes(np.ascontiguousarray(frame), factor, weights, planes)
        return list(planes)
    sums = _block_sums(frame, factor)
    red, green, blue = (sums[..., ch] for ch in range(3))
    return [(red * w[0] + green * w[1] + blue * w[2]).astype(_WORK) for w in weights]


def _gradient_magnitude(
    img: np.ndarray,
    smooth: tuple[float, float, float],
    kernels: _numba_perceptual.Kernels | None,
) -> np.ndarray:
    """Magnitude of a separable 3x3 gradient, ``conv2(img, k, 'same')`` with zero padding.

    The x kernel is ``outer(smooth, [1, 0, -1])`` and the y kernel its transpose: Scharr
    ``(3, 10, 3)/16`` for FSIM, Prewitt ``(1, 1, 1)/3`` for GMSD. The sign convention of the
    kernels does not matter for the magnitude.
    """
    a, b, c = (img.dtype.type(v) for v in smooth)
    if kernels is not None:
        out = np.empty_like(img)
        kernels.gradient_magnitude(np.ascontiguousarray(img), a, b, c, out)
        return out
    p = np.pad(img, 1)
    dx = p[:, 2:] - p[:, :-2]  # (rows + 2, cols): centred difference along x
    gx = a * dx[:-2] + b * dx[1:-1] + c * dx[2:]
    dy = p[2:, :] - p[:-2, :]  # (rows, cols + 2)
    gy = a * dy[:, :-2] + b * dy[:, 1:-1] + c * dy[:, 2:]
    return np.sqrt(gx * gx + gy * gy)


def _similarity(a: np.ndarray, b: np.ndarray, constant: float) -> np.ndarray:
    c = a.dtype.type(constant)
    return (2 * a * b + c) / (a * a + b * b + c)


# --------------------------------------------------------------------------------------------
# Phase congruency (Kovesi's phasecong2 as shipped inside FeatureSIM.m)
# --------------------------------------------------------------------------------------------


class _LogGaborBank(NamedTuple):
    filters: np.ndarray  # (norient, nscale, rows, cols), work dtype, read-only
    noise_coef: np.ndarray  # (norient,) float64: threshold T_o = noise_coef[o] * sqrt(median_o)


def _normalised_grid(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Kovesi's frequency grid in +-0.5 (odd sizes are divided by n - 1, as in his code)."""

    def axis(n: int) -> np.ndarray:
        if n % 2:
            return np.arange(-(n - 1) / 2, (n - 1) / 2 + 1) / (n - 1)
        return np.arange(-n / 2, n / 2) / n

    x, y = np.meshgrid(axis(cols), axis(rows))
    return x, y


@functools.lru_cache(maxsize=4)
def _log_gabor_bank(rows: int, cols: int) -> _LogGaborBank:
    """Filters and noise constants of phasecong2 for one image shape (at least 2 x 2)."""
    x, y = _normalised_grid(rows, cols)
    radius_c = np.sqrt(x * x + y * y)
    lowpass = np.fft.ifftshift(
        1.0 / (1.0 + (radius_c / _PC_LOWPASS_CUTOFF) ** (2 * _PC_LOWPASS_ORDER))
    )
    radius = np.fft.ifftshift(radius_c)
    theta = np.fft.ifftshift(np.arctan2(-y, x))
    radius[0, 0] = 1.0
    sintheta = np.sin(theta)
    costheta = np.cos(theta)

    log_gabor = []
    for s in range(_PC_NSCALE):
        wavelength = _PC_MIN_WAVELENGTH * _PC_MULT**s
        fo = 1.0 / wavelength
        lg = np.exp(-(np.log(radius / fo) ** 2) / (2 * math.log(_PC_SIGMA_ON_F) ** 2))
        lg *= lowpass
        lg[0, 0] = 0.0
        log_gabor.append(lg)

    theta_sigma = math.pi / _PC_NORIENT / _PC_DTHETA_ON_SIGMA
    rayleigh = (math.sqrt(math.pi / 2) + _PC_K * math.sqrt(2 - math.pi / 2)) / 1.7
    filters = np.empty((_PC_NORIENT, _PC_NSCALE, rows, cols), dtype=_WORK)
    noise_coef = np.empty(_PC_NORIENT)
    for o in range(_PC_NORIENT):
        angl = o * math.pi / _PC_NORIENT
        ds = sintheta * math.cos(angl) - costheta * math.sin(angl)
        dc = costheta * math.cos(angl) + sintheta * math.sin(angl)
        dtheta = np.abs(np.arctan2(ds, dc))
        spread = np.exp(-(dtheta**2) / (2 * theta_sigma**2))
        bank_o = np.stack([lg * spread for lg in log_gabor])  # float64
        filters[o] = bank_o
        # Noise model of phasecong2: noisePower = (median|EO_1|^2 / ln 2) / sum(filter_1^2);
        # EstNoiseEnergy2 = noisePower * (2 sum An2 + 4 sum AiAj), whose bracket equals
        # 2 * sum((sum_s ifftFilt_s)^2); tau = sqrt(EstNoiseEnergy2 / 2);
        # T = (tau sqrt(pi/2) + k sqrt(2 - pi/2) tau) / 1.7.
        em_n = float(np.sum(bank_o[0] ** 2))
        ifft_filt = np.fft.ifft2(bank_o, axes=(-2, -1)).real * math.sqrt(rows * cols)
        pair_sum = float(np.sum(ifft_filt.sum(axis=0) ** 2))
        noise_coef[o] = math.sqrt(pair_sum / (math.log(2.0) * em_n)) * rayleigh
    filters.setflags(write=False)
    noise_coef.setflags(write=False)
    return _LogGaborBank(filters, noise_coef)


def _median_of_squares(values: np.ndarray) -> float:
    """``np.median(np.square(values))`` of a float32 array of values >= 0, partitioning
    ``values`` in place: squaring is monotonic there, so the middle elements of the squares
    are the squares of the middle elements, and only those two are squared and averaged."""
    flat = values.reshape(-1)
    k = flat.size // 2
    if flat.size % 2:
        flat.partition(k)
        return float(flat[k] * flat[k])
    flat.partition((k - 1, k))
    low, high = flat[k - 1], flat[k]
    return float((low * low + high * high) / flat.dtype.type(2))


def _orientation_numpy(
    eo: np.ndarray, eps: np.floating, an_all: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One orientation of phasecong2 from its responses ``eo`` (nscale, rows, cols).

    Returns the energy before the noise threshold and ``|EO_0|``; adds ``sum_s |EO_s|`` to
    ``an_all``. The numba kernel ``_numba_perceptual._orientation`` does the same operations.
    """
    even = eo.real
    odd = eo.imag
    sum_e = even.sum(axis=0)
    sum_o = odd.sum(axis=0)
    x_energy = np.sqrt(sum_e * sum_e + sum_o * sum_o)
    x_energy += eps
    mean_e = sum_e / x_energy
    mean_o = sum_o / x_energy
    # Energy = sum_s (E_s MeanE + O_s MeanO - |E_s MeanO - O_s MeanE|); the first two terms
    # summed over s are sumE MeanE + sumO MeanO.
    deviation = even * mean_o
    deviation -= odd * mean_e
    np.abs(deviation, out=deviation)
    energy = sum_e * mean_e
    energy += sum_o * mean_o
    energy -= deviation.sum(axis=0)
    # |EO_s| as sqrt(E^2 + O^2) in float32, not np.abs: numpy's complex abs is not correctly
    # rounded (it scales by the larger part), and this is what the numba kernel can repeat.
    an = np.square(even)
    an += np.square(odd)
    np.sqrt(an, out=an)
    an_all += an.sum(axis=0)
    return energy, an[0]


def _phase_congruency(
    img: np.ndarray, bank: _LogGaborBank, kernels: _numba_perceptual.Kernels | None
) -> np.ndarray:
    """phasecong2's ``ResultPC`` of a 2-D luma image (work dtype), ``EnergyAll ./ AnAll``.

    Where ``AnAll`` is exactly 0 (a constant image: every filter response is 0) PC is 0, the
    limit of Kovesi's ``E / (sum An + eps)``; phasecong2 itself would give 0/0 there.
    ``kernels`` are the numba kernels, or ``None`` for numpy (same values).
    """
    if not np.any(img != img.flat[0]):
        return np.zeros(img.shape, dtype=img.dtype)
    dtype = img.dtype.type
    eps = dtype(_PC_EPSILON)
    imagefft = scipy.fft.fft2(img)
    # EO{s,o} for the 4 scales of one orientation at once, in one reused buffer.
    responses = np.empty((_PC_NSCALE, *img.shape), dtype=imagefft.dtype)
    energy_all = np.zeros(img.shape, dtype=img.dtype)
    an_all = np.zeros(img.shape, dtype=img.dtype)
    energy = np.empty(img.shape, dtype=img.dtype)
    an0 = np.empty(img.shape, dtype=img.dtype)
    for o in range(_PC_NORIENT):
        np.multiply(imagefft, bank.filters[o], out=responses)
        eo = scipy.fft.ifft2(responses, axes=(-2, -1), overwrite_x=True)
        if kernels is None:
            energy, an0 = _orientation_numpy(eo, eps, an_all)
        else:
            eo = np.ascontiguousarray(eo).reshape(_PC_NSCALE, -1)
            kernels.orientation(eo, eps, energy.reshape(-1), an_all.reshape(-1), an0.reshape(-1))
        # Noise threshold T_o from the median of |EO_0|^2 (Rayleigh model, see the bank).
        if kernels is None:
            median = _median_of_squares(an0)
        else:
            median = float(kernels.median_of_squares(an0.reshape(-1)))
        noise = dtype(bank.noise_coef[o] * math.sqrt(median))
        if kernels is None:
            energy -= noise
            np.maximum(energy, 0, out=energy)
            energy_all += energy
        else:
            kernels.threshold(energy.reshape(-1), noise, energy_all.reshape(-1))
    pc = np.zeros(img.shape, dtype=img.dtype)
    np.divide(energy_all, an_all, out=pc, where=an_all > 0)
    return pc


# --------------------------------------------------------------------------------------------
# FSIM
# --------------------------------------------------------------------------------------------


def _fsim_downsample_factor(rows: int, cols: int) -> int:
    return max(1, _matlab_round(min(rows, cols) / 256))


def _fsim_frame(
    ref: np.ndarray, dis: np.ndarray, chroma: bool, kernels: _numba_perceptual.Kernels | None
) -> float:
    rows, cols = ref.shape[:2]
    factor = _fsim_downsample_factor(rows, cols)
    n_r, n_c = -(-rows // factor), -(-cols // factor)
    if min(n_r, n_c) < _MIN_GRADIENT_SIDE:
        return math.nan

    weights = _YIQ if chroma else _YIQ[:1]
    (y1, *iq1), (y2, *iq2) = (
        _weighted_planes(frame, weights, factor, kernels) for frame in (ref, dis)
    )

    bank = _log_gabor_bank(n_r, n_c)
    pc1 = _phase_congruency(y1, bank, kernels)
    pc2 = _phase_congruency(y2, bank, kernels)
    scharr = (3 / 16, 10 / 16, 3 / 16)
    g1 = _gradient_magnitude(y1, scharr, kernels)
    g2 = _gradient_magnitude(y2, scharr, kernels)

    sim = _similarity(pc1, pc2, _FSIM_T1) * _similarity(g1, g2, _FSIM_T2)
    if chroma:
        prod = _similarity(iq1[0], iq2[0], _FSIM_T3) * _similarity(iq1[1], iq2[1], _FSIM_T4)
        # MATLAB: real((S_I .* S_Q) .^ lambda); a negative base has the principal complex power
        # |p|^lambda * exp(i*pi*lambda), whose real part carries cos(pi*lambda).
        chroma_term = np.abs(prod) ** _WORK(_FSIM_LAMBDA)
        chroma_term[prod < 0] *= _WORK(math.cos(math.pi * _FSIM_LAMBDA))
        sim *= chroma_term
    pcm = np.maximum(pc1, pc2)
    den = float(np.sum(pcm, dtype=np.float64))
    if den == 0.0:
        return math.nan
    return float(np.sum(sim * pcm, dtype=np.float64)) / den


def fsim(
    original: np.ndarray, compressed: np.ndarray, *, chroma: bool = False, backend: str = "auto"
) -> np.ndarray:
    """Feature Similarity index (FSIM, or FSIMc with ``chroma=True``) per frame.

    Higher is better; identical frames give 1.

    Parameters
    ----------
    original, compressed : ndarray, shape (t, H, W, 3), uint8
        Aligned blocks of RGB frames; frame ``i`` of one is compared with frame ``i`` of the
        other.
    chroma : bool, default False
        False gives FSIM, on luma only. True gives FSIMc, which multiplies the local similarity
        by the chromatic term ``(S_I * S_Q) ** lambda`` of the I and Q channels of YIQ.
    backend : {"auto", "numba", "numpy"}, optional
        How the per-pixel arithmetic of phase congruency runs: ``"auto"`` uses the fused numba
        kernel when numba can be imported, else numpy; ``"numba"`` requires it. The values
        are the same (the numba kernel repeats numpy's float32 operations in their order).

    Returns
    -------
    ndarray, shape (t,), float64
        One value per frame, NaN where the frame cannot be measured (see Notes).

    Notes
    -----
    Definition (Zhang et al. 2011, Eqs. 1-8, and the authors' ``FeatureSIM.m``), per frame:

    1. YIQ: ``Y = 0.299 R + 0.587 G + 0.114 B``, ``I = 0.596 R - 0.274 G - 0.322 B``,
       ``Q = 0.211 R - 0.523 G + 0.312 B`` (0-255 scale).
    2. Downsampling, as the authors' code does before anything else: with
       ``F = max(1, round(min(H, W) / 256))`` (MATLAB rounding, halves up), each channel is
       filtered with an F x F averaging kernel (``conv2(.., fspecial('average', F), 'same')``,
       zeros outside the frame) and every F-th row and column is kept, starting at the first.
       Frames with ``min(H, W) < 384`` are used as they are (F = 1); for F >= 3 the first
       sampled row and column average in some of the zero padding, exactly as in the authors'
       code.
    3. Phase congruency PC of Y by Kovesi's log-Gabor method as in ``phasecong2`` inside
       ``FeatureSIM.m``: 4 scales, 4 orientations, minimum wavelength 6, scale factor 2,
       sigmaOnf 0.55, dThetaOnSigma 1.2, Butterworth low-pass (cutoff 0.45, order 15),
       noise threshold ``k = 2`` standard deviations from the median energy of the smallest
       scale (Rayleigh model), divided by 1.7; ``PC = sum_o max(E_o - T_o, 0) / sum_o,s A_os``.
       The filtering is FFT-based (circular), with the filters cached per frame shape.
    4. Gradient magnitude G of Y with the Scharr operator ``[3 0 -3; 10 0 -10; 3 0 -3] / 16``
       (zero padding, as ``conv2(.., 'same')``: the frame's outermost ring sees a step to
       black, identical in both frames only when their border pixels agree).
    5. ``S_PC = (2 PC1 PC2 + T1) / (PC1^2 + PC2^2 + T1)``,
       ``S_G = (2 G1 G2 + T2) / (G1^2 + G2^2 + T2)`` with ``T1 = 0.85``, ``T2 = 160``;
       for FSIMc also ``S_I``, ``S_Q`` with ``T3 = T4 = 200`` and ``lambda = 0.03``, the
       chromatic factor being ``real((S_I S_Q) ** lambda)`` as in the MATLAB code.
    6. ``FSIM = sum(S_PC S_G [S_chroma] PCm) / sum(PCm)`` with ``PCm = max(PC1, PC2)``.

    NaN, never a default, when

    * the downsampled frame is smaller than 3 x 3 (``min(H, W) < 3``): the Scharr window then
      never lies inside the frame and every gradient is made of zero padding;
    * ``sum(PCm) == 0``, i.e. neither frame has any phase-congruent structure, typically two
      flat (single-colour) frames: FSIM's weighted mean is then 0/0.

    One departure from ``phasecong2``: it divides ``EnergyAll ./ AnAll`` without an epsilon,
    which is 0/0 for a flat frame and makes the authors' FSIM NaN even against a textured
    frame. Here a pixel with ``AnAll == 0`` (in practice: an exactly constant frame, whose
    filter responses are all zero) has PC 0, the limit of Kovesi's ``E / (eps + sum A)``; a
    flat frame against a textured one therefore gets a finite, low FSIM.

    Per-pixel maps are computed in float32 (agreeing with a float64 transcription of the
    authors' code to ~1e-7) and summed in float64. The cost is mostly the 34 FFTs of a frame
    pair (benchmarks/README.md); the first frame of a shape builds its filter bank.

    GifLab (``giflab.metrics.fsim``) returns something else under this name: on OpenCV gray, it
    uses |Laplacian| in place of phase congruency and Sobel in place of Scharr, constants
    ``T1 = T2 = 1e-3`` instead of 0.85 and 160, the plain mean of the similarity map instead
    of the PCm-weighted mean, no downsampling, and clips to [0, 1]. Values are not comparable.

    References
    ----------
    L. Zhang, L. Zhang, X. Mou and D. Zhang, "FSIM: A Feature Similarity Index for Image
    Quality Assessment", IEEE Trans. Image Processing 20(8):2378-2386, 2011,
    doi:10.1109/TIP.2011.2109730; MATLAB code ``FeatureSIM.m`` by the authors.
    P. Kovesi, "Image Features from Phase Congruency", Videre 1(3), 1999.
    """
    original, compressed = check_pair(original, compressed, "fsim")
    chroma = check_bool(chroma, "chroma", "fsim")
    backend = _numba.check_backend(backend, "fsim")
    kernels = _load_kernels(backend, "fsim") if original.shape[0] else None
    out = np.empty(original.shape[0], dtype=np.float64)
    for i in range(original.shape[0]):
        out[i] = _fsim_frame(original[i], compressed[i], chroma, kernels)
    return out


# --------------------------------------------------------------------------------------------
# GMSD
# --------------------------------------------------------------------------------------------


def _gmsd_frame(
    ref: np.ndarray, dis: np.ndarray, kernels: _numba_perceptual.Kernels | None
) -> float:
    rows, cols = ref.shape[:2]
    n_r, n_c = -(-rows // 2), -(-cols // 2)
    if min(n_r, n_c) < _MIN_GRADIENT_SIDE:
        return math.nan
    prewitt = (1 / 3, 1 / 3, 1 / 3)
    grads = []
    for frame in (ref, dis):
        (gray,) = _weighted_planes(frame, _RGB2GRAY[None], 2, kernels)
        grads.append(_gradient_magnitude(gray, prewitt, kernels))
    gms = _similarity(grads[0], grads[1], _GMSD_C)
    return float(np.std(gms, dtype=np.float64))


def gmsd(original: np.ndarray, compressed: np.ndarray, *, backend: str = "auto") -> np.ndarray:
    """Gradient Magnitude Similarity Deviation (GMSD) per frame.

    Lower is better; identical frames give 0.

    Parameters
    ----------
    original, compressed : ndarray, shape (t, H, W, 3), uint8
        Aligned blocks of RGB frames; frame ``i`` of one is compared with frame ``i`` of the
        other.
    backend : {"auto", "numba", "numpy"}, optional
        How the 2 x 2 block sums of the downsampling run: ``"auto"`` uses a numba kernel when
        numba can be imported, else numpy; ``"numba"`` requires it. The sums are exact
        integers either way, so the values are the same.

    Returns
    -------
    ndarray, shape (t,), float64
        One value per frame, NaN where the frame cannot be measured (see Notes).

    Notes
    -----
    Definition (Xue et al. 2014, Eqs. 1-8, and the authors' ``GMSD.m``), per frame:

    1. Luma as the authors feed it: MATLAB ``rgb2gray`` weights
       ``0.298936 R + 0.587043 G + 0.114021 B`` (printed 0.2989, 0.5870, 0.1140), 0-255 scale,
       not rounded to integers.
    2. 2 x 2 averaging filter (``conv2(.., fspecial('average', 2), 'same')``: the window of
       pixel ``j`` is ``j, j+1``, zeros past the last row/column) and downsampling by 2,
       keeping rows and columns 1, 3, 5, ... (MATLAB numbering).
    3. Gradient magnitude ``m`` with Prewitt filters ``[1 0 -1; 1 0 -1; 1 0 -1] / 3`` and
       transpose (zero padding).
    4. ``GMS = (2 m_r m_d + c) / (m_r^2 + m_d^2 + c)`` with ``c = 170``.
    5. ``GMSD = sqrt(mean((GMS - mean(GMS))^2))``, the population standard deviation of the
       paper's Eq. (8). (``GMSD.m`` calls ``std2``, which divides by N - 1; on a 480 x 270
       frame, N = 32400 and the two differ by a factor 1 + 1.5e-5.)

    Borders: like ``GMSD.m`` (``conv2(.., 'same')``), the filters see zeros outside the frame,
    so the outermost ring of the downsampled frame has a gradient towards black that depends
    on the frame's border colour. Two flat frames of different colours therefore get a GMSD
    above 0 from that ring alone (0.19 for 64 x 48 frames of gray 128 vs gray 30); the same
    flat frame on both sides gives 0.

    NaN, never a default, when the downsampled frame is smaller than 3 x 3
    (``min(H, W) < 5``): the Prewitt window then never lies inside the frame and every
    gradient is made of zero padding.

    Per-pixel maps are computed in float32 (agreeing with a float64 transcription of the
    authors' code to ~1e-8) and the deviation is accumulated in float64.

    GifLab (``giflab.metrics.gmsd``) differs: it skips the 2 x 2 average and the downsampling,
    uses OpenCV gray (0.299/0.587/0.114, rounded to uint8) and OpenCV's reflected borders, and
    a stability constant ``C = 1e-3`` instead of 170, which makes its GMS map react to
    gradients far below visibility. Values are not comparable.

    References
    ----------
    W. Xue, L. Zhang, X. Mou and A. C. Bovik, "Gradient Magnitude Similarity Deviation: A
    Highly Efficient Perceptual Image Quality Index", IEEE Trans. Image Processing
    23(2):684-695, 2014, doi:10.1109/TIP.2013.2293423; MATLAB code ``GMSD.m`` by the authors.
    """
    original, compressed = check_pair(original, compressed, "gmsd")
    backend = _numba.check_backend(backend, "gmsd")
    kernels = _load_kernels(backend, "gmsd") if original.shape[0] else None
    out = np.empty(original.shape[0], dtype=np.float64)
    for i in range(original.shape[0]):
        out[i] = _gmsd_frame(original[i], compressed[i], kernels)
    return out
