"""A discrete VAE (VQ-VAE) over mel spectrograms, state-dict compatible with DL-Art-School's `DiscreteVAE`.

With `DVAEConfig()` (the defaults) the module's state dict has exactly the keys and shapes of TorToiSe's
`dvae.pth` (channels 80, 8192 codes of dim 512, hidden 512, 2 stride-2 layers, 3 residual blocks), so the original
file and a tortuner-trained one are interchangeable. Smaller configurations serve the lab and the tests.

Semantics (the contract everything in tortuner relies on):
  encode:   mel (B, C, T) -> z (B, ceil(T/4), D)                (two stride-2 convs + residual blocks)
  tokenize: token = argmin_j ||z_t - embed[:, j]||^2           (codes are the *columns* of `codebook.embed`)
  decode:   tokens (B, N) -> embed.T[tokens] -> mel (B, C, 4N)  (nearest x2 upsampling twice)
The codebook is trained by exponential moving averages (decay 0.99, Laplace-smoothed counts, eps 1e-5) with a
commitment loss and a straight-through estimator, as in DL-Art-School.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class DVAEConfig:
    channels: int = 80
    num_tokens: int = 8192
    codebook_dim: int = 512
    hidden_dim: int = 512
    num_layers: int = 2
    num_resnet_blocks: int = 3
    kernel_size: int = 3
    ema_decay: float = 0.99
    ema_eps: float = 1e-5

    @property
    def downsample(self) -> int:
        return 2 ** self.num_layers


TORTOISE_DVAE = DVAEConfig()


class ResBlock(nn.Module):
    """conv k - ReLU - conv k - ReLU - conv 1, added to the input (keys `net.0`, `net.2`, `net.4`)."""

    def __init__(self, chan: int, kernel_size: int):
        super().__init__()
        pad = kernel_size // 2
        self.net = nn.Sequential(
            nn.Conv1d(chan, chan, kernel_size, padding=pad), nn.ReLU(),
            nn.Conv1d(chan, chan, kernel_size, padding=pad), nn.ReLU(),
            nn.Conv1d(chan, chan, 1),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            return self.net(x) + x
        h = x
        for layer in self.net:  # re-zero the padding after each conv, as if each item were alone
            h = layer(h) * mask if isinstance(layer, nn.Conv1d) else layer(h)
        return h + x


class UpsampledConv(nn.Module):
    """Nearest-neighbour x2 upsampling then a same-length convolution (key `conv`)."""

    def __init__(self, cin: int, cout: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def code_distances(z: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
    """Squared euclidean distances of vectors z (..., dim) to the codes, the columns of `embed` (dim, n): (..., n).

    Differentiable in both, so recovery's distillation trains a codebook through it (`recover.distill`).
    """
    return z.pow(2).sum(-1, keepdim=True) - 2 * z @ embed + embed.pow(2).sum(0)


class EMACodebook(nn.Module):
    """Vector quantiser whose codes are the columns of `embed` (dim, n), updated by exponential moving averages."""

    def __init__(self, dim: int, n: int, decay: float = 0.99, eps: float = 1e-5):
        super().__init__()
        self.dim, self.n, self.decay, self.eps = dim, n, decay, eps
        embed = torch.randn(dim, n)
        self.register_buffer("embed", embed)
        self.register_buffer("cluster_size", torch.zeros(n))
        self.register_buffer("embed_avg", embed.clone())

    def distances(self, z: torch.Tensor) -> torch.Tensor:
        """Squared euclidean distances (..., dim) -> (..., n)."""
        return code_distances(z, self.embed)

    def lookup(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (...) -> vectors (..., dim)."""
        return F.embedding(tokens, self.embed.t())

    @torch.no_grad()
    def ema_update(self, flat: torch.Tensor, tokens: torch.Tensor) -> None:
        onehot = F.one_hot(tokens, self.n).type(flat.dtype)
        counts, sums = onehot.sum(0), flat.t() @ onehot
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(counts)
            torch.distributed.all_reduce(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.n * self.eps) * total
        self.embed.copy_(self.embed_avg / smoothed.unsqueeze(0))

    @torch.no_grad()
    def restart_dead_codes(self, flat: torch.Tensor, min_count: float = 1e-3, relative: float = 0.0,
                           refill: float = 0.0, jitter: float = 0.01, generator: torch.Generator | None = None,
                           reseed: bool = False) -> int:
        """Move the codes that fell out of use onto random recent encoder outputs `flat` (N, dim); returns how many.

        Dead = EMA count below max(`min_count`, `relative` x the mean count). A moved code is a random row of `flat`
        (drawn with `generator`, torch's global one by default) plus gaussian noise of `jitter` x the rows' std,
        and restarts with a count of max(1, `refill` x the mean count). `reseed` first zeroes every count, so every
        code moves: a k-means-style start for a codebook whose random initial vectors lie far from the encoder's.

        Not part of DL-Art-School's recipe: VQ-VAEs trained from scratch use it so that a small codebook ends up
        well used, the lab's teacher (`lab.train.train_teacher`) and recovery's baseline (`recover.baseline`).
        """
        if reseed:
            self.cluster_size.zero_()
        mean = float(self.cluster_size.mean())
        dead = (self.cluster_size < max(min_count, relative * mean)).nonzero().squeeze(1)
        if dead.numel() == 0 or flat.shape[0] == 0:
            return 0
        picks = flat[torch.randint(0, flat.shape[0], (dead.numel(),), generator=generator, device=flat.device)]
        if jitter:
            picks = picks + jitter * picks.std() * torch.randn_like(picks)
        self.embed[:, dead] = picks.t()
        self.embed_avg[:, dead] = picks.t()
        self.cluster_size[dead] = max(1.0, refill * mean)
        return int(dead.numel())


