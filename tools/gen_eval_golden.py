#!/usr/bin/env python3
"""Write the goldens of the evaluation code (runtime/npz.c, runtime/fid.c)
with numpy and scipy, computed the way the ADM suite computes them
(guided-diffusion's evaluations/evaluator.py):

  FID    |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(scipy.linalg.sqrtm(S1 @ S2)),
         with ADM's retry (1e-6 on both diagonals) when sqrtm is not finite,
         and the real part kept;
  stats  np.mean(x, axis=0), np.cov(x, rowvar=False) of float32 features;
  IS     softmax, splits of a fixed size taken in order (the last shorter),
         exp(mean KL(p || split mean)) each, then np.mean / np.std;
  PR     ADM's ManifoldEstimator with k = 3, written directly: squared
         distances, radius = the 4th smallest distance of a row of its own
         set (itself first), inside = distance <= some radius of the other set.

tests/runtime/test_fid.c and test_npz.c check irepa against these files,
so the test suite itself needs no Python:

  python3 tools/gen_eval_golden.py      # needs numpy and scipy

In tests/runtime/golden/eval/:
  fid_cases.npz   per case c in 0..2: c{c}_mu1, c{c}_sigma1, c{c}_mu2, c{c}_sigma2 (f8),
                  c{c}_fid (f8 scalar) and c{c}_retried (i8 scalar: ADM's eps retry happened)
  features.npz    feat_a [300, 24] f4, feat_b [200, 24] f4, their mu_a, sigma_a, mu_b,
                  sigma_b and fid_ab (f8) as numpy computes them
  is_logits.npz   logits [1200, 10] f4, split 500, is_mean, is_std (f8), splits (i8)
  pr.npz          ref [160, 8] f4, smp [140, 8] f4, radii_ref, radii_smp (f8),
                  precision, recall (f8), k (i8)
  np_*.npz        files as numpy writes them, some of which irepa refuses
                  (compressed, Fortran order, big-endian, int32); .npy 2.0 / 3.0 members
"""
import io
import warnings
import zipfile
from pathlib import Path

import numpy as np
from scipy import linalg

OUT = Path(__file__).resolve().parent.parent / "tests" / "runtime" / "golden" / "eval"


def adm_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """evaluator.py's FIDStatistics.frechet_distance, same steps."""
    diff = mu1 - mu2
    with warnings.catch_warnings():  # scipy >= 1.16 deprecates disp=False, which ADM passes
        warnings.simplefilter("ignore", DeprecationWarning)
        covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    retried = 0
    if not np.isfinite(covmean).all():
        retried = 1
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError("imaginary component %g" % np.max(np.abs(covmean.imag)))
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)), retried


def random_cov(rng, d, n):
    """The covariance of n random correlated vectors: PSD, rank min(n-1, d)."""
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    x = rng.standard_normal((n, d)) @ mix * rng.uniform(0.5, 2.0, d)
    return np.cov(x, rowvar=False)


def fid_cases(rng):
    out = {}
    cases = [(32, 400, 400), (64, 1000, 800), (16, 12, 400)]  # the last: S1 of rank 11, a singular product
    for c, (d, n1, n2) in enumerate(cases):
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d) * 0.5 + 0.1
        s1, s2 = random_cov(rng, d, n1), random_cov(rng, d, n2)
        fid, retried = adm_frechet_distance(mu1, s1, mu2, s2)
        out.update({f"c{c}_mu1": mu1, f"c{c}_sigma1": s1, f"c{c}_mu2": mu2, f"c{c}_sigma2": s2,
                    f"c{c}_fid": np.float64(fid), f"c{c}_retried": np.int64(retried)})
    return out


