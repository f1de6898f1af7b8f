#!/usr/bin/env python3
"""Write the goldens of runtime/imagefolder.c with PIL: a few small test
images, what PIL decodes them to (convert("RGB")), and ADM's centre crop
of them (spec/training.md §6), mostly at S = 32 and S = 24.
tests/runtime/test_imagefolder.c checks that irepa computes the same bytes.

Pillow's resize changed its order of passes in 12.2 and in 13.0, which
changes the crops of tall images by a few levels (runtime/imagefolder.h,
ImfPillow), so the crops are written once per Pillow, each into a folder
named after the version that ran. The committed ones came from

    python3 tools/gen_imagefolder_golden.py --images    # Pillow 13.0.0: images, decoded copies, crops
    pip install --target /tmp/pil121 pillow==12.1.1
    PYTHONPATH=/tmp/pil121 python3 tools/gen_imagefolder_golden.py
    pip install --target /tmp/pil123 pillow==12.3.0
    PYTHONPATH=/tmp/pil123 python3 tools/gen_imagefolder_golden.py

Needs Pillow and numpy. In tests/runtime/golden/imagefolder/:
    NAME.EXT          a test image (PNG or JPEG, saved by PIL), with --images
    NAME.EXT.rgb      PIL's convert("RGB") of it, uint8 [H][W][3] (small images only)
    manifest.txt      "image NAME.EXT W H HAS_RGB S..." per image
    pillow-VERSION/NAME.EXT.sS.chw   center_crop_arr(image, S), uint8 [3][S][S]
    pillow-VERSION/manifest.txt      which Pillow wrote them
Without --images the images are read as they are, and their decoding by
this Pillow is checked against the .rgb copies.
"""
import argparse

from pathlib import Path

import numpy as np
import PIL
from PIL import Image

OUT = Path(__file__).resolve().parent.parent / "tests" / "runtime" / "golden" / "imagefolder"
SIZES = (32, 24)  # the crop sides, unless an image names its own
RGB_MAX_PIXELS = 100 * 100  # keep the decoded copies small


