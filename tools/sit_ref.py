"""Reference SiT model (REPA / iREPA, latent diffusion) in plain PyTorch.

Written from the project specification (shared/spec/sit.md and
shared/spec/heads_and_losses.md), not from the original code base.  It is the
oracle for parameter-count goldens and, later, for numeric goldens (it runs in
any floating dtype, including float64).

Module paths and registration order reproduce the reference state_dict layout
(sit.md section 7):

    pos_embed                          (root parameter, frozen)
    x_embedder.proj.{weight,bias}
    t_embedder.mlp.{0,2}.{weight,bias}
    y_embedder.embedding_table.weight
    blocks.{i}.attn.qkv / attn.proj / mlp.fc1 / mlp.fc2 / adaLN_modulation.1
    projectors.{e}.projection_layer[.{0,2,4}].{weight,bias}
    final_layer.linear / final_layer.adaLN_modulation.1

Only depends on torch.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "SIT_CONFIGS",
    "sit_config",
    "build_sit",
    "SiT",
    "PatchEmbed",
    "TimestepEmbedder",
    "LabelEmbedder",
    "Attention",
    "Mlp",
    "SiTBlock",
    "Projector",
    "FinalLayer",
    "sincos_pos_embed_2d",
    "timestep_frequencies",
    "modulate",
    "unpatchify",
    "initialize_weights",
    "spatial_normalize",
    "cosine_alignment_loss",
    "projection_loss",
    "interpolant",
    "sample_time",
    "flow_matching_loss",
    "ldm_total_loss",
]

# --------------------------------------------------------------------------
# Model table (sit.md section 1)
# --------------------------------------------------------------------------

# Default width used for the final layer when the constructor is not told
# otherwise.  SiT-XL/L/B override it with their hidden size; SiT-S does not,
# so SiT-S/* is built with a 768-wide final layer on 384-wide tokens and its
# forward pass fails with a shape error (spec README quirk 9).
DEFAULT_FINAL_WIDTH = 768

_SIZES = {
    #        depth, hidden, heads, final_width
    "XL": (28, 1152, 16, 1152),
    "L": (24, 1024, 16, 1024),
    "B": (12, 768, 12, 768),
    "S": (12, 384, 6, DEFAULT_FINAL_WIDTH),  # quirk: 768, not 384
}

SIT_CONFIGS: Dict[str, Dict[str, int]] = {}
for _size, (_depth, _hidden, _heads, _fw) in _SIZES.items():
    for _p in (2, 4, 8):
        SIT_CONFIGS[f"SiT-{_size}/{_p}"] = dict(
            depth=_depth,
            hidden=_hidden,
            heads=_heads,
            patch_size=_p,
            mlp_ratio=4,
            final_width=_fw,
        )
del _size, _depth, _hidden, _heads, _fw, _p

# SiT-S/* cannot run a forward pass as written (final width 768 != hidden 384).
SIT_BROKEN = frozenset(k for k, v in SIT_CONFIGS.items() if v["final_width"] != v["hidden"])


def sit_config(name: str) -> Dict[str, int]:
    """Copy of the architecture entry for a registry key such as "SiT-B/2"."""
    if name not in SIT_CONFIGS:
        raise KeyError(f"unknown SiT model {name!r}; known: {sorted(SIT_CONFIGS)}")
    return dict(SIT_CONFIGS[name])


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def modulate(u: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """u * (1 + scale) + shift, shift/scale [N, D] broadcast over tokens of u [N, T, D]."""
    return u * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def sincos_pos_embed_2d(dim: int, grid: int) -> torch.Tensor:
    """Fixed 2-D sin-cos table, float64, shape [grid*grid, dim] (sit.md section 2).

    Token t = i*grid + j (row i, column j).  With Q = dim/4 and
    w_k = 10000^(-k/Q):  channels [0,Q) sin(j w), [Q,2Q) cos(j w),
    [2Q,3Q) sin(i w), [3Q,4Q) cos(i w).  The column index comes first.
    """
    if dim % 4 != 0:
        raise ValueError(f"sin-cos embedding needs dim divisible by 4, got {dim}")
    q = dim // 4
    k = torch.arange(q, dtype=torch.float64)
    omega = 1.0 / (10000.0 ** (k / q))
    pos = torch.arange(grid, dtype=torch.float64)
    row = pos.repeat_interleave(grid)  # i for token i*grid + j
    col = pos.repeat(grid)  # j
    a_col = col[:, None] * omega[None, :]
    a_row = row[:, None] * omega[None, :]
    return torch.cat([a_col.sin(), a_col.cos(), a_row.sin(), a_row.cos()], dim=1)


def timestep_frequencies(n_freq: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """f_k = exp(-ln(max_period) * k / half), k < half, in float32 (as the reference)."""
    half = n_freq // 2
    k = torch.arange(half, dtype=torch.float32)
    return torch.exp(-math.log(max_period) * k / half)


def unpatchify(y: torch.Tensor, patch: int, channels: int) -> torch.Tensor:
    """[N, T, p*p*C] -> [N, C, G*p, G*p].

    y[n, i*G + j, (a*p + b)*C + c] -> img[n, c, i*p + a, j*p + b].
    """
    n, t, width = y.shape
    g = int(round(math.sqrt(t)))
    if g * g != t:
        raise ValueError(f"token count {t} is not a square")
    if width != patch * patch * channels:
        raise ValueError(f"width {width} != p*p*C = {patch * patch * channels}")
    y = y.reshape(n, g, g, patch, patch, channels)  # n, i, j, a, b, c
    y = y.permute(0, 5, 1, 3, 2, 4)  # n, c, i, a, j, b
    return y.reshape(n, channels, g * patch, g * patch)


# --------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------


class PatchEmbed(nn.Module):
    """Conv with kernel = stride = p (bias), output tokens row-major [N, T, D]."""

    def __init__(self, input_size: int, patch_size: int, in_channels: int, hidden: int):
        super().__init__()
        if input_size % patch_size != 0:
            raise ValueError(f"input_size {input_size} not divisible by patch {patch_size}")
        self.input_size = input_size
        self.patch_size = patch_size
        self.grid = input_size // patch_size
        self.num_patches = self.grid * self.grid
        self.proj = nn.Conv2d(in_channels, hidden, kernel_size=patch_size, stride=patch_size, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f"expected {self.input_size}x{self.input_size} input, got {tuple(x.shape[-2:])}")
        x = self.proj(x)  # N, D, G, G
        return x.flatten(2).transpose(1, 2)  # N, T, D


class TimestepEmbedder(nn.Module):
    """Sinusoidal (cos first, 256 freqs) -> Linear(256, D) -> SiLU -> Linear(D, D).

    t is fed raw (flow time in [0, 1], no x1000).  Faithful to the reference,
    frequencies and their arguments are computed in float32 and the embedding is
    then cast to t's dtype; set ``fp32_frequencies = False`` to compute them in
    t's dtype instead (e.g. for a pure float64 oracle).
    """

    def __init__(self, hidden: int, frequency_embedding_size: int = 256):
        super().__init__()
        self.frequency_embedding_size = frequency_embedding_size
        self.fp32_frequencies = True
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden, bias=True),
            nn.SiLU(),
            nn.Linear(hidden, hidden, bias=True),
        )

    def frequency_embedding(self, t: torch.Tensor, max_period: float = 10000.0) -> torch.Tensor:
        n = self.frequency_embedding_size
        freqs = timestep_frequencies(n, max_period).to(t.device)
        if self.fp32_frequencies:
            args = t[:, None].float() * freqs[None]
        else:
            half = n // 2
            k = torch.arange(half, dtype=t.dtype, device=t.device)
            args = t[:, None] * torch.exp(-math.log(max_period) * k / half)[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        if n % 2:
            emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
        return emb.to(t.dtype)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        emb = self.frequency_embedding(t)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


class LabelEmbedder(nn.Module):
    """Class table with an extra null row (index num_classes) when dropout > 0.

    In training mode each label is independently replaced by the null class
    when u < dropout_prob, u ~ U[0, 1) drawn on the labels' device.
    """

    def __init__(self, num_classes: int, hidden: int, dropout_prob: float):
        super().__init__()
        use_null = dropout_prob > 0
        self.embedding_table = nn.Embedding(num_classes + int(use_null), hidden)
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob

    def token_drop(
        self,
        labels: torch.Tensor,
        force_drop_ids: Optional[torch.Tensor] = None,
        generator: Optional[torch.Generator] = None,
    ) -> torch.Tensor:
        if force_drop_ids is None:
            drop = torch.rand(labels.shape[0], device=labels.device, generator=generator) < self.dropout_prob
        else:
            drop = force_drop_ids == 1
        return torch.where(drop, torch.full_like(labels, self.num_classes), labels)

    def forward(
        self,
        labels: torch.Tensor,
        train: bool,
        force_drop_ids: Optional[torch.Tensor] = None,
        generator: Optional[torch.Generator] = None,
    ) -> torch.Tensor:
        if (train and self.dropout_prob > 0) or force_drop_ids is not None:
            labels = self.token_drop(labels, force_drop_ids, generator)
        return self.embedding_table(labels)


# --------------------------------------------------------------------------
# Transformer block
# --------------------------------------------------------------------------


class Attention(nn.Module):
    """Multi-head self-attention, qkv Linear(D, 3D) + proj Linear(D, D), no mask/dropout.

    qkv output column s*D + h*hd + e holds component s (q, k, v), head h, dim e.
    """

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        if hidden % heads != 0:
            raise ValueError(f"hidden {hidden} not divisible by heads {heads}")
        self.heads = heads
        self.head_dim = hidden // heads
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=True)
        self.proj = nn.Linear(hidden, hidden, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each N, H, T, hd
        logits = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        o = logits.softmax(dim=-1) @ v  # N, H, T, hd
        o = o.transpose(1, 2).reshape(n, t, d)  # head-major channel order
        return self.proj(o)


class Mlp(nn.Module):
    """fc1 (D -> r*D) -> GELU (tanh approximation) -> fc2 (r*D -> D)."""

    def __init__(self, hidden: int, mlp_hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(hidden, mlp_hidden, bias=True)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(mlp_hidden, hidden, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SiTBlock(nn.Module):
    """adaLN-Zero block.  adaLN_modulation = Sequential(SiLU, Linear(D, 6D))."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden, heads)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden, int(hidden * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden, bias=True))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=-1)
        x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


