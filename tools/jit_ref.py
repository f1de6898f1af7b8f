"""Reference JiT (pixel diffusion with REPA / iREPA) in plain PyTorch.

Written from the project specification (shared/spec/jit.md, with the JiT
denoiser of shared/spec/heads_and_losses.md section 5 and the schedule of
shared/spec/training.md section 5), not from the original code base.  It is
the oracle for the parameter-layout goldens and the numeric goldens of
models/jit.irg; it runs in any floating dtype, float64 included.

Pieces identical to SiT are imported from tools/sit_ref.py: the timestep
embedder, the 2-D sin-cos table, the projectors, modulate, unpatchify, the
spatial z-score and the cosine alignment loss.

state_dict layout of the Denoiser (jit.md section 5), every key under `net.`:

    pos_embed, in_context_posemb                   (root parameters)
    t_embedder.mlp.{0,2}.{weight,bias}
    y_embedder.embedding_table.weight              (num_classes + 1 rows)
    x_embedder.proj1.weight, x_embedder.proj2.{weight,bias}
    blocks.{i}.norm1 / attn.{q_norm,k_norm,qkv,proj} / norm2 / mlp.{w12,w3} / adaLN_modulation.1
    projectors.{e}.projection_layer[.{0,2,4}].{weight,bias}
    final_layer.norm_final / linear / adaLN_modulation.1

Precision: the reference computes RMSNorm, the attention logits and softmax
and the RoPE tables in float32.  Here RMSNorm and the logits are computed in
the wider of float32 and the input dtype (so a float64 run stays float64);
the RoPE tables are float32 unless ``rope_dtype`` says otherwise (the numeric
goldens build them in float64).

Only depends on torch.

    python3 tools/jit_ref.py      # self-test: parameter counts of spec section 5, shapes, RoPE
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sit_ref import (  # noqa: E402
    Projector,
    TimestepEmbedder,
    cosine_alignment_loss,
    modulate,
    projection_loss,
    sincos_pos_embed_2d,
    spatial_normalize,
    unpatchify,
)

__all__ = [
    "JIT_CONFIGS",
    "jit_config",
    "build_jit",
    "build_denoiser",
    "JiT",
    "Denoiser",
    "RMSNorm",
    "BottleneckPatchEmbed",
    "LabelEmbedder",
    "RotaryTable",
    "rope_tables",
    "apply_rope",
    "rotate_half",
    "Attention",
    "SwiGLUFFN",
    "JiTBlock",
    "FinalLayer",
    "initialize_weights",
    "swiglu_hidden",
    "jit_lr",
]

# --------------------------------------------------------------------------
# Model table (jit.md section 1)
# --------------------------------------------------------------------------

_SIZES = {
    #      depth, hidden, heads, bottleneck, in-context len, in-context start
    "B": (12, 768, 12, 128, 32, 4),
    "L": (24, 1024, 16, 128, 32, 8),
    "H": (32, 1280, 16, 256, 32, 10),
}

JIT_CONFIGS: Dict[str, Dict[str, int]] = {}
for _size, (_d, _w, _h, _bn, _icl, _ics) in _SIZES.items():
    for _p in (16, 32):
        JIT_CONFIGS[f"JiT-{_size}/{_p}"] = dict(
            depth=_d, hidden=_w, heads=_h, bottleneck_dim=_bn, in_context_len=_icl,
            in_context_start=_ics, patch_size=_p,
        )
del _size, _d, _w, _h, _bn, _icl, _ics, _p


def jit_config(name: str) -> Dict[str, int]:
    """Copy of the architecture entry for a registry key such as "JiT-B/16"."""
    if name not in JIT_CONFIGS:
        raise KeyError(f"unknown JiT model {name!r}; known: {sorted(JIT_CONFIGS)}")
    return dict(JIT_CONFIGS[name])


def swiglu_hidden(hidden: int, mlp_ratio: float = 4.0) -> int:
    """F = int(int(D * mlp_ratio) * 2 / 3): 2048 (B), 2730 (L), 3413 (H)."""
    return int(int(hidden * mlp_ratio) * 2 / 3)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """float32, or the input dtype when it is wider (float64)."""
    return torch.promote_types(x.dtype, torch.float32)


# --------------------------------------------------------------------------
# Components (jit.md section 2)
# --------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """y = w * u / sqrt(mean(u^2) + eps) over the last axis, in float32 (or wider), cast back."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dt = x.dtype
        u = x.to(_compute_dtype(x))
        u = u * torch.rsqrt(u.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight * u).to(dt)


