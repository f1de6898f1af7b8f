#!/usr/bin/env python3
"""gen_spatial_golden.py: goldens for the spatial metrics (runtime/spatial_metrics.c),
the correlation statistics (runtime/spatial_stats.c) and the query points of
viz-spatialnorm (runtime/mt19937.c, runtime/spatial_viz.c).

The metrics are a NumPy implementation of spec/spatial_metrics.md §1 written
from the spec, not from the C code: distances as a [T, T] matrix of Manhattan
distances, pair sets as boolean masks over it, means as masked sums. Tokens are
normalised in float32 (x / max(‖x‖, ε)); the Gram matrix and the means after it
in float64. The query points use Python's own `random` (the reference's), so
the C Mersenne Twister is checked against CPython itself.

Writes into tests/runtime/golden/spatial/:
  metrics_<case>.safetensors  features f32[N, T, D], masks u8[N, T],
                              params i64[8] = H, W, far_dist, dmax, d_pos,
                              d_pos_min, d_neg, sqrt; per-image f64[N] lds,
                              cds, srss (NaN where the spec says NaN), rmsc;
                              and the means (NaN-ignoring) as mean_<metric>.
  random.safetensors          Python random.random() after random.seed(s) for
                              a few seeds: f64[K] per seed, seeds as i64.
  refpoints.safetensors       the spec's query-point procedure for some
                              (n, H, W): ys, xs f64[n], rows, cols i64[n].
  stats.safetensors           x, y f64[n] with NaNs; Pearson r (np.corrcoef),
                              Spearman rho (scipy.stats.spearmanr, or ranks
                              here when SciPy is absent), polyfit slope and
                              intercept, over the finite pairs.

    python3 tools/gen_spatial_golden.py [--out DIR]
"""
from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

# ---- metrics (spec §1) ---------------------------------------------------------


def manhattan(H: int, W: int) -> np.ndarray:
    r, c = np.divmod(np.arange(H * W), W)
    return np.abs(r[:, None] - r[None, :]) + np.abs(c[:, None] - c[None, :])


def normalise(u: np.ndarray, eps: float) -> np.ndarray:
    u = u.astype(np.float32)
    n = np.sqrt(np.sum(u * u, axis=-1, keepdims=True, dtype=np.float32))
    return (u / np.maximum(n, np.float32(eps))).astype(np.float32)


def gram(u: np.ndarray, eps: float) -> np.ndarray:
    x = normalise(u, eps).astype(np.float64)
    return np.einsum("btd,bsd->bts", x, x)


def lds(u, H, W, far_dist=6):
    G, d = gram(u, 1e-8), manhattan(H, W)
    # unordered neighbour pairs: ordered pairs at distance 1 counted once each way, halved
    near = np.triu(d == 1)
    far = d >= far_dist
    return G[:, near].mean(axis=1) - G[:, far].mean(axis=1)


def cds(u, H, W, dmax=8):
    G, d = gram(u, 1e-8), manhattan(H, W)
    xs = [k for k in range(1, dmax + 1) if np.any(d == k)]
    if not xs:
        return np.zeros(u.shape[0])
    S = np.stack([G[:, d == k].mean(axis=1) for k in xs], axis=1)  # [B, len(xs)]
    x = np.array(xs, dtype=np.float64)
    x0 = x - x.mean()
    beta = ((S - S.mean(axis=1, keepdims=True)) * x0).sum(axis=1) / max((x0 * x0).sum(), 1e-12)
    return -beta


def srss(u, masks, H, W, d_pos=1, d_pos_min=1, d_neg=6):
    G, d = gram(u, 1e-12), manhattan(H, W)
    out = np.full(u.shape[0], np.nan)
    for b in range(u.shape[0]):
        fg = masks[b].astype(bool)
        if fg.sum() < 2 or (~fg).sum() < 1:
            continue
        P = fg[None, :] & (d >= d_pos_min) & (d <= d_pos)
        N = (~fg)[None, :] & (d >= d_neg)
        valid = fg & P.any(axis=1) & N.any(axis=1)
        if not valid.any():
            continue
        pos = (G[b] * P).sum(axis=1)[valid] / P.sum(axis=1)[valid]
        neg = (G[b] * N).sum(axis=1)[valid] / N.sum(axis=1)[valid]
        out[b] = np.mean(pos - neg)
    return out


