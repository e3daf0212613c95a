"""TIGER's RQ-VAE semantic ids (Rajput et al., NeurIPS 2023, §3.1).

    z = encoder(x)                      an MLP from the item embedding to a latent
    r_0 = z;  c_l = argmin_k ‖r_l − e^l_k‖;  r_{l+1} = r_l − e^l_{c_l}     (l = 0 … L−1)
    ẑ = Σ_l e^l_{c_l};   x̂ = decoder(ẑ)
    loss = ‖x − x̂‖²  +  β · Σ_l ‖r_l − sg(e^l_{c_l})‖²   (reconstruction + commitment)

The residual quantiser is ``vector_quantize_pytorch.ResidualVQ`` (codebooks initialised by
k-means, updated by exponential moving averages, dead codes re-seeded, straight-through
gradients); this module adds the encoder/decoder MLPs and the training loop. The item's
semantic id is ``(c_0, …, c_{L−1})``; :func:`advx_recsys.items.disambiguate` appends TIGER's
extra digit so that items with equal codes stay distinct.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["RQVAE", "cached_rqvae_codes", "rqvae_codes"]


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])  # no activation on the output


class RQVAE(nn.Module):
    """Encoder MLP → residual quantisation over ``len(codebook)`` codebooks → decoder MLP."""

    def __init__(self, dim: int, hidden: Sequence[int], latent: int, codebook: Sequence[int],
                 commitment: float) -> None:
        super().__init__()
        from vector_quantize_pytorch import ResidualVQ

        self.encoder = _mlp([dim, *hidden, latent])
        self.decoder = _mlp([latent, *reversed(hidden), dim])
        sizes = codebook[0] if len(set(codebook)) == 1 else tuple(codebook)
        self.quantizer = ResidualVQ(
            dim=latent, num_quantizers=len(codebook), codebook_size=sizes,
            kmeans_init=True, kmeans_iters=10, commitment_weight=commitment,
            threshold_ema_dead_code=2,
            # Every process of a data-parallel run builds the item codes alone, from the same
            # seed; the library would otherwise sync its k-means and codebooks across the
            # process group it finds initialised, and wait forever for ranks that are not
            # building (seen: `torchrun -m advx eval` on an RQ-VAE recipe hung).
            sync_codebook=False, sync_kmeans=False,
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(reconstruction, codes [N, L], commitment loss)``."""
        quantized, codes, commit = self.quantizer(self.encoder(x))
        return self.decoder(quantized), codes, commit.sum()


def rqvae_codes(
    vectors: np.ndarray, codebook: Sequence[int], hidden: Sequence[int], latent: int,
    epochs: int, batch_size: int, lr: float, commitment: float, seed: int,
) -> np.ndarray:
    """Train an :class:`RQVAE` on the item ``vectors`` and return the ``[N, L]`` codes."""
    torch.manual_seed(seed)
    x = torch.as_tensor(vectors, dtype=torch.float32)
    model = RQVAE(x.shape[1], hidden, latent, codebook, commitment)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for rows in torch.randperm(len(x), generator=generator).split(batch_size):
            recon, _, commit = model(x[rows])
            loss = ((recon - x[rows]) ** 2).sum(-1).mean() + commit
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        _, codes, _ = model(x)
    return codes.cpu().numpy().astype(np.int64)


def cache_dir() -> str | None:
    """Where item codes are memoised: ``$ADVX_CACHE_DIR`` (empty: no cache), default
    ``~/.cache/advx``."""
    location = os.environ.get("ADVX_CACHE_DIR", str(Path.home() / ".cache" / "advx"))
    return location or None


def _codes(vectors: np.ndarray, codebook: Sequence[int], key: tuple[Any, ...],
           **kwargs: Any) -> np.ndarray:
    """:func:`rqvae_codes`; ``key`` only joins the cache key."""
    return rqvae_codes(vectors, codebook, **kwargs)


def cached_rqvae_codes(vectors: np.ndarray, codebook: Sequence[int], **kwargs: Any
                       ) -> np.ndarray:
    """:func:`rqvae_codes` memoised on disk with ``joblib.Memory`` (:func:`cache_dir`).

    Every process that builds a task trains the same RQ-VAE on the same item vectors (≈ 1.5
    CPU-min for Beauty's 256³ codes): each rank of a launched run, each branch of a study,
    each ``advx eval``. The key is everything the codes depend on: the vectors, codebook and
    training arguments (seed included), this module's source, the torch and
    vector-quantize-pytorch versions and the torch thread count (results were checked
    identical across builds only at a fixed thread count). A hit returns the codes the same
    computation wrote, so every process of a study gets the same ids by construction."""
    import joblib

    key = (hashlib.sha256(Path(__file__).read_bytes()).hexdigest(), torch.__version__,
           version("vector-quantize-pytorch"), torch.get_num_threads())
    memory = joblib.Memory(cache_dir(), verbose=0)
    return memory.cache(_codes)(vectors, list(codebook), key, **kwargs)
