#!/usr/bin/env python3
"""Write the committed Fashion-MNIST data files for offramp.

Writes into models/data/fashion-mnist/ (numpy.save, .npy v1.0, C order, gzip'd):
  test-images.npy.gz       uint8 [10000,1,28,28]  official test split, original order
  test-labels.npy.gz       uint8 [10000]
  bootstrap-images.npy.gz  uint8 [6000,1,28,28]   stratified 10 % of the train split
  bootstrap-labels.npy.gz  uint8 [6000]           (600 per class, seeded shuffle)

The bootstrap subset is chosen by `bootstrap_indices` in train_fmnist_resnet.py.
Source: Debian package `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).

Usage (from the repository root):
  /usr/bin/python3 models/recipes/export_fmnist_data.py
"""

import argparse
import gzip
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_fmnist_resnet import (  # noqa: E402
    DEFAULT_DATA_DIR, REPO_ROOT, bootstrap_indices, load_split)


def save_npy_gz(path, array):
    # mtime=0 and no file name in the gzip header, so reruns are byte-identical.
    with open(path, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)
    print(f"{path}: {array.dtype} {list(array.shape)} {os.path.getsize(path)} bytes")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    ap.add_argument("--out-dir", default=os.path.join(REPO_ROOT, "models", "data", "fashion-mnist"))
    ap.add_argument("--fraction", type=float, default=0.10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)

    test_x, test_y = load_split(args.data_dir, "test")
    train_x, train_y = load_split(args.data_dir, "train")
    idx = bootstrap_indices(train_y, args.fraction, args.seed)
    assert np.all(np.bincount(train_y[idx], minlength=10) == np.bincount(train_y[idx])[0])

    out = lambda name: os.path.join(args.out_dir, name)  # noqa: E731
    save_npy_gz(out("test-images.npy.gz"), test_x)
    save_npy_gz(out("test-labels.npy.gz"), test_y)
    save_npy_gz(out("bootstrap-images.npy.gz"), train_x[idx])
    save_npy_gz(out("bootstrap-labels.npy.gz"), train_y[idx])


if __name__ == "__main__":
    main()