# --------------------------------------------------------------------------
# Projector (heads_and_losses.md section 1)
# --------------------------------------------------------------------------

PROJECTOR_TYPES = ("mlp", "linear", "conv")


class Projector(nn.Module):
    """Maps block tokens [B, T, D] to [B, T, Z].

    mlp    : Sequential(Linear(D, P), SiLU, Linear(P, P), SiLU, Linear(P, Z))
    linear : Linear(D, Z)
    conv   : Conv2d(D, Z, k, stride 1, padding k//2) applied on the G x G token grid
    """

    def __init__(self, hidden: int, projector_dim: int, z_dim: int, layer_type: str = "mlp", kernel_size: int = 1):
        super().__init__()
        if layer_type not in PROJECTOR_TYPES:
            raise ValueError(f"unknown projection_layer_type {layer_type!r}; expected one of {PROJECTOR_TYPES}")
        self.layer_type = layer_type
        if layer_type == "mlp":
            self.projection_layer = nn.Sequential(
                nn.Linear(hidden, projector_dim, bias=True),
                nn.SiLU(),
                nn.Linear(projector_dim, projector_dim, bias=True),
                nn.SiLU(),
                nn.Linear(projector_dim, z_dim, bias=True),
            )
        elif layer_type == "linear":
            self.projection_layer = nn.Linear(hidden, z_dim, bias=True)
        else:
            self.projection_layer = nn.Conv2d(
                hidden, z_dim, kernel_size=kernel_size, stride=1, padding=kernel_size // 2, bias=True
            )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.layer_type != "conv":
            return self.projection_layer(h)
        b, t, d = h.shape
        g = int(round(math.sqrt(t)))
        if g * g != t:
            raise ValueError(f"conv projector needs a square token grid, got T={t}")
        x = h.reshape(b, g, g, d).permute(0, 3, 1, 2)  # B, D, G, G
        x = self.projection_layer(x)  # B, Z, G, G
        return x.permute(0, 2, 3, 1).reshape(b, t, -1)