class BottleneckPatchEmbed(nn.Module):
    """Conv p x p stride p, C -> bottleneck, no bias; 1x1 conv bottleneck -> D with bias; tokens row-major."""

    def __init__(self, img_size: int, patch_size: int, in_channels: int, bottleneck_dim: int, hidden: int):
        super().__init__()
        if img_size % patch_size != 0:
            raise ValueError(f"img_size {img_size} not divisible by patch {patch_size}")
        self.img_size = img_size
        self.grid = img_size // patch_size
        self.num_patches = self.grid * self.grid
        self.proj1 = nn.Conv2d(in_channels, bottleneck_dim, kernel_size=patch_size, stride=patch_size, bias=False)
        self.proj2 = nn.Conv2d(bottleneck_dim, hidden, kernel_size=1, stride=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(f"expected {self.img_size}x{self.img_size} input, got {tuple(x.shape[-2:])}")
        return self.proj2(self.proj1(x)).flatten(2).transpose(1, 2)


class LabelEmbedder(nn.Module):
    """num_classes + 1 rows (the last one the null class); no dropout inside (the denoiser drops)."""

    def __init__(self, num_classes: int, hidden: int):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + 1, hidden)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return self.embedding_table(labels)


def rope_tables(head_dim: int, grid: int, num_identity: int = 0,
                dtype: torch.dtype = torch.float32) -> Tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin), each [num_identity + grid^2, head_dim] (jit.md section 2, 2-D RoPE).

    dim = head_dim/2 per axis, theta_k = 10000^(-2k/dim), k < dim/2; position r has the angles
    [r theta_0, r theta_0, r theta_1, r theta_1, ...]; token (i, j) = [angles(i) | angles(j)].
    The first num_identity rows are the identity (cos 1, sin 0) for the in-context tokens.
    """
    if head_dim % 4 != 0:
        raise ValueError(f"2-D RoPE needs head_dim divisible by 4, got {head_dim}")
    dim = head_dim // 2
    theta = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, dtype=dtype)[: dim // 2] / dim))
    pos = torch.arange(grid, dtype=dtype)
    ang = (pos[:, None] * theta[None, :]).repeat_interleave(2, dim=-1)  # [G, dim], pairs repeated
    rows = ang[:, None, :].expand(grid, grid, dim)  # angles(i)
    cols = ang[None, :, :].expand(grid, grid, dim)  # angles(j)
    full = torch.cat([rows, cols], dim=-1).reshape(grid * grid, head_dim)
    cos, sin = full.cos(), full.sin()
    if num_identity > 0:
        cos = torch.cat([torch.ones(num_identity, head_dim, dtype=dtype), cos], dim=0)
        sin = torch.cat([torch.zeros(num_identity, head_dim, dtype=dtype), sin], dim=0)
    return cos, sin


def rotate_half(u: torch.Tensor) -> torch.Tensor:
    """Adjacent pairs: (u0, u1, u2, u3, ...) -> (-u1, u0, -u3, u2, ...)."""
    pairs = u.reshape(*u.shape[:-1], -1, 2)
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).reshape(u.shape)


def apply_rope(u: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """u' = u cos + rotate_half(u) sin, tables [T, hd] broadcast over [..., T, hd]."""
    return u * cos + rotate_half(u) * sin


