"""Cluster-CAM (Feng et al. 2023, eq 18–22): cognition base and cognition scissors.

The N feature maps of the target layer are clustered into Q groups (K-means on the raw maps,
Ward's agglomerative clustering, or spectral clustering); each cluster's mean map masks the
image; the best-scoring cluster is the *cognition base*, the worst the *cognition scissors*,
and a **coupling** turns the cluster maps and scores into the heatmap:

- ``"normalized"`` (camlab's form of eq 22): ``H = α s(Up(F̃_base)) − (1 − α) s(Up(F̃_scissors))``;
- ``"paper"`` (eq 22 as printed): ``H = α Up(F̃_base) − (1 − α) Up(F̃_scissors)``;
- ``"weighted"`` (beyond the paper): ``H = Σ_q (y_q − min_q y_q) s(Up(F̃_q))``, no α;

and in each case ``heatmap = s(ReLU(H))``.

Cluster-CAM is split in two: :meth:`ClusterCAM.fit` (one forward pass, clustering,
representatives, the Q scores → a :class:`ClusterState`) and :meth:`ClusterCAM.couple` (state →
explanation, for any α and coupling, no forward pass). A state can be fitted again with other
clustering settings (``cam.fit(state)``): the forward pass is reused and only clusters whose
membership has not been scored on it before cost a masked pass. ``ClusterCAM.__call__`` runs
the same steps through the shared pipeline; the explorer and the sweeps use fit and couple.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

import torch
from torch import nn

from ..core.explanation import ClusterExplanation
from ..core.layers import count_forwards
from ..core.maps import normalize_maps, normalizing_affine, upsample
from ..core.masking import Baseline, check_baseline, check_score, score_masked
from .base import BaseCAM, Context, Targets
from .clustering import ADJACENCIES, LAPLACIANS, SpectralResult, kmeans, spectral_decomposition, spectral_labels, ward

__all__ = [
    "ClusterCAM",
    "ClusterRuns",
    "ClusterSettings",
    "ClusterState",
    "couple_maps",
    "CLUSTERINGS",
    "COUPLINGS",
    "DEFAULTS",
]

CLUSTERINGS = ("kmeans", "spectral", "ward")
COUPLINGS = ("normalized", "paper", "weighted")


def couple_maps(
    reps: torch.Tensor, scores: torch.Tensor, size: tuple[int, int], alpha: float, coupling: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq 20–22: base = argmax, scissors = argmin of the scores, and the coupled map H.

    Args:
        reps: B×Q×h×w representative maps (eq 18).
        scores: B×Q cluster scores (eq 19).
        size: the input's H×W.
        alpha: the balance of base and scissors (ignored by ``"weighted"``).
        coupling: one of :data:`COUPLINGS`.
    Returns:
        ``(H, base, scissors)``, H of shape B×H×W before the final ReLU and scaling.
    """
    if coupling not in COUPLINGS:
        raise ValueError(f"unknown coupling {coupling!r}; use one of {COUPLINGS}")
    idx = torch.arange(reps.shape[0], device=reps.device)
    base, scissors = scores.argmax(1), scores.argmin(1)
    if coupling == "weighted":
        # Σ_q w_q s(Up(F̃_q)) = Up(Σ_q c_q F̃_q) − Σ_q c_q m_q, where s(Up(F̃_q)) = (Up(F̃_q) − m_q)·k_q
        # and c_q = w_q k_q (upsampling is linear): the sum is upsampled once, not Q normalised maps.
        weights = (scores - scores.min(1, keepdim=True).values).to(reps.dtype)
        lo, scale = normalizing_affine(upsample(reps, size))
        coef = weights * scale
        return (
            upsample(torch.einsum("bq,bqhw->bhw", coef, reps), size) - (coef * lo).sum(1)[:, None, None],
            base,
            scissors,
        )
    up_base, up_scissors = upsample(reps[idx, base], size), upsample(reps[idx, scissors], size)
    if coupling == "normalized":
        up_base, up_scissors = normalize_maps(up_base), normalize_maps(up_scissors)
    return alpha * up_base - (1 - alpha) * up_scissors, base, scissors


