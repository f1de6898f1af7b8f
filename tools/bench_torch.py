"""PyTorch side of the benchmark (issue 10): the model, objective, batch and
thread count of `irepa-run bench`, in PyTorch eager mode on the CPU.

The model is tools/sit_ref.py's SiT (written from the same spec as
models/sit.irg). The training step is the reference's ldm step as irepa's
`train_step` entry computes it (compiler/optim.c): t ~ U[0, 1), noise
~ N(0, 1), labels dropped to the null class with probability 0.1, the
flow-matching velocity loss plus proj_coeff times the cosine alignment of the
projector's output with the spatially normalised targets; backward; the
global gradient norm clipped to 1.0; AdamW (lr 1e-4, betas 0.9 / 0.999,
eps 1e-8, no weight decay); the EMA (decay 0.9999) updated per parameter as
the reference's update_ema does. Sampling is the Euler ODE with
classifier-free guidance on the doubled batch, state in float64, as
runtime/sampler.c and the reference's generate.py.

Inputs are random, of the shapes irepa-run bench feeds: x0 ~ N(0, 1),
labels below the class count, targets ~ N(0, 1).

Timing as irepa-run bench: W warm-up runs, then K timed ones
(time.perf_counter around each); median, quartiles (linear interpolation),
min and max. Peak memory is the process's peak resident set size from
resource.getrusage (ru_maxrss), the same measure irepa-run reports, so it
includes the Python interpreter and the torch library (rss_after_import
gives that baseline); tracemalloc would miss torch's own allocations.

    python3 tools/bench_torch.py --model SiT-S/2 --batch 8 --steps 10 --threads 2
    python3 tools/bench_torch.py --model SiT-T/4 --in-channels 1 --num-classes 10 \
        --encoder-depth 2 --z-dim 64 --projector-dim 256 --batch 64 --mode sample --json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time

_T0 = time.perf_counter()

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sit_ref import SiT, cosine_alignment_loss, flow_matching_loss, sit_config, spatial_normalize  # noqa: E402

# irepa's own tiny SiT (models/sit.irg), not in the reference's table.
TINY = {"SiT-T/2": (4, 128, 4, 2), "SiT-T/4": (4, 128, 4, 4)}


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def build_model(a: argparse.Namespace, eval_mode: bool) -> SiT:
    """SiT as models/sit.irg builds it: the final layer at the model's width
    (SiT-S too; docs/compatibility.md)."""
    if a.model in TINY:
        depth, hidden, heads, patch = TINY[a.model]
    else:
        c = sit_config(a.model)
        depth, hidden, heads, patch = c["depth"], c["hidden"], c["heads"], c["patch_size"]
    return SiT(input_size=a.input_size, patch_size=patch, in_channels=a.in_channels, hidden=hidden, depth=depth,
               heads=heads, num_classes=a.num_classes, class_dropout_prob=0.1, encoder_depth=a.encoder_depth,
               z_dims=[a.z_dim], projector_dim=a.projector_dim, projection_layer_type=a.projection,
               proj_kernel_size=a.kernel_size, final_width=hidden, eval_mode=eval_mode)


class Trainer:
    """One training step of the ldm objective with AdamW, clipping and EMA."""

    def __init__(self, a: argparse.Namespace):
        self.a = a
        self.model = build_model(a, eval_mode=False).train()
        self.ema = {n: p.detach().clone() for n, p in self.model.named_parameters()}
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8,
                                     weight_decay=0.0)
        g = torch.Generator().manual_seed(a.seed)
        shape = (a.batch, a.in_channels, a.input_size, a.input_size)
        tokens = (a.input_size // self.model.patch_size) ** 2
        self.x0 = torch.randn(shape, generator=g)
        self.y = torch.randint(0, a.num_classes, (a.batch,), generator=g)
        self.target = torch.randn((a.batch, tokens, a.z_dim), generator=g)

    def step(self) -> float:
        a, b = self.a, self.a.batch
        t = torch.rand((b, 1, 1, 1))
        noise = torch.randn_like(self.x0)
        per_sample, zs = flow_matching_loss(self.model, self.x0, self.y, t, noise)  # drops labels at 0.1 in train()
        z = spatial_normalize(self.target, a.spnorm, a.alpha)
        loss = per_sample.mean() + a.proj_coeff * cosine_alignment_loss(z, zs[0])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        with torch.no_grad():
            for n, p in self.model.named_parameters():
                self.ema[n].mul_(0.9999).add_(p.detach(), alpha=1 - 0.9999)
        return float(loss.detach())

    def state_bytes(self) -> int:
        moments = sum(v.numel() * v.element_size() for s in self.opt.state.values() for v in s.values()
                      if torch.is_tensor(v))
        return moments + sum(v.numel() * v.element_size() for v in self.ema.values())


class Sampler:
    """Euler ODE with classifier-free guidance (cfg on every step of [1, 0])."""

    def __init__(self, a: argparse.Namespace):
        self.a = a
        self.model = build_model(a, eval_mode=True).eval()
        g = torch.Generator().manual_seed(a.seed)
        self.y = torch.randint(0, a.num_classes, (a.batch,), generator=g)
        self.null = torch.full_like(self.y, a.num_classes)
        self.shape = (a.batch, a.in_channels, a.input_size, a.input_size)
        self.ema = {}
        self.opt = None

    @torch.no_grad()
    def step(self) -> float:
        a = self.a
        x = torch.randn(self.shape, dtype=torch.float32).double()
        ts = torch.linspace(1.0, 0.0, a.sample_steps + 1, dtype=torch.float64)
        labels = torch.cat([self.y, self.null])
        for k in range(a.sample_steps):
            t_cur, t_next = ts[k], ts[k + 1]
            x_in = torch.cat([x, x]).float()
            v, _ = self.model(x_in, torch.full((2 * a.batch,), float(t_cur)), labels)
            cond, uncond = v.double().chunk(2)
            x = x + (t_next - t_cur) * (uncond + a.cfg_scale * (cond - uncond))
        return float(x[0, 0, 0, 0])

    def state_bytes(self) -> int:
        return 0


def spread(times: list) -> dict:
    v = sorted(times)

    def q(f: float) -> float:
        pos = f * (len(v) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(v) - 1)
        return v[lo] + (v[hi] - v[lo]) * (pos - lo)

    return {"median": q(0.5), "q1": q(0.25), "q3": q(0.75), "min": v[0], "max": v[-1]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="SiT-S/2")
    p.add_argument("--input-size", type=int, default=32)
    p.add_argument("--in-channels", type=int, default=4)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--encoder-depth", type=int, default=4)
    p.add_argument("--z-dim", type=int, default=768)
    p.add_argument("--projector-dim", type=int, default=2048)
    p.add_argument("--projection", default="conv", choices=["conv", "mlp", "linear"])
    p.add_argument("--kernel-size", type=int, default=1)
    p.add_argument("--spnorm", default="zscore", choices=["zscore", "none"])
    p.add_argument("--alpha", type=float, default=0.6)
    p.add_argument("--proj-coeff", type=float, default=1.0)
    p.add_argument("--mode", default="train", choices=["train", "sample"])
    p.add_argument("--sample-steps", type=int, default=50)
    p.add_argument("--cfg-scale", type=float, default=4.0)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="0: torch's default (all cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if a.batch < 1 or a.steps < 1 or a.warmup < 0 or a.sample_steps < 1:
        p.error("--batch, --steps and --sample-steps must be >= 1, --warmup >= 0")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    rss_import = peak_rss_bytes()
    torch.manual_seed(a.seed)
    t0 = time.perf_counter()
    runner = Trainer(a) if a.mode == "train" else Sampler(a)
    build_s = time.perf_counter() - t0
    times, first_s, startup_s = [], None, None
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        runner.step()
        dt = time.perf_counter() - t0
        if i == 0:
            first_s, startup_s = dt, time.perf_counter() - _T0
        if i >= a.warmup:
            times.append(dt)
        if not a.json:
            print(f"\rbench_torch: run {i + 1}/{a.warmup + a.steps}  {dt:.3f} s   ", end="", file=sys.stderr)
    if not a.json:
        print(file=sys.stderr)
    s = spread(times)
    params = sum(p.numel() * p.element_size() for p in runner.model.parameters())
    out = {
        "model": a.model, "mode": a.mode, "batch": a.batch, "threads": torch.get_num_threads(), "steps": a.steps,
        "warmup": a.warmup, "sample_steps": a.sample_steps if a.mode == "sample" else None,
        "torch": torch.__version__, "build_s": build_s, "first_run_s": first_s, "startup_s": startup_s, "run_s": s,
        "img_per_s": a.batch / s["median"], "param_bytes": params, "state_bytes": runner.state_bytes(),
        "rss_after_import_bytes": rss_import, "peak_rss_bytes": peak_rss_bytes(),
    }
    if a.json:
        print(json.dumps(out))
    else:
        print(f"bench_torch: {a.model} {a.mode}, batch {a.batch}, {out['threads']} threads, torch {torch.__version__}")
        print(f"  time per run median {s['median']:.4f} s, IQR {s['q1']:.4f}-{s['q3']:.4f} s, "
              f"min {s['min']:.4f} s, max {s['max']:.4f} s ({a.steps} runs after {a.warmup} warm-up)")
        print(f"  throughput   {out['img_per_s']:.2f} img/s")
        print(f"  memory       parameters {params / 2**20:.1f} MiB, optimiser state {out['state_bytes'] / 2**20:.1f} MiB; "
              f"peak RSS {out['peak_rss_bytes'] / 2**20:.1f} MiB ({rss_import / 2**20:.1f} MiB after import)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
