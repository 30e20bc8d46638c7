"""Resolving a target layer and capturing what flows through it.

A layer is given as a dotted name (``"blocks.6"``, ``"features.29"``) or as the module itself;
:func:`resolve_layer` is the only place that turns either into ``(name, module)``.
:class:`capture` is a context manager that records the layer's output during a forward pass and,
on request, the gradient of a scalar with respect to it (``torch.autograd.grad``, no backward
hooks). Its hook is removed when the block ends, also when an exception is raised.
"""

from __future__ import annotations

import difflib

import torch
from torch import nn

__all__ = ["resolve_layer", "layer_names", "capture"]


def layer_names(module: nn.Module) -> list[str]:
    """Dotted names of every sub-module, in definition order (the root is left out)."""
    return [name for name, _ in module.named_modules() if name]


def resolve_layer(module: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """Return ``(dotted_name, submodule)`` for a layer given by name or as a module.

    Raises:
        ValueError: the name does not exist (the message lists the closest valid names) or the
            module is not part of ``module``.
        TypeError: ``layer`` is neither a string nor a module.
    """
    if isinstance(layer, str):
        if layer:
            try:
                return layer, module.get_submodule(layer)
            except AttributeError:
                pass
        names = layer_names(module)
        close = difflib.get_close_matches(layer, names, n=8, cutoff=0.4)
        top = [n for n in names if "." not in n]
        hint = f"closest valid names: {', '.join(close)}" if close else "no close match"
        raise ValueError(
            f"unknown layer {layer!r} in {type(module).__name__}; {hint}. "
            f"Top-level layers: {', '.join(top)} ({len(names)} layers in all; "
            "see camlab.layer_names(model))"
        )
    if isinstance(layer, nn.Module):
        for name, sub in module.named_modules():
            if sub is layer and name:
                return name, sub
        raise ValueError(f"the given {type(layer).__name__} module is not a sub-module of {type(module).__name__}")
    raise TypeError(f"a layer is a dotted name or an nn.Module, not {type(layer).__name__}")


class capture:
    """Record the output of ``layer`` while a forward pass runs inside the block.

    >>> with capture(model, "bn2") as cap:
    ...     logits = model(x)
    >>> cap.activations.shape  # B×N×h×w

    With ``gradients=True`` the forward pass runs with autograd enabled even inside
    ``torch.no_grad()``, and :meth:`grad` returns ∂scalar/∂activations through
    ``torch.autograd.grad``. The hook is removed on exit, whatever happens inside.
    """

    def __init__(self, module: nn.Module, layer: str | nn.Module, gradients: bool = False):
        self.name, self.layer = resolve_layer(module, layer)
        self.gradients = gradients
        self.activations: torch.Tensor | None = None
        self._handle = None
        self._grad_ctx = None

    def _hook(self, _module: nn.Module, _inputs, output) -> None:
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"layer {self.name!r} returns {type(output).__name__}, not a tensor; choose another layer")
        self.activations = output

    def __enter__(self) -> "capture":
        self._handle = self.layer.register_forward_hook(self._hook)
        if self.gradients:
            self._grad_ctx = torch.enable_grad()
            self._grad_ctx.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if self._grad_ctx is not None:
            self._grad_ctx.__exit__(*exc)
            self._grad_ctx = None

    def grad(self, scalar: torch.Tensor, retain_graph: bool = False) -> torch.Tensor:
        """∂scalar/∂activations, the same shape as the activations."""
        if self.activations is None:
            raise RuntimeError(f"layer {self.name!r} was not reached by the forward pass")
        if not self.activations.requires_grad:
            raise RuntimeError("activations carry no graph: open capture(..., gradients=True) before the forward pass")
        (g,) = torch.autograd.grad(scalar, self.activations, retain_graph=retain_graph)
        return g


class count_forwards:
    """Count the images that go through modules while the block runs: a forward pre-hook adds
    each call's batch size (the first positional input's first dimension). ``watch`` adds a
    module while the block is open (e.g. the tail of a split network); every hook is removed on
    exit, whatever happens inside.

    >>> with count_forwards(model) as n:
    ...     model(x)
    >>> n.images  # x.shape[0]
    """

    def __init__(self, *modules: nn.Module):
        self.images = 0
        self._modules = modules
        self._handles: list = []

    def _hook(self, _module: nn.Module, inputs) -> None:
        if inputs and isinstance(inputs[0], torch.Tensor) and inputs[0].dim() > 0:
            self.images += int(inputs[0].shape[0])

    def watch(self, module: nn.Module) -> None:
        self._handles.append(module.register_forward_pre_hook(self._hook))

    def __enter__(self) -> "count_forwards":
        for m in self._modules:
            self.watch(m)
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