def rmsc(u, take_sqrt=True):
    x = normalise(u, 1e-8).astype(np.float64)
    v = ((x - x.mean(axis=1, keepdims=True)) ** 2).sum(axis=2).mean(axis=1)
    return np.sqrt(v) if take_sqrt else v


def runner_mean(v: np.ndarray) -> float:
    """The runner's aggregate: nanmean if any NaN, else the mean (NaN if all NaN)."""
    if np.isnan(v).all():
        return float("nan")
    return float(np.nanmean(v)) if np.isnan(v).any() else float(v.mean())


# ---- cases ---------------------------------------------------------------------


def smooth_field(rng, N, H, W, D):
    r, c = np.divmod(np.arange(H * W), W)
    freq = rng.uniform(0.2, 0.8, size=(N, D, 2))
    phase = rng.uniform(0, 2 * np.pi, size=(N, D))
    return np.sin(freq[:, :, 0, None] * r + freq[:, :, 1, None] * c + phase[:, :, None]).transpose(0, 2, 1)


def checkerboard(rng, N, H, W, D):
    r, c = np.divmod(np.arange(H * W), W)
    sign = np.where((r + c) % 2 == 0, 1.0, -1.0)
    base, offset = rng.normal(size=(N, 1, D)), 0.3 * rng.normal(size=(N, 1, D))
    return sign[None, :, None] * base + offset


def random_masks(rng, N, T):
    m = (rng.uniform(size=(N, T)) < 0.4).astype(np.uint8)
    m[:, 0], m[:, 1], m[:, -1] = 1, 1, 0  # at least two foreground and one background token
    return m