# --------------------------------------------------------------------------
# Final layer
# --------------------------------------------------------------------------


class FinalLayer(nn.Module):
    """adaLN (shift, scale) + Linear(W, p*p*C); W = final_width (== hidden except SiT-S)."""

    def __init__(self, width: int, patch_size: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(width, patch_size * patch_size * out_channels, bias=True)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width, bias=True))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


# --------------------------------------------------------------------------
# SiT
# --------------------------------------------------------------------------


class SiT(nn.Module):
    """SiT backbone with REPA / iREPA projectors tapped after block ``encoder_depth``.

    forward(x [N,C,L,L], t [N], y [N] int64) -> (out [N,C,L,L], zs)
    zs is a list with one [N, T, Z_e] tensor per encoder, or None when the model
    has no projectors (eval_mode or empty z_dims).
    """

    def __init__(
        self,
        input_size: int = 32,
        patch_size: int = 2,
        in_channels: int = 4,
        hidden: int = 1152,
        depth: int = 28,
        heads: int = 16,
        mlp_ratio: float = 4.0,
        num_classes: int = 1000,
        class_dropout_prob: float = 0.1,
        encoder_depth: int = 8,
        z_dims: Sequence[int] = (768,),
        projector_dim: int = 2048,
        projection_layer_type: str = "mlp",
        proj_kernel_size: int = 3,
        final_width: int = DEFAULT_FINAL_WIDTH,
        eval_mode: bool = False,
        init_weights: bool = True,
    ):
        super().__init__()
        self.input_size = input_size
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.out_channels = in_channels
        self.hidden = hidden
        self.depth = depth
        self.heads = heads
        self.num_classes = num_classes
        self.encoder_depth = encoder_depth
        self.z_dims = list(z_dims)
        self.projection_layer_type = projection_layer_type
        self.proj_kernel_size = proj_kernel_size
        self.final_width = final_width
        self.eval_mode = eval_mode

        # Construction order: embedders, pos_embed, blocks, projectors, final layer.
        # (pos_embed is a root parameter, so it comes first in the state_dict anyway.)
        self.x_embedder = PatchEmbed(input_size, patch_size, in_channels, hidden)
        self.t_embedder = TimestepEmbedder(hidden)
        self.y_embedder = LabelEmbedder(num_classes, hidden, class_dropout_prob)
        num_patches = self.x_embedder.num_patches
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches, hidden), requires_grad=False)
        self.blocks = nn.ModuleList([SiTBlock(hidden, heads, mlp_ratio) for _ in range(depth)])
        if not eval_mode and len(self.z_dims) > 0:
            self.projectors = nn.ModuleList(
                [
                    Projector(hidden, projector_dim, z, projection_layer_type, proj_kernel_size)
                    for z in self.z_dims
                ]
            )
        else:
            self.projectors = None
        self.final_layer = FinalLayer(final_width, patch_size, self.out_channels)

        if init_weights:
            initialize_weights(self)

    @property
    def grid(self) -> int:
        return self.x_embedder.grid

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        y: torch.Tensor,
        return_raw: bool = False,
        force_drop_ids: Optional[torch.Tensor] = None,
        generator: Optional[torch.Generator] = None,
    ):
        h = self.x_embedder(x) + self.pos_embed
        c = self.t_embedder(t) + self.y_embedder(y, self.training, force_drop_ids, generator)
        zs = None
        zs_raw = None
        for i, block in enumerate(self.blocks):
            h = block(h, c)
            if self.projectors is not None and (i + 1) == self.encoder_depth:
                zs = [proj(h) for proj in self.projectors]
                zs_raw = [h.clone() for _ in self.projectors]
        out = unpatchify(self.final_layer(h, c), self.patch_size, self.out_channels)
        if return_raw:
            return out, zs, zs_raw
        return out, zs


