#!/usr/bin/env python3
"""Generate the sampler golden: the reference's ldm samplers in PyTorch on a tiny SiT.

Writes tests/numeric/golden/tiny_sit_samplers.safetensors, checked by
tests/numeric/test_sampler_parity.c against runtime/sampler.c and the sampler
entries of models/sit.irg (C kernels and the interpreter).

The samplers are transcribed from the reference's ldm/samplers.py
(shared/spec/sampling_and_eval.md section 1): euler_sampler (ODE Euler and Heun)
and euler_maruyama_sampler (SDE), float64 state, the float32 model called on the
state cast to float32 and the velocity cast back, classifier-free guidance
u + s (c - u) on the doubled batch [x; x] with labels [y; null] inside the
guidance interval (decided with t_cur), applied to the SDE's drift. Two
deliberate differences, both mirrored by irepa:
  - the null class is num_classes (10 here), where the reference hard-codes 1000;
  - the random numbers are irepa's keyed Philox draws (docs/rng.md, re-implemented
    in pure Python by tools/gen_init_golden.py), not torch.randn: sample i's
    starting point is N(0, 1) in float32 from stream fnv1a64("sample.x1"),
    elements i*D .. i*D + D-1 (D = C*H*W), widened to float64; its label is
    floor(U * num_classes) from stream fnv1a64("sample.label"), element i; its SDE
    noise at step k is N(0, 1) in float64 from stream fnv1a64("sample.sde") + k,
    elements i*D + j. The samples of the batch are indices FIRST .. FIRST + B - 1.

The model is the tiny SiT of tools/gen_numeric_golden.py in eval mode (no
projectors): latents 8x8x4, patch 2, depth 2, hidden 64, 2 heads, 10 classes
(11-row label table), random float32 weights (that script's draw_params), the
reference's float32 timestep frequencies. The time grid is torch.linspace, which
PyTorch 2.15 computes on the CPU as symmetric halves with one rounding per point
(fused multiply-add); the script asserts that irepa's formula (sampler.c) gives
the same bits for every grid of the cases.

Tensors: the parameters (F32, state_dict names); x1 (F64 [B,4,8,8]) and y (I64 [B]),
the batch's starting points and labels; CASE.sample (F64 [B,4,8,8]) for each case.
__metadata__: config and cases (JSON), generator, torch.

    python3 tools/gen_sampler_golden.py            # (re)write the golden
    python3 tools/gen_sampler_golden.py --check    # regenerate to a temp dir, compare bit for bit
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Dict, List

import torch
from safetensors.torch import load_file, save_file

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import gen_init_golden as rng  # noqa: E402  (pure-Python Philox of docs/rng.md)
import gen_numeric_golden as numeric  # noqa: E402  (draw_params)
import sit_ref  # noqa: E402

SCRIPT = "tools/gen_sampler_golden.py"
GOLDEN = REPO_ROOT / "tests/numeric/golden/tiny_sit_samplers.safetensors"
F64 = torch.float64

CONFIG = dict(
    input_size=8, in_channels=4, num_classes=10, class_dropout_prob=0.1, depth=2, hidden_size=64,
    num_heads=2, patch_size=2, mlp_ratio=4.0, batch=3, first_index=5, global_seed=7, weight_seed=20250301,
)

# name, mode, heun, steps, cfg scale, guidance interval, path type
CASES = [
    dict(name="ode_euler", mode="ode", heun=False, num_steps=8, cfg_scale=1.0, low=0.0, high=1.0, path="linear"),
    dict(name="ode_heun", mode="ode", heun=True, num_steps=6, cfg_scale=1.0, low=0.0, high=1.0, path="linear"),
    dict(name="sde", mode="sde", heun=False, num_steps=8, cfg_scale=1.0, low=0.0, high=1.0, path="linear"),
    dict(name="ode_euler_cfg", mode="ode", heun=False, num_steps=10, cfg_scale=2.5, low=0.3, high=0.8, path="linear"),
    dict(name="ode_heun_cfg", mode="ode", heun=True, num_steps=10, cfg_scale=2.0, low=0.3, high=0.8, path="linear"),
    dict(name="sde_cfg", mode="sde", heun=False, num_steps=10, cfg_scale=3.0, low=0.3, high=0.8, path="linear"),
    dict(name="sde_cosine_cfg", mode="sde", heun=False, num_steps=10, cfg_scale=2.0, low=0.3, high=0.8,
         path="cosine"),
]


# --------------------------------------------------------------------------
# irepa's keyed random numbers (runtime/sampler.c)
# --------------------------------------------------------------------------


def keyed_normal(seed: int, stream: int, first: int, n: int) -> List[float]:
    return [rng.rng_normal(seed, stream & rng.MASK64, first + k) for k in range(n)]


def initial_noise(cfg: dict) -> torch.Tensor:
    b, c, l = cfg["batch"], cfg["in_channels"], cfg["input_size"]
    d = c * l * l
    vals = keyed_normal(cfg["global_seed"], rng.fnv1a64("sample.x1"), cfg["first_index"] * d, b * d)
    return torch.tensor(vals, dtype=F64).float().to(F64).reshape(b, c, l, l)  # drawn in f32, as the reference


def labels(cfg: dict) -> torch.Tensor:
    stream = rng.fnv1a64("sample.label")
    n = cfg["num_classes"]
    ys = [min(int(rng.rng_uniform(cfg["global_seed"], stream, cfg["first_index"] + i) * n), n - 1)
          for i in range(cfg["batch"])]
    return torch.tensor(ys, dtype=torch.int64)


def sde_noise(cfg: dict, k: int, shape) -> torch.Tensor:
    d = math.prod(shape[1:])
    stream = rng.fnv1a64("sample.sde") + k
    vals = keyed_normal(cfg["global_seed"], stream, cfg["first_index"] * d, shape[0] * d)
    return torch.tensor(vals, dtype=F64).reshape(shape)


# --------------------------------------------------------------------------
# The reference's samplers (ldm/samplers.py), noise and null class as above
# --------------------------------------------------------------------------


def get_score_from_velocity(vt, xt, t, path_type="linear"):
    t = t.view(t.size(0), *([1] * (xt.dim() - 1)))
    if path_type == "linear":
        alpha_t, d_alpha_t = 1 - t, torch.ones_like(xt) * -1
        sigma_t, d_sigma_t = t, torch.ones_like(xt)
    elif path_type == "cosine":
        alpha_t = torch.cos(t * math.pi / 2)
        sigma_t = torch.sin(t * math.pi / 2)
        d_alpha_t = -math.pi / 2 * torch.sin(t * math.pi / 2)
        d_sigma_t = math.pi / 2 * torch.cos(t * math.pi / 2)
    else:
        raise NotImplementedError(path_type)
    reverse_alpha_ratio = alpha_t / d_alpha_t
    var = sigma_t**2 - reverse_alpha_ratio * d_sigma_t * sigma_t
    return (reverse_alpha_ratio * vt - xt) / var


def model_call(model, x, t, y, dtype):
    time_input = torch.ones(x.size(0), dtype=F64) * t
    return model(x.to(dtype), time_input.to(dtype), y)[0].to(F64), time_input


def euler_sampler(model, latents, y, null, num_steps, heun, cfg_scale, guidance_low, guidance_high):
    y_null = torch.full_like(y, null)
    dtype = latents.dtype
    t_steps = torch.linspace(1, 0, num_steps + 1, dtype=F64)
    x_next = latents.to(F64)
    for i, (t_cur, t_next) in enumerate(zip(t_steps[:-1], t_steps[1:])):
        x_cur = x_next
        cfg = cfg_scale > 1.0 and guidance_low <= t_cur <= guidance_high
        inp, yc = (torch.cat([x_cur] * 2), torch.cat([y, y_null])) if cfg else (x_cur, y)
        d_cur, _ = model_call(model, inp, t_cur, yc, dtype)
        if cfg:
            d_cond, d_uncond = d_cur.chunk(2)
            d_cur = d_uncond + cfg_scale * (d_cond - d_uncond)
        x_next = x_cur + (t_next - t_cur) * d_cur
        if heun and i < num_steps - 1:
            inp, yc = (torch.cat([x_next] * 2), torch.cat([y, y_null])) if cfg else (x_next, y)
            d_prime, _ = model_call(model, inp, t_next, yc, dtype)
            if cfg:
                d_cond, d_uncond = d_prime.chunk(2)
                d_prime = d_uncond + cfg_scale * (d_cond - d_uncond)
            x_next = x_cur + (t_next - t_cur) * (0.5 * d_cur + 0.5 * d_prime)
    return x_next


def euler_maruyama_sampler(model, latents, y, null, num_steps, cfg_scale, guidance_low, guidance_high, path_type,
                           noise_of_step):
    y_null = torch.full_like(y, null)
    dtype = latents.dtype
    t_steps = torch.cat([torch.linspace(1.0, 0.04, num_steps, dtype=F64), torch.tensor([0.0], dtype=F64)])
    x_next = latents.to(F64)

    def drift(x_cur, t_cur):
        cfg = cfg_scale > 1.0 and guidance_low <= t_cur <= guidance_high
        inp, yc = (torch.cat([x_cur] * 2), torch.cat([y, y_null])) if cfg else (x_cur, y)
        v_cur, time_input = model_call(model, inp, t_cur, yc, dtype)
        s_cur = get_score_from_velocity(v_cur, inp, time_input, path_type)
        d_cur = v_cur - 0.5 * (2 * t_cur) * s_cur
        if cfg:
            d_cond, d_uncond = d_cur.chunk(2)
            d_cur = d_uncond + cfg_scale * (d_cond - d_uncond)
        return d_cur

    for i, (t_cur, t_next) in enumerate(zip(t_steps[:-2], t_steps[1:-1])):
        dt = t_next - t_cur
        x_cur = x_next
        eps_i = noise_of_step(i)
        deps = eps_i * torch.sqrt(torch.abs(dt))
        d_cur = drift(x_cur, t_cur)
        x_next = x_cur + d_cur * dt + torch.sqrt(2 * t_cur) * deps
    t_cur, t_next = t_steps[-2], t_steps[-1]
    dt = t_next - t_cur
    x_cur = x_next
    return x_cur + dt * drift(x_cur, t_cur)


# --------------------------------------------------------------------------
# The grid formula of runtime/sampler.c, against torch.linspace
# --------------------------------------------------------------------------


def fma(a: float, b: float, c: float) -> float:
    return float(Fraction(a) * Fraction(b) + Fraction(c))  # exact, then one rounding


def irepa_linspace(start: float, end: float, n: int) -> List[float]:
    if n == 1:
        return [start]
    step = (end - start) / (n - 1)
    return [fma(step, i, start) if i < n // 2 else fma(-step, n - 1 - i, end) for i in range(n)]


def check_grid(case: dict) -> None:
    k = case["num_steps"]
    if case["mode"] == "ode":
        ours, theirs = irepa_linspace(1.0, 0.0, k + 1), torch.linspace(1, 0, k + 1, dtype=F64).tolist()
    else:
        ours, theirs = irepa_linspace(1.0, 0.04, k), torch.linspace(1.0, 0.04, k, dtype=F64).tolist()
    if ours != theirs:
        raise AssertionError(f"{case['name']}: torch.linspace differs from sampler.c's formula: {theirs} vs {ours}")


# --------------------------------------------------------------------------
# Model and golden
# --------------------------------------------------------------------------


def build_model(cfg: dict):
    model = sit_ref.SiT(
        input_size=cfg["input_size"], patch_size=cfg["patch_size"], in_channels=cfg["in_channels"],
        hidden=cfg["hidden_size"], depth=cfg["depth"], heads=cfg["num_heads"], mlp_ratio=cfg["mlp_ratio"],
        num_classes=cfg["num_classes"], class_dropout_prob=cfg["class_dropout_prob"], encoder_depth=1, z_dims=[],
        final_width=cfg["hidden_size"], eval_mode=True, init_weights=False,
    )
    return model.eval()  # float32, float32 timestep frequencies: the reference's model


def run_case(model, case: dict, x1: torch.Tensor, y: torch.Tensor, cfg: dict) -> torch.Tensor:
    null = cfg["num_classes"]
    latents = x1.float()  # the reference's latents are float32; the samplers widen them
    with torch.no_grad():
        if case["mode"] == "ode":
            return euler_sampler(model, latents, y, null, case["num_steps"], case["heun"], case["cfg_scale"],
                                 case["low"], case["high"])
        return euler_maruyama_sampler(model, latents, y, null, case["num_steps"], case["cfg_scale"], case["low"],
                                      case["high"], case["path"], lambda k: sde_noise(cfg, k, tuple(x1.shape)))


def compute(cfg: dict) -> Dict[str, torch.Tensor]:
    rng.check_kat()
    gen = torch.Generator().manual_seed(cfg["weight_seed"])
    model = build_model(cfg)
    params = numeric.draw_params(model, gen)
    model.load_state_dict(params)
    x1, y = initial_noise(cfg), labels(cfg)
    out: Dict[str, torch.Tensor] = dict(params)
    out["x1"], out["y"] = x1, y
    for case in CASES:
        check_grid(case)
        a = run_case(model, case, x1, y, cfg)
        b = run_case(model, case, x1, y, cfg)
        if not torch.equal(a, b):
            raise AssertionError(f"{case['name']}: not bit-identical on recomputation")
        if not torch.isfinite(a).all():
            raise AssertionError(f"{case['name']}: non-finite samples")
        out[f"{case['name']}.sample"] = a.contiguous()
    return out


def metadata(cfg: dict) -> Dict[str, str]:
    return {"config": json.dumps(cfg, sort_keys=True), "cases": json.dumps(CASES), "generator": SCRIPT,
            "torch": torch.__version__}


def generate(path: Path) -> Dict[str, torch.Tensor]:
    torch.set_num_threads(1)
    tensors = compute(CONFIG)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata(CONFIG))
    return tensors


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="regenerate to a temporary file and compare bit for bit")
    args = ap.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as d:
            new = generate(Path(d) / GOLDEN.name)
            have = load_file(str(GOLDEN))
            bad = [k for k in sorted(set(have) | set(new)) if k not in have or k not in new
                   or not torch.equal(have[k], new[k])]
            print("golden reproduced bit for bit" if not bad else f"differs: {bad}")
            return 1 if bad else 0
    t = generate(GOLDEN)
    print(f"== {GOLDEN.relative_to(REPO_ROOT)} ({GOLDEN.stat().st_size} bytes, {len(t)} tensors)")
    print(f"   labels {t['y'].tolist()}")
    for case in CASES:
        s = t[f"{case['name']}.sample"]
        print(f"   {case['name']:16s} max|x| {float(s.abs().max()):.6f}  mean {float(s.mean()):+.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