class DiscreteVAE(nn.Module):
    def __init__(self, cfg: DVAEConfig = TORTOISE_DVAE):
        super().__init__()
        self.cfg = cfg
        k, h = cfg.kernel_size, cfg.hidden_dim
        chans = [h * 2**i for i in range(cfg.num_layers)]  # 512, 1024 for TorToiSe
        enc: list[nn.Module] = []
        cin = cfg.channels
        for c in chans:
            enc.append(nn.Sequential(nn.Conv1d(cin, c, k, stride=2, padding=k // 2), nn.ReLU()))
            cin = c
        enc += [ResBlock(chans[-1], k) for _ in range(cfg.num_resnet_blocks)]
        enc.append(nn.Conv1d(chans[-1], cfg.codebook_dim, 1))
        self.encoder = nn.Sequential(*enc)

        dec: list[nn.Module] = [nn.Conv1d(cfg.codebook_dim, chans[-1], 1)]
        dec += [ResBlock(chans[-1], k) for _ in range(cfg.num_resnet_blocks)]
        dec_chans = [chans[-1], *reversed(chans)]  # 1024 -> 1024 -> 512 for TorToiSe
        for cin, cout in zip(dec_chans, dec_chans[1:]):
            dec.append(nn.Sequential(UpsampledConv(cin, cout, k), nn.ReLU()))
        dec.append(nn.Conv1d(dec_chans[-1], cfg.channels, 1))
        self.decoder = nn.Sequential(*dec)
        self.codebook = EMACodebook(cfg.codebook_dim, cfg.num_tokens, cfg.ema_decay, cfg.ema_eps)

    def encode(self, mel: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """mel (B, C, T) -> pre-quantisation vectors (B, ceil(T/4), D).

        With `lengths` (valid frames per item of a zero-padded batch), activations past each item's end are zeroed
        after every convolution, so every item's vectors equal those of encoding it alone (exact batching).
        """
        if lengths is None:
            return self.encoder(mel).transpose(1, 2)
        x = mel
        for module in self.encoder:
            if isinstance(module, ResBlock):
                x = module(x, _mask(lengths, x))
                continue
            if isinstance(module, nn.Sequential):  # strided conv: the valid length halves (ceil)
                lengths = (lengths + 1) // 2
            x = module(x)
            x = x * _mask(lengths, x)
        return x.transpose(1, 2)

    def logits(self, mel: torch.Tensor) -> torch.Tensor:
        """Negative squared distances to every code, (B, T', n): argmax is the token; softmax a distribution."""
        return -self.codebook.distances(self.encode(mel))

    @torch.no_grad()
    def tokenize(self, mel: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """mel (B, C, T) -> tokens (B, ceil(T/4)) int64 (see `encode` for `lengths`)."""
        return self.codebook.distances(self.encode(mel, lengths)).argmin(-1)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, N) -> mel (B, C, 4N)."""
        return self.decode_vectors(self.codebook.lookup(tokens))

    def decode_vectors(self, z: torch.Tensor) -> torch.Tensor:
        """(B, N, D) code vectors -> mel (B, C, 4N)."""
        return self.decoder(z.transpose(1, 2))

    def forward(self, mel: torch.Tensor,
                update_codebook: bool | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Standard VQ-VAE step: returns (reconstruction (B,C,T'), commitment loss, tokens).

        In training mode the codebook is updated by EMA (unless `update_codebook=False`). The reconstruction is cut
        to the input length; callers compute MSE(mel, recon) and add `commitment_weight * commitment`.
        """
        z = self.encode(mel).float()
        # The codebook stays in float32 under autocast: nearest-code search and EMA sums are what low precision breaks.
        with torch.autocast(z.device.type, enabled=False):
            flat = z.reshape(-1, z.shape[-1])
            tokens = self.codebook.distances(flat.detach()).argmin(-1)
            if update_codebook if update_codebook is not None else self.training:
                self.codebook.ema_update(flat.detach(), tokens)
            q = self.codebook.lookup(tokens).view_as(z)
            commitment = F.mse_loss(q.detach(), z)
            q = z + (q - z).detach()  # straight-through
        recon = self.decode_vectors(q)[..., : mel.shape[-1]]
        return recon, commitment, tokens.view(z.shape[:2])


def _mask(lengths: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) valid lengths -> (B, 1, T) 0/1 mask matching x (B, C, T)."""
    return (torch.arange(x.shape[-1], device=x.device)[None, :] < lengths[:, None]).to(x.dtype)[:, None, :]


def config_from_state_dict(sd: dict[str, torch.Tensor]) -> DVAEConfig:
    """Infer the architecture of a DL-Art-School-layout dVAE state dict from its tensor shapes."""
    num_layers = sum(1 for k in sd if k.startswith("encoder.") and k.endswith(".0.weight") and k.count(".") == 3)
    blocks = {k.split(".")[1] for k in sd if k.startswith("encoder.") and ".net.0.weight" in k}
    w0 = sd["encoder.0.0.weight"]
    return DVAEConfig(
        channels=w0.shape[1], hidden_dim=w0.shape[0], kernel_size=w0.shape[2], num_layers=num_layers,
        num_resnet_blocks=len(blocks), codebook_dim=sd["codebook.embed"].shape[0],
        num_tokens=sd["codebook.embed"].shape[1],
    )