def build_sit(name: str, **kwargs) -> SiT:
    """Build a registry model, e.g. build_sit("SiT-B/2", input_size=32, z_dims=[768])."""
    cfg = sit_config(name)
    cfg.update(kwargs)
    return SiT(**cfg)


@torch.no_grad()
def initialize_weights(model: SiT) -> None:
    """Initialisation of sit.md section 6, in the order executed there."""
    # 1. every nn.Linear (incl. MLP / linear projectors): Xavier-uniform, bias 0.
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    # 2. fixed sin-cos table, computed in float64 and stored as float32 (as the
    #    reference does), then widened to the parameter dtype.
    table = sincos_pos_embed_2d(model.hidden, model.grid).float()
    model.pos_embed.copy_(table.unsqueeze(0).to(model.pos_embed.dtype))
    # 3. patch embed: weight as [D, C*p*p] Xavier-uniform, bias 0.
    w = model.x_embedder.proj.weight
    nn.init.xavier_uniform_(w.view(w.shape[0], -1))
    nn.init.zeros_(model.x_embedder.proj.bias)
    # 4. label table ~ N(0, 0.02^2)
    nn.init.normal_(model.y_embedder.embedding_table.weight, std=0.02)
    # 5. timestep MLP weights ~ N(0, 0.02^2) (biases stay 0)
    nn.init.normal_(model.t_embedder.mlp[0].weight, std=0.02)
    nn.init.normal_(model.t_embedder.mlp[2].weight, std=0.02)
    # 6. adaLN-Zero in every block
    for block in model.blocks:
        nn.init.zeros_(block.adaLN_modulation[-1].weight)
        nn.init.zeros_(block.adaLN_modulation[-1].bias)
    # 7. final layer: adaLN and output linear to zero
    nn.init.zeros_(model.final_layer.adaLN_modulation[-1].weight)
    nn.init.zeros_(model.final_layer.adaLN_modulation[-1].bias)
    nn.init.zeros_(model.final_layer.linear.weight)
    nn.init.zeros_(model.final_layer.linear.bias)
    # Conv projectors keep PyTorch's default Conv2d init from construction:
    # weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = D*k*k.