@dataclass(eq=False)
class _ScoreCache:
    """What every fit on one forward pass shares: cluster scores keyed by cluster membership, and
    the spectral decompositions (eigenvectors only) of each image's maps."""

    scores: dict[tuple, float] = field(default_factory=dict)
    spectra: dict[tuple, SpectralResult] = field(default_factory=dict)
    masked_forwards: int = 0  # masked images scored on this forward pass so far


@dataclass(eq=False)
class ClusterState:
    """Cluster-CAM fitted on a batch: everything but the coupling.

    Attributes:
        context: the forward pass (input, logits, activations, targets).
        labels: B×N cluster of every channel.
        cluster_maps: B×Q×h×w representative maps (eq 18).
        cluster_scores: B×Q scores of the masked images (eq 19).
        params: the parameters of the clustering (those of the ClusterCAM that fitted it).
        n_forward: images this fit pushed through the model (scores found in the cache are free).
        seconds: wall time of the fit.
    """

    context: Context
    labels: torch.Tensor
    cluster_maps: torch.Tensor
    cluster_scores: torch.Tensor
    params: dict[str, Any]
    n_forward: int
    seconds: float
    cache: _ScoreCache = field(repr=False, default_factory=_ScoreCache)

    @property
    def image_forwards(self) -> int:
        """Passes of the unmasked images (one per image, whatever was fitted since)."""
        return int(self.context.x.shape[0])

    @property
    def masked_forwards(self) -> int:
        """Masked images scored on this forward pass so far, by every fit that shares it."""
        return self.cache.masked_forwards


