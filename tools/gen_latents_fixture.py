#!/usr/bin/env python3
"""gen_latents_fixture.py: the tiny latent data set of tests/e2e/train_latents.sh,
tests/e2e/data/latents_tiny/ (6 items of 4x32x32 latents, 3 classes, in
two shards), made the way a user makes one: a folder laid out as REPA's
`dataset_tools.py encode` writes it (NNNNN/img-mean-std-NNNNNNNN.npy and
dataset.json), converted by tools/convert_latents.py. The moments are
random (seeded): means N(0, 4), standard deviations in [0.05, 0.5).

    python3 tools/gen_latents_fixture.py [OUT_DIR]
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.normpath(os.path.join(HERE, "..", "tests", "e2e", "data", "latents_tiny"))
    rng = np.random.default_rng(20240610)
    with tempfile.TemporaryDirectory() as src:
        labels = []
        for i in range(6):
            name = f"{i // 1000:05d}/img-mean-std-{i:08d}.npy"
            mean = rng.normal(0, 2, size=(4, 32, 32)).astype(np.float32)
            std = rng.uniform(0.05, 0.5, size=(4, 32, 32)).astype(np.float32)
            os.makedirs(os.path.join(src, os.path.dirname(name)), exist_ok=True)
            np.save(os.path.join(src, name), np.concatenate([mean, std]))
            labels.append([name, i % 3])
        with open(os.path.join(src, "dataset.json"), "w") as f:
            json.dump({"labels": labels}, f)
        subprocess.run([sys.executable, os.path.join(HERE, "convert_latents.py"), src, out, "--shard-size", "4",
                        "--scale", "0.18215,0.2,0.17,0.19", "--bias", "0.1,-0.2,0,0.05", "--overwrite"], check=True)


if __name__ == "__main__":
    main()