def center_crop_arr(pil_image, image_size):
    """ADM's center crop (guided-diffusion image_datasets.py), as the spec
    states it: BOX halving while the short side is at least 2·S, BICUBIC to
    a short side of S with round(), then the S×S crop."""
    while min(*pil_image.size) >= 2 * image_size:
        pil_image = pil_image.resize(tuple(x // 2 for x in pil_image.size), resample=Image.BOX)
    scale = image_size / min(*pil_image.size)
    pil_image = pil_image.resize(tuple(round(x * scale) for x in pil_image.size), resample=Image.BICUBIC)
    arr = np.array(pil_image)
    crop_y = (arr.shape[0] - image_size) // 2
    crop_x = (arr.shape[1] - image_size) // 2
    return arr[crop_y : crop_y + image_size, crop_x : crop_x + image_size]


def gradient_noise(w, h, rng, noise):
    """An RGB gradient with a ripple and uniform noise in [-noise, noise]."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * x / max(w - 1, 1)
    g = 255 * y / max(h - 1, 1)
    b = 127.5 + 127.5 * np.sin(x / 3.0) * np.cos(y / 5.0)
    img = np.stack([r, g, b], axis=-1) + rng.integers(-noise, noise + 1, size=(h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def stripes(w, h):
    """Sharp periodic patterns (compress well, and alias without the
    antialiasing of PIL's filters): checks, diagonal stripes, a ramp."""
    y, x = np.mgrid[0:h, 0:w]
    r = np.where(((x // 3) + (y // 4)) % 2 == 0, 230, 20)
    g = ((x + 2 * y) % 7) * 36
    b = (x * 255) // (w - 1)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def images():
    """(file name, PIL image, crop sides): the test cases, deterministic."""
    rng = np.random.default_rng(20251210)
    grey = gradient_noise(45, 80, rng, 20)[:, :, 1]
    la = np.stack([gradient_noise(40, 36, rng, 30)[:, :, 0], rng.integers(0, 256, (36, 40))], -1)
    rgba = np.concatenate([gradient_noise(64, 48, rng, 25), rng.integers(0, 256, (48, 64, 1))], -1)
    pal = Image.fromarray(gradient_noise(20, 28, rng, 40)).quantize(colors=16)
    pal.info["transparency"] = 3
    grey16 = (np.arange(36 * 30).reshape(30, 36) * 37 % 1200).astype(np.uint16)
    bits = (rng.integers(0, 2, (31, 33)) * 255).astype(np.uint8)
    tall = gradient_noise(70, 300, rng, 0) // 2 + stripes(70, 300) // 2
    return [
        ("rgb_70x50.png", Image.fromarray(gradient_noise(70, 50, rng, 12)), SIZES),
        ("rgb_517x301.png", Image.fromarray(stripes(517, 301)), SIZES),  # BOX halvings with odd sides
        ("grey_45x80.png", Image.fromarray(grey, "L"), SIZES),  # portrait
        ("la_40x36.png", Image.fromarray(la.astype(np.uint8), "LA"), SIZES),
        ("rgba_64x48.png", Image.fromarray(rgba.astype(np.uint8), "RGBA"), SIZES),
        ("pal_20x28.png", pal, SIZES),  # palette with a transparent index; upscaled at both sizes
        ("grey16_36x30.png", Image.fromarray(grey16), SIZES),  # PIL: mode I;16, clipped to 255 by convert
        ("bits_33x31.png", Image.fromarray(bits).convert("1"), SIZES),
        ("rgb_90x60.jpg", Image.fromarray(gradient_noise(90, 60, rng, 6)), SIZES),
        # tall: Pillow 13 runs the vertical pass first (BOX and BICUBIC)
        ("rgb_70x300.png", Image.fromarray(tall), SIZES),
        # h > 100 w: so do Pillow 12.2 and 12.3
        ("rgb_5x600.png", Image.fromarray(stripes(5, 600)), (4, 3)),
    ]


def write_images():
    """The test images, their decoded copies and the manifest."""
    lines = [
        f"# written by tools/gen_imagefolder_golden.py --images (Pillow {PIL.__version__}, numpy {np.__version__})",
        "# image FILE W H HAS_RGB S...: FILE.rgb beside it if HAS_RGB, pillow-*/FILE.sS.chw for each S",
    ]
    for name, im, sizes in images():
        path = OUT / name
        if name.endswith(".jpg"):
            im.save(path, quality=90)
        elif "transparency" in im.info:
            im.save(path, transparency=im.info["transparency"])
        else:
            im.save(path)
        rgb = Image.open(path).convert("RGB")  # what the reference data loader does
        w, h = rgb.size
        has_rgb = int(w * h <= RGB_MAX_PIXELS)
        if has_rgb:
            (OUT / (name + ".rgb")).write_bytes(np.asarray(rgb, dtype=np.uint8).tobytes())
        lines.append(f"image {name} {w} {h} {has_rgb} " + " ".join(str(s) for s in sizes))
    (OUT / "manifest.txt").write_text("\n".join(lines) + "\n")


def write_crops():
    """This Pillow's crops of every image in the manifest."""
    crops = OUT / f"pillow-{PIL.__version__}"
    crops.mkdir(exist_ok=True)
    (crops / "manifest.txt").write_text(
        f"# center_crop_arr of the images in ../manifest.txt, by Pillow {PIL.__version__} (numpy {np.__version__}):\n"
        "# tools/gen_imagefolder_golden.py, run with that Pillow (see its docstring)\n"
    )
    for line in (OUT / "manifest.txt").read_text().splitlines():
        if line.startswith("#"):
            continue
        _, name, w, h, has_rgb, *sizes = line.split()
        rgb = Image.open(OUT / name).convert("RGB")
        assert rgb.size == (int(w), int(h)), name
        if has_rgb == "1":
            assert np.asarray(rgb).tobytes() == (OUT / (name + ".rgb")).read_bytes(), f"{name}: decodes differently"
        for s in map(int, sizes):
            crop = center_crop_arr(rgb, s)
            assert crop.shape == (s, s, 3), (name, crop.shape)
            (crops / f"{name}.s{s}.chw").write_bytes(np.ascontiguousarray(crop.transpose(2, 0, 1)).tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", action="store_true", help="(re)write the test images and their decoded copies")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.images:
        write_images()
    write_crops()


if __name__ == "__main__":
    main()