@dataclass(frozen=True)
class ClusterSettings:
    """Every setting of Cluster-CAM, in one place: the signature, the checks (at construction),
    :meth:`replace` and :meth:`fit_params` all come from these fields.

    Attributes:
        n_clusters: Q, the number of clusters (≥ 2, ≤ the channel count).
        clustering: ``"ward"`` (default: agglomerative, Ward linkage; no seed), ``"kmeans"``
            on the flattened maps (the paper's choice for its tables) or ``"spectral"`` (eq 10–17).
        n_eigvecs: K, eigenvectors of the spectral embedding (1 ≤ K < N); spectral only.
        laplacian, adjacency, sigma, kappa, tau: the spectral graph (see :mod:`camlab.clustering`).
        alpha: the balance α ∈ [0, 1] between base and scissors (the paper gives no value; the
            defaults of Q, α, the clustering and the coupling are the 200-image run's choice, see
            DEFAULTS).
            Not used by the ``"weighted"`` coupling.
        coupling: ``"normalized"`` (camlab's eq 22: each map scaled to [0, 1] first),
            ``"paper"`` (eq 22 as the paper prints it, on the raw cluster means) or
            ``"weighted"`` (every cluster map weighted by its score above the worst).
        score: ``"softmax"`` (default) or ``"logit"`` for the cluster scores.
        baseline: what masked-out pixels become (``X ⊙ M + X_b ⊙ (1 − M)`` on the normalised
            input; zeros there by default).
        batch_size: images per pass for the masked inputs; ``None``: the device's default
            (:func:`camlab.core.device.default_batch_size`), as for every method.
        seed: K-means seed (also the K-means of spectral clustering); the same seed gives the
            same map. With K-means, other seeds can give noticeably different maps (notebook 06
            measures it); Ward's clustering has no seed.
        n_init: K-means restarts (the best of ``n_init`` k-means++ starts is kept).

    Raises:
        ValueError: a value out of range or a name not in the lists above, naming both.
    """

    # Chosen by the rule of benchmarks/RESULTS.md (written before the run) on all 200 dev images
    # (efficientnet_lite0, bn2; benchmarks/full_run.py grid, alpha_q, choose): among the seed-stable
    # settings the best mean rank over drop, increase, insertion, deletion and the pointing game, ties
    # to fewer passes. Ward with camlab's normalised eq 22, α = 0.8, Q = 10 (tied with Q = 12). K = 7
    # applies to spectral clustering only; n_init to K-means only.
    n_clusters: int = 10
    clustering: str = "ward"
    n_eigvecs: int = 7
    laplacian: str = "normalized"
    adjacency: str = "paper"
    sigma: float | None = None
    kappa: float = 0.0
    tau: float = 1.0
    alpha: float = 0.8
    coupling: str = "normalized"
    score: str = "softmax"
    baseline: Baseline = "zeros"
    batch_size: int | None = None
    seed: int = 0
    n_init: int = 3

    def __post_init__(self) -> None:
        for name, value, least in (
            ("n_clusters (Q)", self.n_clusters, 2),
            ("n_eigvecs (K)", self.n_eigvecs, 1),
            ("n_init", self.n_init, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an integer ≥ {least}, got {value!r}")
        if self.batch_size is not None and (
            isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1
        ):
            raise ValueError(
                f"batch_size must be an integer ≥ 1 or None (the device's default), got {self.batch_size!r}"
            )
        check_alpha(self.alpha)
        for name, value, allowed in (
            ("clustering", self.clustering, CLUSTERINGS),
            ("coupling", self.coupling, COUPLINGS),
            ("laplacian", self.laplacian, LAPLACIANS),
            ("adjacency", self.adjacency, ADJACENCIES),
        ):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; use one of {allowed}")
        if self.sigma is not None and not self.sigma > 0:
            raise ValueError(f"sigma must be > 0 or None (the median distance), got {self.sigma!r}")
        if not self.tau > 0:
            raise ValueError(f"tau must be > 0, got {self.tau!r}")
        check_score(self.score)
        check_baseline(self.baseline)
        for name, cast in (("alpha", float), ("kappa", float), ("tau", float), ("seed", int)):
            object.__setattr__(self, name, cast(getattr(self, name)))

    def replace(self, **changes: Any) -> "ClusterSettings":
        """These settings with some changed, checked again; an unknown name is an error listing the fields."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise ValueError(
                f"ClusterCAM has no setting {', '.join(map(repr, unknown))}; it has {[f.name for f in fields(self)]}"
            )
        return replace(self, **changes) if changes else self

    def fit_params(self) -> dict[str, Any]:
        """The settings a fit depends on (everything but α and the coupling), those that matter
        for the clustering chosen: the seed and restarts for K-means and spectral, the graph for spectral."""
        p = {
            "n_clusters": self.n_clusters,
            "clustering": self.clustering,
            "score": self.score,
            "baseline": self.baseline,
        }
        if self.clustering != "ward":
            p.update(seed=self.seed, n_init=self.n_init)
        if self.clustering == "spectral":
            p.update(
                n_eigvecs=self.n_eigvecs,
                laplacian=self.laplacian,
                adjacency=self.adjacency,
                sigma=self.sigma,
                kappa=self.kappa,
                tau=self.tau,
            )
        return p


class ClusterCAM(BaseCAM):
    """Cluster-CAM (Feng et al. 2023, eq 18–22): the N maps F_n of the target layer are
    clustered into Q groups Q_1 … Q_Q (``clustering``), then

        F̃_q = mean{F_n : n ∈ Q_q}  (eq 18),    y_q = S_c(X ⊙ s(Up(F̃_q)))  (eq 19),
        base = argmax_q y_q  (eq 20),    scissors = argmin_q y_q  (eq 21),
        H = α s(Up(F̃_base)) − (1 − α) s(Up(F̃_scissors))  (eq 22, "normalized" coupling),
        heatmap = s(ReLU(H)).

    Args:
        module: a :class:`camlab.Classifier` (its passes then run on its folded twin) or an ``nn.Module``.
        target_layer: dotted layer name or the layer module.
        settings: a :class:`ClusterSettings` (default: ``ClusterSettings()``, camlab's defaults).
        **changes: any field of :class:`ClusterSettings`, e.g. ``n_clusters=6, clustering="kmeans"``.

    Examples:
        >>> cam = camlab.methods.ClusterCAM(clf, "blocks.6")  # Ward, Q = 10, α = 0.8 (DEFAULTS)
        >>> exp = cam(x)
        >>> exp.cluster_scores.shape, exp.n_forward  # y_q; one clean pass and Q masked ones
        (torch.Size([1, 10]), 11)
    """

    name = "clustercam"
    explanation_type = ClusterExplanation

    def __init__(self, module: nn.Module, target_layer, settings: ClusterSettings | None = None, **changes: Any):
        super().__init__(module, target_layer)
        self.settings = (settings or ClusterSettings()).replace(**changes)
        self._batch_size = self.settings.batch_size

    def replace(self, **changes: Any) -> "ClusterCAM":
        """A ClusterCAM on the same model and layer with some settings changed (validated)."""
        return type(self)(self.source, self.layer_name, self.settings, **changes)

    def fit_params(self) -> dict[str, Any]:
        """The parameters a fit depends on: everything but α and the coupling."""
        return {**super().params(), **self.settings.fit_params()}

    def params(self) -> dict[str, Any]:
        return {**self.fit_params(), **coupling_params(self.settings.alpha, self.settings.coupling)}

    # --- the steps -------------------------------------------------------------------------

    def check_layer(self, n_channels: int) -> None:
        """Q and K against the layer's channel count N."""
        if self.settings.n_clusters > n_channels:
            raise ValueError(
                f"n_clusters (Q) = {self.settings.n_clusters} is larger than the {n_channels} channels "
                f"of layer {self.layer_name!r}; Q must be in [2, {n_channels}]"
            )
        if self.settings.clustering == "spectral" and self.settings.n_eigvecs >= n_channels:
            raise ValueError(
                f"n_eigvecs (K) = {self.settings.n_eigvecs} must be smaller than the {n_channels} channels "
                f"of layer {self.layer_name!r}"
            )

    def cluster(
        self, maps: torch.Tensor, spectra: dict[tuple, SpectralResult] | None = None, key: Any = None
    ) -> torch.Tensor:
        """Cluster labels (N,) of one image's maps (N×h×w). With ``spectra``, the spectral
        decomposition is kept there under ``key`` (and the graph settings) and reused."""
        rows = maps.flatten(1).float()
        if self.settings.clustering == "kmeans":
            return kmeans(rows, self.settings.n_clusters, seed=self.settings.seed, n_init=self.settings.n_init).labels
        if self.settings.clustering == "ward":
            return ward(rows, self.settings.n_clusters)
        graph = (
            key,
            self.settings.laplacian,
            self.settings.adjacency,
            self.settings.sigma,
            self.settings.kappa,
            self.settings.tau,
        )
        dec = None if spectra is None else spectra.get(graph)
        if dec is None:
            dec = spectral_decomposition(
                rows,
                self.settings.laplacian,
                self.settings.adjacency,
                self.settings.sigma,
                self.settings.kappa,
                self.settings.tau,
            )
            if spectra is not None:  # keep the eigenvectors only: the N×N graph matrices are not needed again
                empty = torch.empty(0)
                spectra[graph] = dec = replace(dec, distances=empty, similarity=empty, adjacency=empty, laplacian=empty)
        return spectral_labels(
            dec, self.settings.n_clusters, self.settings.n_eigvecs, self.settings.seed, self.settings.n_init
        ).labels

    @staticmethod
    def representatives(maps: torch.Tensor, labels: torch.Tensor, n_clusters: int) -> torch.Tensor:
        """Eq 18: the mean map of each cluster, Q×h×w."""
        sums = torch.zeros((n_clusters, *maps.shape[1:]), dtype=maps.dtype, device=maps.device).index_add_(
            0, labels, maps
        )
        counts = torch.bincount(labels, minlength=n_clusters).clamp_min(1).to(maps.dtype)
        return sums / counts[:, None, None]

    def score_clusters(
        self, ctx: Context, labels: torch.Tensor, reps: torch.Tensor, cache: _ScoreCache
    ) -> torch.Tensor:
        """Eq 19: ``y_q = S_c(X ⊙ s(Up(F̃_q)))`` for B×Q clusters → B×Q, in one batched pass of
        the clusters whose membership ``cache`` has not scored yet (the others cost nothing)."""
        b, q = reps.shape[:2]
        how = (self.settings.score, baseline_key(self.settings.baseline))
        onehot = (labels[:, None, :] == torch.arange(q, device=labels.device)[None, :, None]).cpu().numpy()  # B×Q×N
        keys = [[(how, i, onehot[i, k].tobytes()) for k in range(q)] for i in range(b)]
        new = [(i, k) for i in range(b) for k in range(q) if keys[i][k] not in cache.scores]
        if new:
            owner = torch.tensor([i for i, _ in new], device=ctx.x.device)
            which = torch.tensor([k for _, k in new], device=ctx.x.device)
            y = score_masked(
                self.net,
                ctx.x,
                reps[owner, which],
                owner,
                ctx.targets,
                baseline=self.settings.baseline,
                score=self.settings.score,
                batch_size=self.batch_size,
            )
            cache.scores.update({keys[i][k]: float(v) for (i, k), v in zip(new, y, strict=True)})
        return torch.tensor(
            [[cache.scores[keys[i][k]] for k in range(q)] for i in range(b)], device=ctx.x.device, dtype=reps.dtype
        )

    def _fit(self, ctx: Context, cache: _ScoreCache, start: float) -> ClusterState:
        acts = ctx.activations
        self.check_layer(acts.shape[1])
        with torch.no_grad():
            labels = torch.stack([self.cluster(a, cache.spectra, i) for i, a in enumerate(acts)])  # B×N
            reps = torch.stack(
                [self.representatives(a, lab, self.settings.n_clusters) for a, lab in zip(acts, labels, strict=True)]
            )  # B×Q×h×w
            with count_forwards(self.net) as masked:
                scores = self.score_clusters(ctx, labels, reps, cache)
        cache.masked_forwards += masked.images
        return ClusterState(
            ctx, labels, reps, scores, self.fit_params(), masked.images, time.perf_counter() - start, cache
        )

    # --- fit and couple ----------------------------------------------------------------------

    def fit(self, x: torch.Tensor | ClusterState, targets: Targets = None) -> ClusterState:
        """Cluster and score: one forward pass of ``x``, the clustering, the Q representative
        maps and their scores. Given a :class:`ClusterState` instead of a batch, its forward
        pass (images, targets, activations) and its cache of scores are reused: only clusters
        never scored on it cost a masked pass."""
        start = time.perf_counter()
        if isinstance(x, ClusterState):
            if targets is not None:
                raise ValueError("a fitted state keeps its own targets; fit the images again to explain other classes")
            if x.params["target_layer"] != self.layer_name:
                raise ValueError(
                    f"the state was fitted at layer {x.params['target_layer']!r}, "
                    f"this ClusterCAM explains {self.layer_name!r}"
                )
            self.check_network()
            return self._fit(x.context, x.cache, start)
        with count_forwards(self.net) as forwards:
            ctx = self.forward(x, targets)
            state = self._fit(ctx, _ScoreCache(), start)
        return replace(state, n_forward=forwards.images)

    def couple(
        self, state: ClusterState, alpha: float | None = None, coupling: str | None = None
    ) -> ClusterExplanation:
        """The explanation of a fitted state for a balance α and a coupling (this ClusterCAM's
        when not given): no forward pass. ``n_forward`` and ``seconds`` include the fit's."""
        start = time.perf_counter()
        alpha = self.settings.alpha if alpha is None else check_alpha(alpha)
        coupling = self.settings.coupling if coupling is None else coupling
        heat, extras = _coupled(state, alpha, coupling)
        done = replace(state.context, n_forward=state.n_forward, extras=extras)
        return self.finish(
            done, heat, start - state.seconds, params={**state.params, **coupling_params(alpha, coupling)}
        )

    def compute(self, ctx: Context) -> torch.Tensor:
        """The shared pipeline's override point: fit on the pipeline's forward pass, then couple."""
        state = self._fit(ctx, _ScoreCache(), time.perf_counter())
        heat, extras = _coupled(state, self.settings.alpha, self.settings.coupling)
        ctx.extras.update(extras)
        return heat


def _coupled(state: ClusterState, alpha: float, coupling: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """H of a fitted state (:func:`couple_maps`) and the intermediates an explanation carries."""
    heat, base, scissors = couple_maps(
        state.cluster_maps, state.cluster_scores, tuple(state.context.x.shape[-2:]), alpha, coupling
    )
    return heat, dict(
        labels=state.labels,
        cluster_maps=state.cluster_maps,
        cluster_scores=state.cluster_scores,
        base=base,
        scissors=scissors,
    )


def check_alpha(alpha: Any) -> float:
    if isinstance(alpha, bool) or not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    return float(alpha)


def coupling_params(alpha: float, coupling: str) -> dict[str, Any]:
    """α and the coupling as an explanation records them: the weighted coupling has no α."""
    return {"coupling": coupling, "alpha": None if coupling == "weighted" else float(alpha)}


DEFAULTS = {
    name: getattr(ClusterSettings(), name)
    for name in ("n_clusters", "clustering", "n_eigvecs", "alpha", "coupling", "n_init")
}


def baseline_key(baseline: Baseline) -> Any:
    """A baseline as a key of the score cache: its name or value, or a digest of a tensor's contents
    (two tensors with equal values share scores; an object's ``id`` could be reused)."""
    if isinstance(baseline, torch.Tensor):
        t = baseline.detach().cpu().contiguous()
        return ("tensor", tuple(t.shape), str(t.dtype), hashlib.sha1(t.numpy().tobytes()).hexdigest())
    return baseline


class ClusterRuns:
    """Cluster-CAM on one batch for many settings: one forward pass of ``x`` and one fit per
    clustering, shared through a :class:`~camlab.methods.cluster.ClusterState` — settings that
    differ only in α or the coupling re-couple a fit, and a new clustering pays only for clusters
    never scored on this batch.

    >>> runs = ClusterRuns(model, "bn2", x)
    >>> a = runs.explain({"alpha": 0.5})
    >>> b = runs.explain({"alpha": 0.8, "coupling": "paper"})  # 1 + Q passes per image in all
    """

    def __init__(self, module: nn.Module, layer: str, x: torch.Tensor, targets=None):
        self.module, self.layer, self.x, self.targets = module, layer, x, targets
        self._fits: dict[str, ClusterState] = {}  # by the parameters a fit depends on
        self._first: ClusterState | None = None  # the fit that made the forward pass

    def fit(self, setting: Mapping[str, Any]) -> tuple[ClusterCAM, ClusterState]:
        """The ClusterCAM of ``setting`` (its keyword arguments) and its fitted state on the batch."""
        cam = ClusterCAM(self.module, self.layer, **setting)
        key = repr(sorted(cam.fit_params().items()))
        if key not in self._fits:
            self._fits[key] = cam.fit(self.x, self.targets) if self._first is None else cam.fit(self._first)
            if self._first is None:
                self._first = self._fits[key]
        return cam, self._fits[key]

    def explain(self, setting: Mapping[str, Any]) -> ClusterExplanation:
        """Cluster-CAM with ``setting`` on the batch."""
        cam, state = self.fit(setting)
        return cam.couple(state)
