"""Classifier-free guidance (Ho & Salimans 2022) with the null unit id (EdiDub §3.1), or with
other units as the negative branch (the original line's, for contrast guidance)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# model(x_in, t, units) -> eps, e.g. a UNet3D
ConditionalModel = Callable[[Tensor, Tensor, Tensor | None], Tensor]


def guided(
    model: ConditionalModel, scale: float, null_id: int, *, batched: bool = True
) -> ConditionalModel:
    """ε̃ = ε(∅) + s·(ε(c) − ε(∅)), the unconditional branch fed the null id everywhere.

    Called with `negative` units (shaped like `units`), the second branch is fed those instead:
    ε̃ = ε(n) + s·(ε(c) − ε(n)), which pushes away from n and, where c equals n, is ε(c).
    `batched` runs both branches as one forward of doubled batch (what CUDA wants); the two
    separate passes give the same result. Scale 1 is the plain conditional model (one pass).
    """

    def run(x: Tensor, t: Tensor, units: Tensor | None, negative: Tensor | None = None) -> Tensor:
        if units is None:
            raise ValueError("guided(): the conditional branch needs units")
        if negative is not None and negative.shape != units.shape:
            raise ValueError(
                f"guided(): negative units {tuple(negative.shape)} must match {tuple(units.shape)}"
            )
        if scale == 1.0:
            return model(x, t, units)
        null = torch.full_like(units, null_id) if negative is None else negative
        if batched:
            eps_c, eps_u = model(
                torch.cat([x, x]), torch.cat([t, t]), torch.cat([units, null])
            ).chunk(2)
        else:
            eps_c, eps_u = model(x, t, units), model(x, t, null)
        return eps_u + scale * (eps_c - eps_u)

    return run