class RotaryTable(nn.Module):
    """VisionRotaryEmbeddingFast: fixed tables as plain attributes (not in the state_dict)."""

    def __init__(self, head_dim: int, grid: int, num_identity: int = 0, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.freqs_cos, self.freqs_sin = rope_tables(head_dim, grid, num_identity, dtype)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return apply_rope(u, self.freqs_cos.to(u.device), self.freqs_sin.to(u.device))


class Attention(nn.Module):
    """qkv Linear(D, 3D); per-head RMSNorm on q and k, RoPE, softmax(q k^T / sqrt(hd)) v; proj Linear(D, D)."""

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        if hidden % heads != 0:
            raise ValueError(f"hidden {hidden} not divisible by heads {heads}")
        self.heads = heads
        self.head_dim = hidden // heads
        self.q_norm = RMSNorm(self.head_dim)
        self.k_norm = RMSNorm(self.head_dim)
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=True)
        self.proj = nn.Linear(hidden, hidden, bias=True)

    def forward(self, x: torch.Tensor, rope: RotaryTable) -> torch.Tensor:
        n, t, d = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # N, H, T, hd
        q = rope(self.q_norm(q))
        k = rope(self.k_norm(k))
        cdt = _compute_dtype(q)
        logits = (q.to(cdt) @ k.to(cdt).transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
        o = logits.softmax(dim=-1).to(v.dtype) @ v
        return self.proj(o.transpose(1, 2).reshape(n, t, d))


class SwiGLUFFN(nn.Module):
    """w12: D -> 2F, a | b halves, silu(a) * b, w3: F -> D (F = int(hidden_features * 2 / 3))."""

    def __init__(self, hidden: int, hidden_features: int):
        super().__init__()
        f = int(hidden_features * 2 / 3)
        self.w12 = nn.Linear(hidden, 2 * f, bias=True)
        self.w3 = nn.Linear(f, hidden, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * b)


class JiTBlock(nn.Module):
    """adaLN-Zero block of SiT with RMSNorm, the qk-norm + RoPE attention and the SwiGLU FFN."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = RMSNorm(hidden, eps=1e-6)
        self.attn = Attention(hidden, heads)
        self.norm2 = RMSNorm(hidden, eps=1e-6)
        self.mlp = SwiGLUFFN(hidden, int(hidden * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden, bias=True))

    def forward(self, x: torch.Tensor, c: torch.Tensor, rope: RotaryTable) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=-1)
        x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa), rope)
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


class FinalLayer(nn.Module):
    """RMSNorm (learnable), adaLN (shift, scale), Linear(D, p*p*C)."""

    def __init__(self, hidden: int, patch_size: int, out_channels: int):
        super().__init__()
        self.norm_final = RMSNorm(hidden)
        self.linear = nn.Linear(hidden, patch_size * patch_size * out_channels, bias=True)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden, bias=True))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


# --------------------------------------------------------------------------
# JiT (jit.md section 3)
# --------------------------------------------------------------------------


class JiT(nn.Module):
    """forward(x [N,C,S,S], t [N], y [N] int64) -> (x_hat [N,C,S,S], zs, zs_raw).

    zs / zs_raw: one [N, T, Z_e] projection / copy of the image tokens per encoder,
    tapped after block encoder_depth (context tokens dropped), or None without projectors.
    """

    def __init__(
        self,
        input_size: int = 256,
        patch_size: int = 16,
        in_channels: int = 3,
        hidden: int = 768,
        depth: int = 12,
        heads: int = 12,
        mlp_ratio: float = 4.0,
        num_classes: int = 1000,
        bottleneck_dim: int = 128,
        in_context_len: int = 32,
        in_context_start: int = 4,
        encoder_depth: int = 8,
        z_dims: Sequence[int] = (768,),
        projector_dim: int = 2048,
        projection_layer_type: str = "mlp",
        proj_kernel_size: int = 3,
        eval_mode: bool = False,
        rope_dtype: torch.dtype = torch.float32,
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
        self.in_context_len = in_context_len
        self.in_context_start = in_context_start
        self.encoder_depth = encoder_depth
        self.z_dims = list(z_dims)

        # Registration order = state_dict order (jit.md section 5).
        self.t_embedder = TimestepEmbedder(hidden)
        self.y_embedder = LabelEmbedder(num_classes, hidden)
        self.x_embedder = BottleneckPatchEmbed(input_size, patch_size, in_channels, bottleneck_dim, hidden)
        grid = self.x_embedder.grid
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid, hidden), requires_grad=False)
        if in_context_len > 0:
            self.in_context_posemb = nn.Parameter(torch.zeros(1, in_context_len, hidden))
            nn.init.normal_(self.in_context_posemb, std=0.02)
        else:
            self.in_context_posemb = None
        hd = hidden // heads
        self.feat_rope = RotaryTable(hd, grid, 0, rope_dtype)
        self.feat_rope_incontext = RotaryTable(hd, grid, in_context_len, rope_dtype)
        self.blocks = nn.ModuleList([JiTBlock(hidden, heads, mlp_ratio) for _ in range(depth)])
        if not eval_mode and len(self.z_dims) > 0:
            self.projectors = nn.ModuleList(
                [Projector(hidden, projector_dim, z, projection_layer_type, proj_kernel_size) for z in self.z_dims]
            )
        else:
            self.projectors = None
        self.final_layer = FinalLayer(hidden, patch_size, self.out_channels)
        if init_weights:
            initialize_weights(self)

    @property
    def grid(self) -> int:
        return self.x_embedder.grid

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor):
        y_emb = self.y_embedder(y)
        c = self.t_embedder(t) + y_emb
        h = self.x_embedder(x) + self.pos_embed
        ctx = self.in_context_len
        zs = zs_raw = None
        for i, block in enumerate(self.blocks):
            if ctx > 0 and i == self.in_context_start:
                tokens = y_emb.unsqueeze(1).repeat(1, ctx, 1) + self.in_context_posemb
                h = torch.cat([tokens, h], dim=1)
            rope = self.feat_rope if i < self.in_context_start else self.feat_rope_incontext
            h = block(h, c, rope)
            if self.projectors is not None and i + 1 == self.encoder_depth:
                h_img = h if (ctx == 0 or i < self.in_context_start) else h[:, ctx:]
                zs = [proj(h_img) for proj in self.projectors]
                zs_raw = [h_img.clone() for _ in self.projectors]
        if ctx > 0 and self.in_context_start < self.depth:
            h = h[:, ctx:]
        out = unpatchify(self.final_layer(h, c), self.patch_size, self.out_channels)
        return out, zs, zs_raw


@torch.no_grad()
def initialize_weights(model: JiT) -> None:
    """jit.md section 4 (in_context_posemb was drawn at construction)."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    table = sincos_pos_embed_2d(model.hidden, model.grid).float()
    model.pos_embed.copy_(table.unsqueeze(0).to(model.pos_embed.dtype))
    for w in (model.x_embedder.proj1.weight, model.x_embedder.proj2.weight):
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
    nn.init.zeros_(model.x_embedder.proj2.bias)
    nn.init.normal_(model.y_embedder.embedding_table.weight, std=0.02)
    nn.init.normal_(model.t_embedder.mlp[0].weight, std=0.02)
    nn.init.normal_(model.t_embedder.mlp[2].weight, std=0.02)
    for block in model.blocks:
        nn.init.zeros_(block.adaLN_modulation[-1].weight)
        nn.init.zeros_(block.adaLN_modulation[-1].bias)
    nn.init.zeros_(model.final_layer.adaLN_modulation[-1].weight)
    nn.init.zeros_(model.final_layer.adaLN_modulation[-1].bias)
    nn.init.zeros_(model.final_layer.linear.weight)
    nn.init.zeros_(model.final_layer.linear.bias)
    # RMSNorm weights are 1 from construction; conv projectors keep PyTorch's Conv2d init.


def build_jit(name: str, **kwargs) -> JiT:
    """A registry model, e.g. build_jit("JiT-B/16", input_size=256, z_dims=[768])."""
    cfg = jit_config(name)
    cfg.update(kwargs)
    return JiT(**cfg)


# --------------------------------------------------------------------------
# Denoiser (heads_and_losses.md section 5): x-prediction, loss in v-space
# --------------------------------------------------------------------------


class Denoiser(nn.Module):
    """The JiT training objective; the network is `net`, so the state_dict keys are `net.*`.

    t = 1 is data, t = 0 is noise.  REPA / iREPA: the projections of the tapped
    tokens are aligned (-cos) with the spatially normalised encoder targets.
    """

    def __init__(
        self,
        net: JiT,
        label_drop_prob: float = 0.1,
        P_mean: float = -0.8,
        P_std: float = 0.8,
        t_eps: float = 0.05,
        noise_scale: float = 1.0,
        spnorm_method: str = "none",
        zscore_alpha: float = 0.8,
        proj_coeffs: Sequence[float] = (0.5,),
    ):
        super().__init__()
        self.net = net
        self.num_classes = net.num_classes
        self.label_drop_prob = label_drop_prob
        self.P_mean = P_mean
        self.P_std = P_std
        self.t_eps = t_eps
        self.noise_scale = noise_scale
        self.spnorm_method = spnorm_method
        self.zscore_alpha = zscore_alpha
        self.proj_coeffs = list(proj_coeffs)

    # --- randomness, in the reference's order of use ---
    def drop_labels(self, labels: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        u = torch.rand(labels.shape[0], device=labels.device, generator=generator)
        return torch.where(u < self.label_drop_prob, torch.full_like(labels, self.num_classes), labels)

    def sample_t(self, n: int, generator: Optional[torch.Generator] = None, dtype=torch.float32) -> torch.Tensor:
        """Logit-normal: sigmoid(P_std * n + P_mean), n ~ N(0, 1)."""
        z = torch.randn(n, generator=generator, dtype=dtype) * self.P_std + self.P_mean
        return torch.sigmoid(z)

    # --- the deterministic objective ---
    def loss_terms(
        self,
        x: torch.Tensor,
        labels: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor,
        targets: Optional[Sequence[torch.Tensor]] = None,
        proj_coeff: Optional[torch.Tensor] = None,
    ) -> Dict[str, torch.Tensor]:
        """x in [-1, 1] [B,C,S,S]; labels already dropped; t [B]; noise ~ N(0, I) (scaled here)."""
        b = x.shape[0]
        tt = t.reshape(b, *([1] * (x.ndim - 1))).to(x.dtype)
        e = noise * self.noise_scale
        z = tt * x + (1 - tt) * e
        denom = (1 - tt).clamp_min(self.t_eps)
        v = (x - z) / denom
        x_pred, zs, _ = self.net(z, tt.flatten(), labels)
        v_pred = (x_pred - z) / denom
        denoise = ((v - v_pred) ** 2).mean(dim=tuple(range(1, x.ndim))).mean()
        out = {"denoise_loss": denoise}
        if targets is not None and zs is not None:
            normed = [spatial_normalize(f, self.spnorm_method, self.zscore_alpha) for f in targets]
            cos = projection_loss(normed, zs)
            coeff = proj_coeff if proj_coeff is not None else self.proj_coeffs[0]
            out["cosine"] = cos
            out["cosine_weighted"] = coeff * cos
            out["total_proj_loss"] = coeff * cos
            out["total_loss"] = denoise + coeff * cos
        else:
            zero = torch.zeros((), dtype=denoise.dtype)
            out.update(cosine=zero, cosine_weighted=zero, total_proj_loss=zero, total_loss=denoise)
        return out

    def forward(
        self,
        x: torch.Tensor,
        labels: torch.Tensor,
        targets: Optional[Sequence[torch.Tensor]] = None,
        generator: Optional[torch.Generator] = None,
    ) -> Dict[str, torch.Tensor]:
        """One training call: label dropout (training mode), t, noise, then the objective."""
        if self.training:
            labels = self.drop_labels(labels, generator)
        t = self.sample_t(x.shape[0], generator, x.dtype)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        return self.loss_terms(x, labels, t, noise, targets)


    # --- the sampler (sampling_and_eval.md section 3), t from 0 (noise) to 1 (data) ---
    def _x_hat(self, z: torch.Tensor, t: float, labels: torch.Tensor, cfg: float,
               interval: Tuple[float, float], net_dtype: torch.dtype) -> torch.Tensor:
        """The network's prediction at (z, t), guided in x-space inside the interval.

        z is cast to the network's dtype, t to float32 as the network's input, the
        prediction back to z's dtype.
        """
        lo, hi = interval
        n = z.shape[0]
        tn = torch.full((n,), t, dtype=torch.float64).to(net_dtype)
        if cfg != 1.0 and not (t >= hi or (lo != 0 and t <= lo)):
            zz = torch.cat([z, z]).to(net_dtype)
            pair = self.net(zz, torch.cat([tn, tn]), torch.cat([labels, torch.full_like(labels, self.num_classes)]))[0]
            pair = pair.to(z.dtype)
            xc, xu = pair[:n], pair[n:]
            return xu + cfg * (xc - xu)
        return self.net(z.to(net_dtype), tn, labels)[0].to(z.dtype)

    def _velocity(self, z, t, labels, cfg, interval, net_dtype):
        return (self._x_hat(z, t, labels, cfg, interval, net_dtype) - z) / max(1.0 - t, self.t_eps)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor, steps: int = 50, method: str = "heun",
                 cfg: float = 1.0, interval: Tuple[float, float] = (0.0, 1.0),
                 net_dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """From z = noise_scale * N(0, I) (given) to the sample: t_k = linspace(0, 1, K + 1); Heun
        (or Euler) for k < K - 1, Euler for the last step.  The state keeps z's dtype."""
        t = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64).tolist()
        for k in range(steps):
            tc, tn = t[k], t[k + 1]
            v1 = self._velocity(z, tc, labels, cfg, interval, net_dtype)
            if method == "euler" or k == steps - 1:
                z = z + (tn - tc) * v1
                continue
            if method != "heun":
                raise ValueError(f"unknown sampling method {method!r}")
            v2 = self._velocity(z + (tn - tc) * v1, tn, labels, cfg, interval, net_dtype)
            z = z + (tn - tc) * (0.5 * (v1 + v2))
        return z


def build_denoiser(name: str, denoiser_kw: Optional[dict] = None, **net_kw) -> Denoiser:
    return Denoiser(build_jit(name, **net_kw), **(denoiser_kw or {}))


def jit_lr(epoch_float: float, lr_peak: float, warmup_epochs: float, epochs: float,
           schedule: str = "constant", min_lr: float = 0.0) -> float:
    """training.md section 5, step 1: linear warm-up from 0, then constant or cosine."""
    if epoch_float < warmup_epochs:
        return lr_peak * epoch_float / warmup_epochs
    if schedule == "constant":
        return lr_peak
    if schedule == "cosine":
        frac = (epoch_float - warmup_epochs) / (epochs - warmup_epochs)
        return min_lr + (lr_peak - min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))
    raise ValueError(f"unknown lr_schedule {schedule!r}")