def blob_masks(N, H, W):
    """A centred rectangle of foreground, as an object on a background."""
    m = np.zeros((N, H, W), np.uint8)
    m[:, H // 4 : H - H // 4, W // 4 : W - W // 4] = 1
    return m.reshape(N, H * W)


def cases(rng):
    N, H, W, D = 4, 8, 8, 16
    T = H * W
    yield "random", rng.normal(size=(N, T, D)), random_masks(rng, N, T), (H, W, 6, 8, 1, 1, 6, 1)
    yield "smooth", smooth_field(rng, N, 6, 7, 8), blob_masks(N, 6, 7), (6, 7, 6, 8, 1, 1, 6, 1)
    yield "checker", checkerboard(rng, N, H, W, D), blob_masks(N, H, W), (H, W, 6, 8, 1, 1, 6, 1)
    const = np.repeat(rng.normal(size=(N, 1, D)), T, axis=1)
    yield "constant", const, blob_masks(N, H, W), (H, W, 6, 8, 1, 1, 6, 1)
    # the SRSS NaN rules: all background, one foreground token, all foreground,
    # two foreground tokens 2 apart (no anchor has a positive at d_pos 1),
    # then an ordinary image
    u = rng.normal(size=(5, T, D))
    m = np.zeros((5, T), np.uint8)
    m[1, 10] = 1
    m[2, :] = 1
    m[3, 0] = m[3, 2] = 1
    m[4] = blob_masks(1, H, W)[0]
    yield "masks", u, m, (H, W, 6, 8, 1, 1, 6, 1)
    # zero-norm tokens: every second token of image 0, all of image 1
    z = rng.normal(size=(3, T, D))
    z[0, ::2] = 0
    z[1] = 0
    yield "zeros", z, random_masks(rng, 3, T), (H, W, 6, 8, 1, 1, 6, 1)
    # another parameter set and no sqrt, on a 5x5 grid (dmax past the farthest pair)
    yield "params", rng.normal(size=(3, 25, 5)), random_masks(rng, 3, 25), (5, 5, 3, 10, 2, 1, 3, 0)
    # a 16x16 grid as the reference's, with a non-square D
    yield "grid16", smooth_field(rng, 2, 16, 16, 12) + 0.1 * rng.normal(size=(2, 256, 12)), blob_masks(2, 16, 16), (
        16, 16, 6, 8, 1, 1, 6, 1)


def write_metrics(out: Path, rng):
    for name, u, m, p in cases(rng):
        H, W, far, dmax, dpos, dposmin, dneg, sq = p
        u = np.ascontiguousarray(u, dtype=np.float32)  # safetensors writes the buffer as laid out
        vals = {
            "lds": lds(u, H, W, far),
            "cds": cds(u, H, W, dmax),
            "srss": srss(u, m, H, W, dpos, dposmin, dneg),
            "rmsc": rmsc(u, bool(sq)),
        }
        t = {"features": u, "masks": np.ascontiguousarray(m, dtype=np.uint8), "params": np.array(p, dtype=np.int64)}
        for k, v in vals.items():
            t[k] = v.astype(np.float64)
            t["mean_" + k] = np.array([runner_mean(v)], dtype=np.float64)
        save_file(t, str(out / f"metrics_{name}.safetensors"))
        print(name, {k: np.round(v, 6).tolist() for k, v in vals.items()})


# ---- Python's random and the query points (spec §3) ------------------------------

SEEDS = [42, 0, 1, 12345, (1 << 40) | 5]


def write_random(out: Path):
    t = {"seeds": np.array(SEEDS, dtype=np.int64)}
    for s in SEEDS:
        random.seed(s)
        t[f"seed{s}"] = np.array([random.random() for _ in range(1500)], dtype=np.float64)  # past one twist of 624 words
    save_file(t, str(out / "random.safetensors"))


def ref_points(n: int, H: int, W: int, seed: int = 42):
    random.seed(seed)
    pts = [(0.5, 0.5)]
    tries = 0
    while len(pts) < n and tries < 500:
        tries += 1
        y, x = random.random(), random.random()
        if all(max(abs(y - py), abs(x - px)) >= 0.15 for py, px in pts):
            pts.append((y, x))
    while len(pts) < n:
        pts.append((random.random(), random.random()))
    pts = pts[:n]
    rows = [min(max(round(y * (H - 1)), 0), H - 1) for y, _ in pts]
    cols = [min(max(round(x * (W - 1)), 0), W - 1) for _, x in pts]
    return pts, rows, cols


REF_CASES = [(4, 8, 8), (4, 16, 16), (16, 8, 8), (9, 5, 7), (1, 8, 8), (16, 2, 2)]


def write_refpoints(out: Path):
    t = {"cases": np.array(REF_CASES, dtype=np.int64)}
    for i, (n, H, W) in enumerate(REF_CASES):
        pts, rows, cols = ref_points(n, H, W)
        t[f"ys{i}"] = np.array([p[0] for p in pts])
        t[f"xs{i}"] = np.array([p[1] for p in pts])
        t[f"rows{i}"] = np.array(rows, dtype=np.int64)
        t[f"cols{i}"] = np.array(cols, dtype=np.int64)
    save_file(t, str(out / "refpoints.safetensors"))


# ---- the comparison's statistics (spec §2) ----------------------------------------


def spearman(x, y):
    try:
        from scipy.stats import spearmanr

        return float(spearmanr(x, y).statistic)
    except ImportError:  # ranks with ties averaged
        def rank(v):
            return np.array([np.sum(v < a) + (np.sum(v == a) + 1) / 2 for a in v])

        return float(np.corrcoef(rank(x), rank(y))[0, 1])


def write_stats(out: Path, rng):
    x = np.array([0.1, 0.35, 0.2, np.nan, 0.5, 0.35, 0.9, 0.42])
    y = np.array([12.0, 9.5, 11.0, 8.0, 7.2, 9.9, 3.1, np.nan])
    ok = np.isfinite(x) & np.isfinite(y)
    slope, intercept = np.polyfit(x[ok], y[ok], 1)
    t = {"x": x, "y": y,
         "pearson": np.array([np.corrcoef(x[ok], y[ok])[0, 1]]),
         "spearman": np.array([spearman(x[ok], y[ok])]),
         "slope": np.array([slope]), "intercept": np.array([intercept]),
         "used": np.array([ok.sum()], dtype=np.int64)}
    save_file(t, str(out / "stats.safetensors"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "tests/runtime/golden/spatial"))
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20251210)
    write_metrics(out, rng)
    write_random(out)
    write_refpoints(out)
    write_stats(out, rng)
    print("wrote", out)


if __name__ == "__main__":
    main()
