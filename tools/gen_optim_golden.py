#!/usr/bin/env python3
"""Generate tests/numeric/golden/tiny_sit_train_step.safetensors: three training steps of the tiny
iREPA SiT (as tools/gen_numeric_golden.py's, 16 wide and 1 deep, another seed) with
PyTorch's own optimiser code, in float64:

    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
    torch.optim.AdamW(lr, betas, eps, weight_decay, foreach=False).step()
    for every named parameter (pos_embed included):  ema.mul_(decay).add_(p, alpha=1 - decay)
    (the reference's update_ema; the EMA starts as a copy of the model)

The same batch is used at every step, so the bias corrections of steps 1, 2 and 3 are exercised and
clipping is active (the gradient norm exceeds MAX_GRAD_NORM). The hyper-parameters are not the
reference's defaults but values that make every term visible in three steps (weight decay on, a
fast EMA). eps is 1e-6, not 1e-8: the attention's key bias has no gradient in exact arithmetic,
only rounding noise (1e-17 in f64, 1e-9 in f32), which Adam with eps 1e-8 would turn into steps of
size lr in either precision, so f32 and f64 runs could not be compared on it.

Tensors: the inputs under their entry names, the initial parameters (F32, exact in F64), and
    step<k>.loss, step<k>.grad_norm                         (k = 1, 2, 3; rank 0, F64)
    final.<name>, final.exp_avg.<name>, final.exp_avg_sq.<name>, final.ema.<name>   (F64)
__metadata__: config (JSON, the SiT arguments), optim (JSON, the hyper-parameters), generator, torch.

    python3 tools/gen_optim_golden.py        # (re)write the golden
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gen_numeric_golden as g  # noqa: E402

OUT = HERE.parent / "tests" / "numeric" / "golden" / "tiny_sit_train_step.safetensors"
OPTIM = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.01, max_grad_norm=0.5, ema_decay=0.99,
             steps=3)
F64 = torch.float64
# narrower and shallower than the loss goldens: the file holds five copies of the weights in f64
SMALLER = dict(hidden_size=16, depth=1, num_heads=2, z_dims=[8], projector_dim=16)


def main() -> int:
    cfg = dict(g.GOLDENS["tiny_sit_irepa.safetensors"], seed=20251125, **SMALLER)
    gen = torch.Generator().manual_seed(cfg["seed"])
    model = g.build_model(cfg)
    params = g.draw_params(model, gen)
    inputs = g.draw_inputs(cfg, gen)
    model.load_state_dict(params)
    model = model.to(F64)
    named = dict(model.named_parameters())
    trainable = [p for p in named.values() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=OPTIM["lr"], betas=(OPTIM["beta1"], OPTIM["beta2"]), eps=OPTIM["eps"],
                            weight_decay=OPTIM["weight_decay"], foreach=False)
    ema = {n: p.detach().clone() for n, p in named.items()}
    out = {}
    for k in range(1, OPTIM["steps"] + 1):
        opt.zero_grad(set_to_none=True)
        total, _, _ = g.loss_entry(model, inputs, cfg)
        total.backward()
        norm = torch.nn.utils.clip_grad_norm_(trainable, OPTIM["max_grad_norm"])
        assert float(norm) > OPTIM["max_grad_norm"], "clipping should be active"
        opt.step()
        with torch.no_grad():
            for n, p in named.items():
                ema[n].mul_(OPTIM["ema_decay"]).add_(p, alpha=1 - OPTIM["ema_decay"])
        out[f"step{k}.loss"] = total.detach().clone()
        out[f"step{k}.grad_norm"] = norm.detach().clone()
        print(f"step {k}: loss {float(total.detach()):.12g}, grad norm {float(norm):.12g}")
    for n, p in named.items():
        out[f"final.{n}"] = p.detach().clone()
        out[f"final.ema.{n}"] = ema[n]
        if p.requires_grad:
            st = opt.state[p]
            out[f"final.exp_avg.{n}"] = st["exp_avg"].clone()
            out[f"final.exp_avg_sq.{n}"] = st["exp_avg_sq"].clone()
    tensors = dict(inputs)
    tensors.update(params)
    tensors.update(out)
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    meta = {"config": json.dumps(cfg, sort_keys=True), "optim": json.dumps(OPTIM, sort_keys=True),
            "generator": "tools/gen_optim_golden.py", "torch": torch.__version__}
    save_file(tensors, str(OUT), metadata=meta)
    print(f"wrote {OUT} ({len(tensors)} tensors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