def features(rng):
    d = 24
    a = (rng.standard_normal((300, d)) * 3 + 1).astype(np.float32)
    b = (rng.standard_normal((200, d)) @ rng.standard_normal((d, d)) * 0.4 + 1.2).astype(np.float32)
    # ADM takes np.mean of its float32 activations, a float32 mean; irepa
    # averages in double, so the golden mean is taken in double too (np.cov
    # converts to double by itself).
    mu_a, sigma_a = np.mean(a.astype(np.float64), axis=0), np.cov(a, rowvar=False)
    mu_b, sigma_b = np.mean(b.astype(np.float64), axis=0), np.cov(b, rowvar=False)
    fid, _ = adm_frechet_distance(mu_a, sigma_a, mu_b, sigma_b)
    return {"feat_a": a, "feat_b": b, "mu_a": mu_a, "sigma_a": sigma_a, "mu_b": mu_b, "sigma_b": sigma_b,
            "fid_ab": np.float64(fid)}


def inception_score(logits, split_size):
    """evaluator.py's compute_inception_score on softmax(logits), in float64."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    preds = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    scores = []
    for i in range(0, len(preds), split_size):
        part = preds[i: i + split_size]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    return float(np.mean(scores)), float(np.std(scores)), len(scores)


def is_case(rng):
    logits = (rng.standard_normal((1200, 10)) * 2.5).astype(np.float32)
    mean, std, splits = inception_score(logits, 500)
    return {"logits": logits, "split": np.int64(500), "is_mean": np.float64(mean), "is_std": np.float64(std),
            "splits": np.int64(splits)}


def radii(x, k):
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return np.sort(d, axis=1)[:, k]


def pr_case(rng, k=3):
    ref = rng.standard_normal((160, 8)).astype(np.float32)
    smp = (rng.standard_normal((140, 8)) * 1.3 + 0.4).astype(np.float32)
    r64, s64 = ref.astype(np.float64), smp.astype(np.float64)
    rr, rs = radii(r64, k), radii(s64, k)
    d = ((r64[:, None, :] - s64[None, :, :]) ** 2).sum(-1)  # [ref, smp]
    precision = float(np.mean(np.any(d <= rr[:, None], axis=0)))
    recall = float(np.mean(np.any(d <= rs[None, :], axis=1)))
    return {"ref": ref, "smp": smp, "radii_ref": rr, "radii_smp": rs, "precision": np.float64(precision),
            "recall": np.float64(recall), "k": np.int64(k)}


def npy_bytes(arr, version):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, version=version)
    return buf.getvalue()


def numpy_files():
    """Small files as numpy writes them, for the npz reader."""
    u8 = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5, 1)
    mixed = dict(arr_0=u8, f4=np.linspace(-1, 1, 7, dtype=np.float32), f8=np.array([[1.5, -2.25], [1e300, 0.0]]),
                 i8=np.array([-3, 0, 1 << 40], dtype=np.int64), scalar=np.float64(2.5))
    np.savez(OUT / "np_savez.npz", **mixed)
    np.savez(OUT / "np_positional.npz", u8, np.zeros((0, 2), dtype=np.float32))  # arr_0, arr_1 (empty)
    np.savez_compressed(OUT / "np_compressed.npz", arr_0=u8)
    np.savez(OUT / "np_fortran.npz", arr_0=np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)))
    np.savez(OUT / "np_bigendian.npz", arr_0=np.arange(3, dtype=">f4"))
    np.savez(OUT / "np_int32.npz", arr_0=np.arange(3, dtype=np.int32), ok=np.ones(2))
    for v in (2, 3):
        with zipfile.ZipFile(OUT / f"np_v{v}.npz", "w") as z:
            z.writestr("arr_0.npy", npy_bytes(u8, (v, 0)))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20250607)
    np.savez(OUT / "fid_cases.npz", **fid_cases(rng))
    np.savez(OUT / "features.npz", **features(rng))
    np.savez(OUT / "is_logits.npz", **is_case(rng))
    np.savez(OUT / "pr.npz", **pr_case(rng))
    numpy_files()
    for f in sorted(OUT.glob("*.npz")):
        print(f.name, f.stat().st_size)
    cases = np.load(OUT / "fid_cases.npz")
    print("fid cases:", [float(cases[f"c{c}_fid"]) for c in range(3)],
          "retried:", [int(cases[f"c{c}_retried"]) for c in range(3)])


if __name__ == "__main__":
    main()
