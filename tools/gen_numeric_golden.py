#!/usr/bin/env python3
"""Generate the float64 numeric goldens of the SiT `loss` entry from tools/sit_ref.py.

Writes two safetensors files under tests/numeric/golden/:

    tiny_sit_irepa.safetensors   conv projector (k = 3, padding 1), spatial z-score (alpha 0.6, eps 1e-6)
    tiny_sit_repa.safetensors    mlp projector (projector_dim 64), no spatial normalisation

Tiny SiT: depth 2, hidden 64, 2 heads, latents 8x8x4, patch 2 (T = 16 tokens, grid 4), 10 classes
(11-row label table), class_dropout_prob 0.1, mlp_ratio 4, encoder_depth 1, z_dims [32], batch 2,
linear path, final layer at the hidden width (as models/sit.irg).

The computation mirrors the `loss` entry of models/sit.irg:

    tt = t.reshape(B,1,1,1);  alpha = 1-tt, sigma = tt, d_alpha = -1, d_sigma = 1
    xt = alpha*x0 + sigma*noise
    out, tap = SiT(xt, t, where(drop, num_classes, y))        # tap after block encoder_depth
    denoise = mean_b mean_{c,h,w} (out - (d_alpha*x0 + d_sigma*noise))^2
    align = -mean_{b,t} cos(spatial_norm(target), projector(tap))   (F.normalize, eps 1e-12)
    loss = denoise + proj_coeff * align

everything in float64, including the timestep-embedding frequencies (fp32_frequencies off).
Parameter values are drawn in float32 from a fixed torch.Generator and stored as F32 (they are exact
in float64); the inputs are drawn in float32 too (so they are exact in either precision) and stored as
F64 (y: I64, drop: BOOL, proj_coeff: rank-0 F64).  No zero-init: every parameter is random
(weights N(0, 1/fan_in), biases N(0, 0.05^2), label table N(0, 0.3^2)); pos_embed is the sin-cos
table (float32) and frozen, so it has no gradient.

Tensors: inputs under their entry names (x0, noise, t, y, drop, target, proj_coeff); parameters under
their PyTorch state_dict names (F32); outputs out.loss, out.denoise, out.align (rank 0, F64);
grad.<name> = d out.loss / d <name> (F64) for every parameter except pos_embed.
__metadata__: config (JSON), generator (script), torch (version).

Self-checks before writing: the loss computed twice is bit-identical (and the gradients too), and the
gradients agree with 5-point central finite differences in float64 (relative error < 1e-6) at random
entries of every parameter tensor.

    python3 tools/gen_numeric_golden.py            # (re)write the goldens
    python3 tools/gen_numeric_golden.py --check    # regenerate to a temp dir, compare bit for bit

Runs single-threaded on the CPU; bit-for-bit reproduction is expected for the same torch build and CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Tuple

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import sit_ref  # noqa: E402

SCRIPT = "tools/gen_numeric_golden.py"
F64 = torch.float64

# Arguments of models/sit.irg's SiT module (names as there), plus the loss-entry settings.
COMMON = dict(
    input_size=8,
    in_channels=4,
    num_classes=10,
    class_dropout_prob=0.1,
    encoder_depth=1,
    z_dims=[32],
    projector_dim=64,
    path_type="linear",
    mlp_ratio=4.0,
    depth=2,
    hidden_size=64,
    num_heads=2,
    patch_size=2,
    zscore_alpha=0.6,
    zscore_eps=1e-6,
    batch=2,
    proj_coeff=0.5,
    timestep_freq_dim=256,
    timestep_frequencies="float64",
)

GOLDENS = {
    "tiny_sit_irepa.safetensors": dict(COMMON, projection_layer_type="conv", proj_kernel_size=3,
                                       spnorm_method="zscore", seed=20240611),
    "tiny_sit_repa.safetensors": dict(COMMON, projection_layer_type="mlp", proj_kernel_size=1,
                                      spnorm_method="none", seed=20240612),
}

FD_STEP = 1e-3
FD_TOL = 1e-6


# --------------------------------------------------------------------------
# Model, parameters, inputs
# --------------------------------------------------------------------------


def build_model(cfg: dict) -> sit_ref.SiT:
    model = sit_ref.SiT(
        input_size=cfg["input_size"],
        patch_size=cfg["patch_size"],
        in_channels=cfg["in_channels"],
        hidden=cfg["hidden_size"],
        depth=cfg["depth"],
        heads=cfg["num_heads"],
        mlp_ratio=cfg["mlp_ratio"],
        num_classes=cfg["num_classes"],
        class_dropout_prob=cfg["class_dropout_prob"],
        encoder_depth=cfg["encoder_depth"],
        z_dims=cfg["z_dims"],
        projector_dim=cfg["projector_dim"],
        projection_layer_type=cfg["projection_layer_type"],
        proj_kernel_size=cfg["proj_kernel_size"],
        final_width=cfg["hidden_size"],
        init_weights=False,
    )
    model.t_embedder.fp32_frequencies = False
    return model.eval()  # no dropout modules; label dropout comes from the explicit mask


def draw_params(model: sit_ref.SiT, gen: torch.Generator) -> Dict[str, torch.Tensor]:
    """float32 values for every state_dict entry, in state_dict order."""
    params: Dict[str, torch.Tensor] = {}
    for name, v in model.state_dict().items():
        shape = tuple(v.shape)
        if name == "pos_embed":
            table = sit_ref.sincos_pos_embed_2d(model.hidden, model.grid).float()
            val = table.reshape(shape)
        elif name == "y_embedder.embedding_table.weight":
            val = torch.randn(shape, generator=gen, dtype=torch.float32) * 0.3
        elif name.endswith(".weight"):
            fan_in = math.prod(shape[1:])
            val = torch.randn(shape, generator=gen, dtype=torch.float32) * (1.0 / math.sqrt(fan_in))
        elif name.endswith(".bias"):
            val = torch.randn(shape, generator=gen, dtype=torch.float32) * 0.05
        else:
            raise AssertionError(f"unexpected state_dict entry {name}")
        params[name] = val.contiguous()
    return params


def draw_inputs(cfg: dict, gen: torch.Generator) -> Dict[str, torch.Tensor]:
    b, c, l = cfg["batch"], cfg["in_channels"], cfg["input_size"]
    t_tokens = (l // cfg["patch_size"]) ** 2
    z = cfg["z_dims"][0]
    f32 = torch.float32
    x0 = torch.randn((b, c, l, l), generator=gen, dtype=f32)
    noise = torch.randn((b, c, l, l), generator=gen, dtype=f32)
    t = (0.05 + 0.9 * torch.rand((b,), generator=gen, dtype=F64)).float()
    y = torch.randint(0, cfg["num_classes"], (b,), generator=gen, dtype=torch.int64)
    drop = torch.tensor([False, True])
    # encoder features with a per-channel offset, so the partial mean removal (alpha) matters
    target = torch.randn((b, t_tokens, z), generator=gen, dtype=f32) + torch.randn((1, 1, z), generator=gen, dtype=f32)
    assert bool(((t > 0.05) & (t < 0.95)).all())
    return dict(
        x0=x0.to(F64),
        noise=noise.to(F64),
        t=t.to(F64),
        y=y,
        drop=drop,
        target=target.to(F64),
        proj_coeff=torch.tensor(cfg["proj_coeff"], dtype=F64),
    )


# --------------------------------------------------------------------------
# The loss entry
# --------------------------------------------------------------------------


def loss_entry(model: sit_ref.SiT, inp: Dict[str, torch.Tensor], cfg: dict) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x0, noise, t = inp["x0"], inp["noise"], inp["t"]
    b = x0.shape[0]
    alpha, sigma, d_alpha, d_sigma = sit_ref.interpolant(t.reshape(b, 1, 1, 1), cfg["path_type"])
    xt = alpha * x0 + sigma * noise
    out, zs = model(xt, t, inp["y"], force_drop_ids=inp["drop"].to(torch.int64))
    v = d_alpha * x0 + d_sigma * noise
    denoise = ((out - v) ** 2).mean(dim=(1, 2, 3)).mean()
    z = sit_ref.spatial_normalize(inp["target"], cfg["spnorm_method"], cfg["zscore_alpha"], cfg["zscore_eps"])
    align = sit_ref.cosine_alignment_loss(z, zs[0])
    return denoise + inp["proj_coeff"] * align, denoise, align


def f64_bits(x: torch.Tensor) -> str:
    return struct.pack("<d", float(x)).hex()


def compute(cfg: dict) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor], Dict[str, torch.Tensor], sit_ref.SiT]:
    gen = torch.Generator().manual_seed(cfg["seed"])
    model = build_model(cfg)
    params = draw_params(model, gen)
    inputs = draw_inputs(cfg, gen)
    model.load_state_dict(params)
    model = model.to(F64)
    for name, p in model.named_parameters():
        assert torch.equal(p.detach(), params[name].to(F64)), name
        assert p.requires_grad == (name != "pos_embed"), name

    names = [n for n, p in model.named_parameters() if p.requires_grad]
    plist = [p for n, p in model.named_parameters() if p.requires_grad]

    def run():
        total, denoise, align = loss_entry(model, inputs, cfg)
        grads = torch.autograd.grad(total, plist)
        return total.detach(), denoise.detach(), align.detach(), grads

    total, denoise, align, grads = run()
    total2, denoise2, align2, grads2 = run()
    for a, b_, what in ((total, total2, "loss"), (denoise, denoise2, "denoise"), (align, align2, "align")):
        if f64_bits(a) != f64_bits(b_):
            raise AssertionError(f"{what} not bit-identical on recomputation: {float(a)!r} vs {float(b_)!r}")
    for n, g1, g2 in zip(names, grads, grads2):
        if not torch.equal(g1, g2):
            raise AssertionError(f"grad of {n} not bit-identical on recomputation")

    outputs = {"out.loss": total, "out.denoise": denoise, "out.align": align}
    grad = {f"grad.{n}": g.contiguous() for n, g in zip(names, grads)}
    return params, inputs, dict(outputs, **grad), model


# --------------------------------------------------------------------------
# Finite differences
# --------------------------------------------------------------------------


def fd_check(model: sit_ref.SiT, inputs: Dict[str, torch.Tensor], cfg: dict, grads: Dict[str, torch.Tensor]) -> List[Tuple[str, tuple, float, float, float]]:
    """One random entry per parameter tensor (among entries with |g| >= 1e-2 max|g| of the tensor)."""
    gen = torch.Generator().manual_seed(cfg["seed"] + 1)
    rows = []

    def loss_at() -> float:
        with torch.no_grad():
            return float(loss_entry(model, inputs, cfg)[0])

    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        g = grads[f"grad.{name}"]
        flat = g.reshape(-1).abs()
        cand = torch.nonzero(flat >= 1e-2 * flat.max()).reshape(-1)
        k = int(cand[torch.randint(0, cand.numel(), (1,), generator=gen)])
        idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(k), g.shape))
        with torch.no_grad():
            orig = p[idx].item()
            vals = []
            for m in (-2, -1, 1, 2):
                p[idx] = orig + m * FD_STEP
                vals.append(loss_at())
            p[idx] = orig
        fd = (vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * FD_STEP)
        an = float(g[idx])
        rel = abs(fd - an) / max(abs(fd), abs(an))
        rows.append((name, idx, an, fd, rel))
    return rows


# --------------------------------------------------------------------------
# Writing and checking
# --------------------------------------------------------------------------


def metadata(cfg: dict) -> Dict[str, str]:
    return {"config": json.dumps(cfg, sort_keys=True), "generator": SCRIPT, "torch": torch.__version__}


def generate(out_dir: Path, verbose: bool = True) -> Dict[str, dict]:
    torch.set_num_threads(1)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {}
    for fname, cfg in GOLDENS.items():
        params, inputs, outs, model = compute(cfg)
        rows = fd_check(model, inputs, cfg, outs)
        worst = max(r[4] for r in rows)
        if verbose:
            print(f"== {fname}: finite differences (5-point, h={FD_STEP:g}), one entry per tensor")
            for name, idx, an, fd, rel in rows:
                print(f"   {name:45s} {str(idx):16s} grad {an:+.6e}  fd {fd:+.6e}  rel {rel:.1e}")
        if worst >= FD_TOL:
            raise AssertionError(f"{fname}: finite-difference relative error {worst:.2e} >= {FD_TOL:g}")
        tensors: Dict[str, torch.Tensor] = {}
        tensors.update(inputs)
        tensors.update(params)
        tensors.update(outs)
        assert len(tensors) == len(inputs) + len(params) + len(outs), "name clash"
        save_file(tensors, str(out_dir / fname), metadata=metadata(cfg))
        summary[fname] = dict(tensors=tensors, fd_worst=worst, n_fd=len(rows))
    return summary


def print_summary(summary: Dict[str, dict], out_dir: Path) -> None:
    for fname, s in summary.items():
        t = s["tensors"]
        path = out_dir / fname
        print(f"== {path}  ({path.stat().st_size} bytes, {len(t)} tensors)")
        print(f"   loss {float(t['out.loss']):.17g}  denoise {float(t['out.denoise']):.17g}  "
              f"align {float(t['out.align']):.17g}")
        print(f"   FD check: {s['n_fd']} entries, max rel error {s['fd_worst']:.2e}")
        per_mod: Dict[str, Tuple[int, float]] = {}
        for k, v in t.items():
            if k.startswith("grad."):
                top = k[len("grad."):].split(".")[0]
                n, m = per_mod.get(top, (0, 0.0))
                per_mod[top] = (n + 1, max(m, float(v.abs().max())))
        print(f"   {'module':14s} {'#grads':>6s}  max|grad|")
        for top, (n, m) in per_mod.items():
            print(f"   {top:14s} {n:6d}  {m:.3e}")


def compare(have_p: Path, new_p: Path) -> bool:
    ok = True
    have, new = load_file(str(have_p)), load_file(str(new_p))
    with safe_open(str(have_p), "pt") as f:
        meta_have = f.metadata() or {}
    with safe_open(str(new_p), "pt") as f:
        meta_new = f.metadata() or {}
    for k in sorted(set(have) | set(new)):
        if k not in have or k not in new:
            print(f"   {k}: only in {'golden' if k in have else 'regenerated'}")
            ok = False
            continue
        a, b = have[k], new[k]
        if a.dtype != b.dtype or a.shape != b.shape:
            print(f"   {k}: {a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)}")
            ok = False
            continue
        if torch.equal(a, b):
            continue
        ok = False
        if a.dtype.is_floating_point:
            d = (a.to(F64) - b.to(F64)).abs()
            print(f"   {k}: {int((a != b).sum())} of {a.numel()} differ, max |diff| {float(d.max()):.3e}")
        else:
            print(f"   {k}: {int((a != b).sum())} of {a.numel()} differ")
    if meta_have.get("config") != meta_new.get("config") or meta_have.get("generator") != meta_new.get("generator"):
        print(f"   metadata differs: {meta_have} vs {meta_new}")
        ok = False
    elif meta_have.get("torch") != meta_new.get("torch"):
        print(f"   note: golden made with torch {meta_have.get('torch')}, this is {meta_new.get('torch')}")
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", type=Path, default=REPO_ROOT / "tests" / "numeric" / "golden",
                    help="directory of the goldens (default: <repo>/tests/numeric/golden)")
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temp dir and compare tensor by tensor (tolerance 0); exit 1 on a difference")
    args = ap.parse_args(argv)

    if not args.check:
        summary = generate(args.out_dir)
        print_summary(summary, args.out_dir)
        return 0

    rc = 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp), verbose=False)
        for fname in GOLDENS:
            have_p = args.out_dir / fname
            if not have_p.exists():
                print(f"MISSING {have_p}")
                rc = 1
                continue
            if compare(have_p, Path(tmp) / fname):
                print(f"ok {have_p}")
            else:
                print(f"DIFFERS {have_p}")
                rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