# --------------------------------------------------------------------------
# Self-test: python3 tools/jit_ref.py
# --------------------------------------------------------------------------

# jit.md section 5, without projectors, including pos_embed.
EXPECT_TOTALS = {"JiT-B/16": 131_320_320, "JiT-L/16": 459_139_808, "JiT-H/16": 952_842_048}


def count(model: nn.Module) -> int:
    return sum(v.numel() for v in model.state_dict().values())


def _selftest() -> None:
    for name, want in EXPECT_TOTALS.items():
        with torch.device("meta"):
            m = build_jit(name, input_size=256, z_dims=[], init_weights=False)
        got = count(m)
        assert got == want, f"{name}: {got} != {want}"
        print(f"{name}: {got} parameters (spec {want})")
    for name in JIT_CONFIGS:
        with torch.device("meta"):
            m = build_jit(name, input_size=256, z_dims=[], init_weights=False)
        print(f"  {name}: {count(m)}")
    assert [swiglu_hidden(d) for d in (768, 1024, 1280)] == [2048, 2730, 3413]

    # state_dict order of JiT-B/16 under the Denoiser
    with torch.device("meta"):
        d = build_denoiser("JiT-B/16", input_size=256, z_dims=[768], encoder_depth=4, init_weights=False)
    keys = list(d.state_dict())
    assert keys[:2] == ["net.pos_embed", "net.in_context_posemb"], keys[:2]
    block0 = [k[len("net.blocks.0."):] for k in keys if k.startswith("net.blocks.0.")]
    assert block0 == ["norm1.weight", "attn.q_norm.weight", "attn.k_norm.weight", "attn.qkv.weight",
                      "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias", "norm2.weight",
                      "mlp.w12.weight", "mlp.w12.bias", "mlp.w3.weight", "mlp.w3.bias",
                      "adaLN_modulation.1.weight", "adaLN_modulation.1.bias"], block0

    # RoPE: adjacent pairs rotate by the table's angle; the identity rows leave u alone
    hd, g = 8, 3
    cos, sin = rope_tables(hd, g, 2, torch.float64)
    u = torch.randn(5, 2 + g * g, hd, dtype=torch.float64)
    r = apply_rope(u, cos, sin)
    assert torch.equal(r[:, :2], u[:, :2])
    i, j = 2, 1
    tok = 2 + i * g + j
    th = [1.0, 1e-2]  # 10000^(-2k/4), k = 0, 1
    ang = [i * th[0], i * th[0], i * th[1], i * th[1], j * th[0], j * th[0], j * th[1], j * th[1]]
    for m in range(hd // 2):
        a = ang[2 * m]
        x0, x1 = u[:, tok, 2 * m], u[:, tok, 2 * m + 1]
        assert torch.allclose(r[:, tok, 2 * m], x0 * math.cos(a) - x1 * math.sin(a), atol=1e-12)
        assert torch.allclose(r[:, tok, 2 * m + 1], x1 * math.cos(a) + x0 * math.sin(a), atol=1e-12)
    assert torch.allclose(r.norm(dim=-1), u.norm(dim=-1), atol=1e-12)

    # tiny model: zero-init output is exactly 0; taps before and after the context insertion
    torch.manual_seed(0)
    kw = dict(input_size=16, patch_size=4, hidden=32, depth=3, heads=2, num_classes=10, bottleneck_dim=8,
              in_context_len=4, in_context_start=1, z_dims=[6], projector_dim=12, rope_dtype=torch.float64)
    for enc_depth in (1, 2):
        net = JiT(encoder_depth=enc_depth, **kw).to(torch.float64)
        x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
        out, zs, raw = net(x, torch.rand(2, dtype=torch.float64), torch.tensor([3, 10]))
        assert out.shape == x.shape and torch.count_nonzero(out) == 0
        assert zs[0].shape == (2, 16, 6) and raw[0].shape == (2, 16, 32)
        if enc_depth == 1:  # identity blocks at init: the tap is the embedded input
            assert torch.equal(raw[0], net.x_embedder(x) + net.pos_embed)

    # denoiser at init: x_hat = 0 -> v_hat = -z / max(1-t, eps)
    net = JiT(encoder_depth=2, **kw).to(torch.float64)
    den = Denoiser(net, spnorm_method="zscore").to(torch.float64)
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64) * 2 - 1
    e = torch.randn_like(x)
    t = torch.tensor([0.3, 0.99], dtype=torch.float64)
    tt = t.reshape(2, 1, 1, 1)
    z = tt * x + (1 - tt) * e
    want = (((x - z) / (1 - tt).clamp_min(0.05) + z / (1 - tt).clamp_min(0.05)) ** 2).mean()
    got = den.loss_terms(x, torch.tensor([1, 2]), t, e, [torch.randn(2, 16, 6, dtype=torch.float64)])
    assert torch.allclose(got["denoise_loss"], want, rtol=1e-12)

    # lr schedule
    assert jit_lr(0.0, 1e-4, 5, 200) == 0.0 and jit_lr(2.5, 1e-4, 5, 200) == 5e-5
    assert jit_lr(200, 1e-4, 5, 200, "cosine") == 0.0
    print("jit_ref self-test OK (torch %s)" % torch.__version__)


if __name__ == "__main__":
    _selftest()
