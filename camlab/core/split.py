"""Splitting a network after a layer, so that perturbing the layer's output recomputes only the rest.

``tail_after(module, "bn2")`` traces the network with ``torch.fx`` and returns a ``GraphModule``
that maps the layer's output to the network's output. It returns ``None`` when the network
cannot be traced, or when the part after the layer also reads earlier tensors (a skip
connection around the layer), so callers can fall back to full forward passes.
"""

from __future__ import annotations

import torch.fx as fx
from torch import nn

__all__ = ["tail_after"]


class _LeafTracer(fx.Tracer):
    """Treat the target layer and every module without children as a leaf (an opaque call)."""

    def __init__(self, layer_name: str):
        super().__init__()
        self.layer_name = layer_name

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname == self.layer_name or next(m.children(), None) is None or super().is_leaf_module(m, qualname)


def tail_after(module: nn.Module, layer_name: str) -> fx.GraphModule | None:
    """A module computing ``module``'s output from ``layer_name``'s output, or ``None``."""
    try:
        graph = _LeafTracer(layer_name).trace(module)
    except Exception:  # any tracing failure (dynamic control flow, unsupported ops) means "cannot split"
        return None
    calls = [n for n in graph.nodes if n.op == "call_module" and n.target == layer_name]
    if len(calls) != 1:
        return None  # the layer is not called, or called more than once
    cut = calls[0]
    after: set[fx.Node] = set()
    for node in graph.nodes:
        if any(inp is cut or inp in after for inp in node.all_input_nodes):
            after.add(node)
    outputs = [n for n in graph.nodes if n.op == "output"]
    if not outputs or outputs[0] not in after:
        return None
    needed_attrs: set[fx.Node] = set()
    for node in after:
        for inp in node.all_input_nodes:
            if inp is cut or inp in after:
                continue
            if inp.op == "get_attr":
                needed_attrs.add(inp)
            else:
                return None  # the rest of the network reads a tensor computed before the layer
    tail = fx.Graph()
    env = {cut: tail.placeholder("features")}
    for node in graph.nodes:
        if node in needed_attrs or node in after:
            env[node] = tail.node_copy(node, lambda n: env[n])
    tail.lint()
    return fx.GraphModule(module, tail)