# --------------------------------------------------------------------------
# Losses (heads_and_losses.md sections 2-4)
# --------------------------------------------------------------------------


def spatial_normalize(f: torch.Tensor, method: str = "zscore", alpha: float = 0.6, eps: float = 1e-6) -> torch.Tensor:
    """Spatial z-score of encoder tokens f [B, T, Z] over the token axis.

    f' = (f - alpha * mean) / (std + eps), std unbiased (T-1) about the full mean.
    alpha is 0.6 in ldm, 0.8 in jit.  method "none" is the identity.
    """
    if method == "none":
        return f
    if method != "zscore":
        raise ValueError(f"unknown spatial normalisation {method!r}")
    mean = f.mean(dim=1, keepdim=True)
    std = f.std(dim=1, keepdim=True, unbiased=True)
    return (f - alpha * mean) / (std + eps)


def cosine_alignment_loss(target: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """-mean_{b,t} <n(target), n(pred)>, n(u) = u / max(||u||, 1e-12) over channels.

    Note: minus cosine, not 1 - cosine (range [-1, 1]).
    """
    tn = F.normalize(target, dim=-1, eps=1e-12)
    pn = F.normalize(pred, dim=-1, eps=1e-12)
    return -(tn * pn).sum(dim=-1).mean()


def projection_loss(targets: Sequence[torch.Tensor], preds: Sequence[torch.Tensor]) -> torch.Tensor:
    """Cosine alignment averaged over encoders: (sum_e L_e) / #encoders."""
    if len(targets) != len(preds) or len(targets) == 0:
        raise ValueError("need the same, non-zero number of targets and predictions")
    return sum(cosine_alignment_loss(f, g) for f, g in zip(targets, preds)) / len(targets)


def interpolant(t: torch.Tensor, path_type: str = "linear") -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(alpha_t, sigma_t, d alpha_t, d sigma_t); t = 0 is data, t = 1 is noise."""
    if path_type == "linear":
        return 1 - t, t, -torch.ones_like(t), torch.ones_like(t)
    if path_type == "cosine":
        half_pi = math.pi / 2
        return (
            torch.cos(t * half_pi),
            torch.sin(t * half_pi),
            -half_pi * torch.sin(t * half_pi),
            half_pi * torch.cos(t * half_pi),
        )
    raise NotImplementedError(f"unknown path_type {path_type!r}")


def sample_time(
    batch: int,
    weighting: str = "uniform",
    path_type: str = "linear",
    generator: Optional[torch.Generator] = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """One t per sample, shape [B, 1, 1, 1], drawn on the CPU (move it afterwards)."""
    if weighting == "uniform":
        return torch.rand((batch, 1, 1, 1), generator=generator, dtype=dtype)
    if weighting == "lognormal":
        sigma = torch.randn((batch, 1, 1, 1), generator=generator, dtype=dtype).exp()
        if path_type == "linear":
            return sigma / (1 + sigma)
        if path_type == "cosine":
            return 2 / math.pi * torch.atan(sigma)
        raise NotImplementedError(f"unknown path_type {path_type!r}")
    raise NotImplementedError(f"unknown weighting {weighting!r}")


def flow_matching_loss(
    model: nn.Module,
    x0: torch.Tensor,
    y: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
    path_type: str = "linear",
) -> Tuple[torch.Tensor, Optional[List[torch.Tensor]]]:
    """ldm SILoss with velocity prediction.

    x_t = alpha_t x0 + sigma_t eps, target v = d alpha_t x0 + d sigma_t eps
    (linear path: eps - x0).  t has shape [B, 1, 1, 1] (see sample_time), noise
    the shape of x0; both are explicit so the computation is deterministic.
    Returns (per-sample mean-squared error over C, H, W [B], zs of the model).
    """
    t = t.to(device=x0.device, dtype=x0.dtype)
    a, s, da, ds = interpolant(t, path_type)
    x_t = a * x0 + s * noise
    v = da * x0 + ds * noise
    out, zs = model(x_t, t.flatten(), y)
    per_sample = ((out - v) ** 2).mean(dim=tuple(range(1, out.dim())))
    return per_sample, zs


def ldm_total_loss(
    denoise_per_sample: torch.Tensor,
    proj_losses: Sequence[torch.Tensor] = (),
    proj_coeffs: Sequence[float] = (),
) -> torch.Tensor:
    """L = mean_b(L_denoise[b]) + sum_i coeff_i * L_proj,i.

    Coefficients: ldm REPA 0.5, ldm iREPA 1.0.
    """
    if len(proj_losses) != len(proj_coeffs):
        raise ValueError("one coefficient per projection loss type")
    total = denoise_per_sample.mean()
    for lp, c in zip(proj_losses, proj_coeffs):
        total = total + c * lp
    return total


# --------------------------------------------------------------------------
# Self-test: python tools/sit_ref.py
# --------------------------------------------------------------------------


def _selftest() -> None:
    torch.manual_seed(0)
    dt = torch.float64
    # tiny model: L = 8, p = 2 -> G = 4, T = 16
    kw = dict(
        input_size=8, patch_size=2, in_channels=4, hidden=32, depth=3, heads=4, num_classes=10,
        encoder_depth=2, z_dims=[24, 16], projector_dim=40, final_width=32,
    )
    for ptype, k in (("mlp", 1), ("linear", 1), ("conv", 1), ("conv", 3)):
        m = SiT(projection_layer_type=ptype, proj_kernel_size=k, **kw).to(dt).eval()
        x = torch.randn(2, 4, 8, 8, dtype=dt)
        t = torch.rand(2, dtype=dt)
        y = torch.tensor([3, 10])
        out, zs = m(x, t, y)
        assert out.shape == x.shape and torch.count_nonzero(out) == 0, "zero-init output must be exactly 0"
        assert [z.shape for z in zs] == [torch.Size([2, 16, 24]), torch.Size([2, 16, 16])]
        # every block is the identity at init -> tap equals the embedded input
        h0 = m.x_embedder(x) + m.pos_embed
        _, _, raw = m(x, t, y, return_raw=True)
        assert torch.equal(raw[0], h0)

    # pos_embed table: column index in the first half
    tab = sincos_pos_embed_2d(8, 3)
    i, j = 1, 2
    row = tab[i * 3 + j]
    assert torch.allclose(row[:2], torch.tensor([math.sin(j), math.sin(j * 1e-2)], dtype=dt))
    assert torch.allclose(row[4:6], torch.tensor([math.sin(i), math.sin(i * 1e-2)], dtype=dt))

    # unpatchify index map
    p, C, G = 2, 3, 2
    yv = torch.arange(G * G * p * p * C, dtype=dt).reshape(1, G * G, p * p * C)
    img = unpatchify(yv, p, C)
    for ii in range(G):
        for jj in range(G):
            for a in range(p):
                for b in range(p):
                    for c in range(C):
                        assert img[0, c, ii * p + a, jj * p + b] == yv[0, ii * G + jj, (a * p + b) * C + c]

    # attention vs PyTorch SDPA, random weights
    att = Attention(32, 4).to(dt)
    xa = torch.randn(2, 16, 32, dtype=dt)
    qkv = att.qkv(xa).reshape(2, 16, 3, 4, 8).permute(2, 0, 3, 1, 4)
    ref = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]).transpose(1, 2).reshape(2, 16, 32)
    assert torch.allclose(att(xa), att.proj(ref), atol=1e-12)

    # spatial z-score / -cos loss
    f = torch.randn(2, 16, 5, dtype=dt)
    fn = spatial_normalize(f, alpha=1.0)
    assert torch.allclose(fn.mean(1), torch.zeros(2, 5, dtype=dt), atol=1e-12)
    assert abs(cosine_alignment_loss(f, f).item() + 1.0) < 1e-12
    assert abs(cosine_alignment_loss(f, -f).item() - 1.0) < 1e-12

    # flow-matching loss at init: out == 0 -> loss = mean((eps - x0)^2)
    m = SiT(**kw).to(dt).train()
    x0 = torch.randn(2, 4, 8, 8, dtype=dt)
    eps = torch.randn_like(x0)
    tt = sample_time(2, dtype=dt)
    l, zs = flow_matching_loss(m, x0, torch.tensor([1, 2]), tt, eps)
    assert torch.allclose(l, ((eps - x0) ** 2).mean(dim=(1, 2, 3)))

    # SiT-S quirk: final width 768 on 384-wide tokens -> forward fails
    assert "SiT-S/2" in SIT_BROKEN and "SiT-B/2" not in SIT_BROKEN
    print("sit_ref self-test OK (torch %s)" % torch.__version__)


if __name__ == "__main__":
    _selftest()
