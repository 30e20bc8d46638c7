"""Noisy linear imputation (Rong et al., ICML 2022, ROAD §4): fill removed pixels from their
neighbours instead of blacking them out.

Every removed pixel ``i`` takes the weighted mean of its in-image 8-neighbours ``j`` — weight 1/6
for the four sides, 1/12 for the diagonals — whether they are kept or removed themselves, so all
removed pixels of an image are solved together from one sparse linear system per image, with one
right-hand side per channel::

    (Σ_j w_ij) v_i − Σ_{j removed} w_ij v_j = Σ_{j kept} w_ij x_j

then Gaussian noise (σ = ``noise``, in the input's units) is added to the imputed pixels. Kept
pixels are never changed.

The matrix is symmetric and positive definite (a graph Laplacian with the kept pixels as boundary
values), so it is factored with SuperLU in symmetric mode with a minimum-degree ordering of
``A + Aᵀ`` and no pivoting, and the images of a batch are solved in parallel threads (SuperLU
releases the GIL). The system is assembled in one vectorised step per neighbour offset.

>>> x = torch.randn(2, 3, 32, 32); removed = torch.rand(2, 32, 32) < 0.5
>>> filled = noisy_linear_impute(x, removed, noise=0.0)
>>> bool((filled[~removed[:, None].expand_as(x)] == x[~removed[:, None].expand_as(x)]).all())
True
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import splu

__all__ = ["noisy_linear_impute", "NEIGHBOURS"]

# (row offset, column offset) → weight: the ROAD authors' neighbourhood
NEIGHBOURS = (
    ((1, 1), 1 / 12),
    ((0, 1), 1 / 6),
    ((-1, 1), 1 / 12),
    ((1, -1), 1 / 12),
    ((0, -1), 1 / 6),
    ((-1, -1), 1 / 12),
    ((1, 0), 1 / 6),
    ((-1, 0), 1 / 6),
)


def _solve(image: np.ndarray, removed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One image C×H×W (float64) and its H×W removed mask → (flat indices of the removed pixels,
    their imputed values C×n)."""
    c, h, w = image.shape
    flat_removed = removed.ravel()
    idx = np.flatnonzero(flat_removed)
    n = idx.size
    if n == 0:
        return idx, np.zeros((c, 0))
    if n == h * w:
        raise ValueError("every pixel of an image is removed: at least one pixel must be kept to impute from")
    var = np.full(h * w, -1, dtype=np.int64)
    var[idx] = np.arange(n)
    r0, c0 = np.divmod(idx, w)
    flat = image.reshape(c, -1)
    diag = np.zeros(n)
    rhs = np.zeros((n, c))
    rows, cols, vals = [np.arange(n)], [np.arange(n)], []
    for (dr, dc), weight in NEIGHBOURS:
        r, cc = r0 + dr, c0 + dc
        inside = (r >= 0) & (r < h) & (cc >= 0) & (cc < w)
        eq = np.flatnonzero(inside)
        nb = (r * w + cc)[inside]
        diag[eq] += weight
        unknown = flat_removed[nb]
        rows.append(eq[unknown])
        cols.append(var[nb[unknown]])
        vals.append(np.full(int(unknown.sum()), -weight))
        rhs[eq[~unknown]] += weight * flat[:, nb[~unknown]].T  # each equation appears once per offset
    a = sp.csc_matrix((np.concatenate([diag, *vals]), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    lu = splu(a, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    return idx, lu.solve(rhs).T


def noisy_linear_impute(
    x: torch.Tensor, removed: torch.Tensor, noise: float = 0.01, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Impute the removed pixels of a batch of images (ROAD's noisy linear imputation, Rong et
    al., ICML 2022): each removed pixel i is the weighted mean of its 8 neighbours j,

        (Σ_j w_ij) v_i − Σ_{j removed} w_ij v_j = Σ_{j kept} w_ij x_j,    w = 1/6 (sides), 1/12 (diagonals),

    solved for all removed pixels at once, then ``+ N(0, noise²)``.

    Examples:
        >>> removed = torch.zeros(1, 224, 224, dtype=torch.bool); removed[:, 64:160, 64:160] = True
        >>> filled = camlab.metrics.noisy_linear_impute(x, removed, noise=0.0)
        >>> filled.shape, torch.equal(filled[..., :64, :], x[..., :64, :])  # kept pixels unchanged
        (torch.Size([1, 3, 224, 224]), True)

    Args:
        x: B×C×H×W images (the normalised input, as the model sees it).
        removed: B×H×W boolean masks, True where a pixel is removed and must be imputed.
        noise: standard deviation of the Gaussian noise added to each imputed value (0: none).
        generator: a CPU ``torch.Generator`` for the noise (seed it for reproducible runs).
    Returns:
        B×C×H×W images on ``x``'s device and dtype: kept pixels equal ``x``; removed pixels hold
        the solution of the linear system (module docstring) plus noise.
    Raises:
        ValueError: shapes that do not match, a mask that is not boolean, or an image with every
            pixel removed.
    """
    if x.dim() != 4:
        raise ValueError(f"x must be B×C×H×W, got shape {tuple(x.shape)}")
    removed = torch.as_tensor(removed)
    if removed.dtype != torch.bool:
        raise ValueError(f"removed must be a boolean B×H×W mask (True = removed), got dtype {removed.dtype}")
    if tuple(removed.shape) != (x.shape[0], *x.shape[-2:]):
        raise ValueError(
            f"removed has shape {tuple(removed.shape)}; "
            f"for x of shape {tuple(x.shape)} it must be {(x.shape[0], *x.shape[-2:])}"
        )
    if not noise >= 0:
        raise ValueError(f"noise must be ≥ 0, got {noise}")
    images = x.detach().to("cpu", torch.float64).numpy()
    masks = removed.detach().cpu().numpy()
    workers = max(1, min(len(images), os.cpu_count() or 1))
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            solved = list(pool.map(_solve, images, masks))
    else:
        solved = [_solve(i, m) for i, m in zip(images, masks, strict=True)]
    out = x.detach().to("cpu", copy=True).flatten(2)
    for b, (idx, values) in enumerate(solved):  # in order, so the noise does not depend on the threads
        if idx.size == 0:
            continue
        filled = torch.from_numpy(values).to(out.dtype)
        if noise > 0:
            filled = filled + noise * torch.randn(filled.shape, generator=generator, dtype=out.dtype)
        out[b][:, torch.from_numpy(idx)] = filled
    return out.view_as(x).to(x.device)
