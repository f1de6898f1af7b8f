"""PyTorch twin of models/encoders/fmnist_vit.irg: the small Fashion-MNIST ViT.

Same architecture, parameter names, shapes, state_dict order and
initialisation rules as the .irg module, so either side loads the other's
state_dict.  Names follow timm's VisionTransformer:

    cls_token [1,1,W]                 N(0, 1e-6^2)          (timm)
    pos_embed [1,1+G*G,W]             N(0, 0.02^2)          (timm: trunc_normal, here untruncated)
    patch_embed.proj.{weight,bias}    Xavier-uniform over the weight viewed as [W, C*p*p]; bias 0
    blocks.{i}.norm1 / norm2          LayerNorm(W, eps 1e-6), weight 1, bias 0
    blocks.{i}.attn.qkv / attn.proj   Xavier-uniform, bias 0 (qkv bias on)
    blocks.{i}.mlp.fc1 / mlp.fc2      Xavier-uniform, bias 0; GELU, tanh approximation
    norm                              LayerNorm(W, eps 1e-6)
    head.{weight,bias}                N(0, 0.02^2), bias 0

Images [B, 1, 32, 32] in [-1, 1], labels int64 [B].  Entries as the .irg:
loss (mean cross-entropy, number correct with ties counted correct), logits,
features (final-norm patch tokens, CLS dropped) and pooled (final-norm CLS).

Only depends on torch.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["FmnistViT", "Attention", "Mlp", "Block", "PatchEmbed", "loss_and_correct"]


class PatchEmbed(nn.Module):
    """Conv with kernel = stride = patch; tokens row-major over the grid."""

    def __init__(self, img_size: int, patch: int, in_channels: int, dim: int):
        super().__init__()
        assert img_size % patch == 0
        self.grid = img_size // patch
        self.proj = nn.Conv2d(in_channels, dim, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # [N, G*G, dim]


class Attention(nn.Module):
    """timm Attention: fused qkv (columns q|k|v, then head, then head dim)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        assert dim % num_heads == 0
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = torch.softmax((q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim)), dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(n, t, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    """Pre-norm block, no layer scale, no dropout."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def loss_and_correct(z: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and the number of samples whose true-class logit
    equals the row max (a tie for the max counts as correct), as a float."""
    loss = F.cross_entropy(z, y)
    ztrue = z.gather(1, y[:, None])
    correct = (ztrue >= z.amax(dim=1, keepdim=True)).to(z.dtype).sum()
    return loss, correct


class FmnistViT(nn.Module):
    def __init__(self, width: int = 64, depth: int = 4, num_heads: int = 4, mlp_ratio: float = 2.0,
                 patch: int = 4, num_classes: int = 10, img_size: int = 32, in_channels: int = 1,
                 init_weights: bool = True):
        super().__init__()
        self.width = width
        self.patch_embed = PatchEmbed(img_size, patch, in_channels, width)
        num_patches = self.patch_embed.grid ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, width))
        self.blocks = nn.ModuleList([Block(width, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, num_classes)
        if init_weights:
            self.initialize_weights()

    @torch.no_grad()
    def initialize_weights(self) -> None:
        """The rules of models/encoders/fmnist_vit.irg (see the module docstring)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.proj.bias)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        nn.init.normal_(self.cls_token, std=1e-6)
        nn.init.normal_(self.pos_embed, std=0.02)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """All tokens after the final norm, [N, 1 + G*G, W], CLS first."""
        h = self.patch_embed(x)
        h = torch.cat([self.cls_token.expand(h.shape[0], -1, -1), h], dim=1) + self.pos_embed
        for blk in self.blocks:
            h = blk(h)
        return self.norm(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(x)[:, 0])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)[:, 1:]

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)[:, 0]

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return loss_and_correct(self.logits(x), y)
