"""The SeqGAN synthetic oracle: a fixed LSTM whose samples are the "real" data.

Layout of the reference pickle (``target_params_py3.pkl``, a list of 15 float32 arrays):
``[0]`` embedding ``(V, E)``; ``[1..3]`` Wi, Ui, bi; ``[4..6]`` Wf, Uf, bf; ``[7..9]`` Wog,
Uog, bog; ``[10..12]`` Wc, Uc, bc (W ``(E, H)``, U ``(H, H)``, b ``(H,)``); ``[13]`` Wo
``(H, V)``; ``[14]`` bo ``(V,)``. The cell is the standard LSTM (gate = act(x W + h U + b),
c = f c + i tanh(.), h = o tanh(c)), so the arrays load into ``torch.nn.LSTM`` (gate order
i, f, g, o) with ``bias_hh = 0``. Generation starts from token 0 as input, as in the paper.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from advx.errors import DataError
from torch import Tensor, nn

START_TOKEN = 0


class OracleLSTM(nn.Module):
    """``embedding → LSTM → linear`` with the paper's sizes (V 5000, E 32, H 32)."""

    def __init__(self, vocab_size: int = 5000, emb_dim: int = 32, hidden_dim: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, emb_dim)
        self.lstm = nn.LSTM(emb_dim, hidden_dim, batch_first=True)
        self.out = nn.Linear(hidden_dim, vocab_size)
        self.requires_grad_(False)

    @classmethod
    def random(cls, seed: int, vocab_size: int = 5000, emb_dim: int = 32, hidden_dim: int = 32):
        """A seeded random oracle: every weight N(0, 1), as SeqGAN's ``TARGET_LSTM`` init."""
        oracle = cls(vocab_size, emb_dim, hidden_dim)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for param in oracle.parameters():
                param.copy_(torch.randn(param.shape, generator=gen))
            oracle.lstm.bias_hh_l0.zero_()
        return oracle

    @classmethod
    def from_pickle(cls, path: Path) -> OracleLSTM:
        """Load the reference oracle (see the module docstring for the layout)."""
        if not path.is_file():
            raise DataError(
                f"oracle file {path} not found; set task.oracle_path to the SeqGAN "
                "target_params_py3.pkl, or to '' for a seeded random oracle"
            )
        try:
            with path.open("rb") as handle:
                raw = pickle.load(handle, encoding="latin1")
            params = [np.asarray(p, dtype=np.float32) for p in raw]
        except Exception as exc:  # truncated, not a pickle, or not a list of arrays
            raise DataError(
                f"{path}: not the SeqGAN oracle pickle ({type(exc).__name__}: "
                f"{str(exc)[:200]}). Set task.oracle_path to target_params_py3.pkl, or to '' "
                f"for a seeded random oracle."
            ) from None
        if len(params) != 15:
            raise DataError(f"{path}: expected a list of 15 arrays, found {len(params)}")
        emb = params[0]
        vocab_size, emb_dim = emb.shape
        hidden_dim = params[2].shape[0]
        oracle = cls(vocab_size, emb_dim, hidden_dim)
        wi, ui, bi, wf, uf, bf, wo, uo, bo, wc, uc, bc = params[1:13]

        def t(a: np.ndarray) -> Tensor:
            return torch.from_numpy(a)

        with torch.no_grad():
            oracle.embed.weight.copy_(t(emb))
            oracle.lstm.weight_ih_l0.copy_(t(np.concatenate([wi, wf, wc, wo], axis=1).T))
            oracle.lstm.weight_hh_l0.copy_(t(np.concatenate([ui, uf, uc, uo], axis=1).T))
            oracle.lstm.bias_ih_l0.copy_(t(np.concatenate([bi, bf, bc, bo])))
            oracle.lstm.bias_hh_l0.zero_()
            oracle.out.weight.copy_(t(params[13].T))
            oracle.out.bias.copy_(t(params[14]))
        return oracle

    @property
    def vocab_size(self) -> int:
        return self.embed.num_embeddings

    def _inputs(self, ids: Tensor) -> Tensor:
        return torch.cat([torch.full_like(ids[:, :1], START_TOKEN), ids[:, :-1]], dim=1)

    @torch.no_grad()
    def token_nll(self, ids: Tensor) -> Tensor:
        """``[N, T]`` −log p_oracle(x_t | x_<t) of sequences ``ids [N, T]`` (chunked rows)."""
        out = []
        for chunk in ids.split(250):
            hidden, _ = self.lstm(self.embed(self._inputs(chunk)))
            logits = self.out(hidden)
            picked = logits.gather(-1, chunk[..., None]).squeeze(-1)
            out.append(torch.logsumexp(logits, -1) - picked)
        return torch.cat(out)

    @torch.no_grad()
    def sample(self, num: int, length: int, gen: torch.Generator, batch: int = 500) -> Tensor:
        """``[num, length]`` ancestral samples (seeded by ``gen``)."""
        chunks = []
        for start in range(0, num, batch):
            size = min(batch, num - start)
            token = torch.full((size, 1), START_TOKEN, dtype=torch.long)
            state = None
            out = []
            for _ in range(length):
                hidden, state = self.lstm(self.embed(token), state)
                cdf = torch.softmax(self.out(hidden[:, -1]), -1).cumsum(-1)
                # inverse-CDF sampling: torch.multinomial is ~15x slower on CPU at V = 5000
                u = torch.rand(size, 1, generator=gen) * cdf[:, -1:]
                token = torch.searchsorted(cdf, u, right=True).clamp(max=self.vocab_size - 1)
                out.append(token)
            chunks.append(torch.cat(out, 1))
        return torch.cat(chunks, 0)
