#!/usr/bin/env python3
"""Training recipe for offramp's bundled Fashion-MNIST backbone.

Trains a small ResNet (ResNet-20 layout, widths 16/32/64) on the full
Fashion-MNIST train split, evaluates it on the official 10k test split and
exports it to ONNX for the offramp runtime.

Outputs (defaults reproduce the committed files):
  models/fmnist-resnet.onnx        opset 17; input  `pixels` float32 [batch,1,28,28]
                                   in [0,1]; output `logits` float32 [batch,10]
                                   (raw logits, normalisation is inside the graph)
  models/fmnist-resnet.train.json  accuracy, per-class accuracy, timing, settings
  /tmp/fmnist-resnet.pt            torch state_dict (not committed)

Data: the Debian package `dataset-fashion-mnist` (IDX gz files in
/usr/share/datasets/fashion-mnist). Nothing is downloaded.

Usage (from the repository root, CPU only):
  /usr/bin/python3 models/recipes/train_fmnist_resnet.py
  /usr/bin/python3 models/recipes/train_fmnist_resnet.py --bench 50    # time 50 batches, exit
  /usr/bin/python3 models/recipes/train_fmnist_resnet.py --check-only  # re-verify ONNX vs state_dict

After export the ONNX file is checked with onnx.checker (python3-onnx) and by
evaluating its graph with torch ops on 1000 test images (onnxruntime is not
packaged here); the result goes into the .train.json.

The helpers `load_split` and `bootstrap_indices` are shared with
export_fmnist_data.py, which writes the committed .npy.gz data files.
"""

import argparse
import gzip
import json
import os
import platform
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST train-split pixel statistics (in [0,1])

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"


# --------------------------------------------------------------------------- data

def _read_idx(path):
    """Read a gzip'd IDX file (images: uint8 [N,rows,cols]; labels: uint8 [N])."""
    with gzip.open(path, "rb") as f:
        magic = struct.unpack(">I", f.read(4))[0]
        if magic >> 8 != 0x08:  # 0x08 = unsigned byte element type
            raise ValueError(f"{path}: unsupported IDX magic {magic:#x}")
        ndim = magic & 0xFF
        dims = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        data = np.frombuffer(f.read(), dtype=np.uint8)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: expected {dims}, got {data.size} bytes")
    return data.reshape(dims)


def load_split(data_dir, split):
    """Return (images uint8 [N,1,28,28], labels uint8 [N]) for split 'train' or 'test'."""
    prefix = {"train": "train", "test": "t10k"}[split]
    images = _read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))
    labels = _read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
    assert images.shape[0] == labels.shape[0]
    return np.ascontiguousarray(images[:, None, :, :]), labels


def bootstrap_indices(labels, fraction=0.10, seed=0):
    """Stratified `fraction` of the train split, in a seeded shuffled order.

    Takes round(fraction * count) images of every class (600 per class for the
    default 10 % of 60k), then shuffles the union with the same seed.
    """
    rng = np.random.default_rng(seed)
    picked = []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        n = int(round(fraction * idx.size))
        picked.append(rng.choice(idx, size=n, replace=False))
    picked = np.concatenate(picked)
    rng.shuffle(picked)
    return picked


# -------------------------------------------------------------------------- model

class Normalize(nn.Module):
    """(x - mean) / std, so the exported graph takes raw [0,1] pixels."""

    def __init__(self, mean=MEAN, std=STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, x):
        return (x - self.mean) / self.std


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN + shortcut, then ReLU.

    The shortcut is identity, or 1x1 conv + BN when the shape changes.
    """

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class FmnistResNet(nn.Module):
    """Stem conv3x3 1->16; 3 stages x `blocks` BasicBlocks (16/32/64, stride 2
    at the start of stages 2 and 3: 28->14->7); global avg pool; linear 64->10."""

    def __init__(self, widths=(16, 32, 64), blocks=3, num_classes=10):
        super().__init__()
        self.normalize = Normalize()
        self.stem = nn.Sequential(
            nn.Conv2d(1, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        stages, cin = [], widths[0]
        for i, w in enumerate(widths):
            layers = []
            for b in range(blocks):
                stride = 2 if (i > 0 and b == 0) else 1
                layers.append(BasicBlock(cin, w, stride))
                cin = w
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # Zero-init the last BN of each block: each block starts as identity,
        # which helps short training schedules.
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x):
        x = self.stem(self.normalize(x))
        x = self.pool(self.stages(x))
        return self.fc(torch.flatten(x, 1))


# ----------------------------------------------------------------------- training

def augment(batch_u8, pad, gen):
    """Random crop (zero padding `pad`) + random horizontal flip, batched.

    batch_u8: uint8 [B,1,28,28] tensor -> float32 [B,1,28,28] in [0,1].
    Implemented as one gather over the flattened padded images.
    """
    b, _, h, w = batch_u8.shape
    pw = w + 2 * pad
    padded = F.pad(batch_u8.view(b, h, w), (pad, pad, pad, pad)).view(b, -1)
    dy = torch.randint(0, 2 * pad + 1, (b, 1, 1), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (b, 1, 1), generator=gen)
    cols = torch.arange(w).view(1, 1, w).expand(b, 1, w)
    flip = torch.rand(b, 1, 1, generator=gen) < 0.5
    cols = torch.where(flip, cols.flip(2), cols)
    idx = (dy + torch.arange(h).view(1, h, 1)) * pw + dx + cols   # [B,h,w]
    out = torch.gather(padded, 1, idx.view(b, -1))
    return out.view(b, 1, h, w).float().div_(255.0)


@torch.no_grad()
def evaluate(model, images_u8, labels, batch=1000):
    model.eval()
    preds = []
    for i in range(0, len(images_u8), batch):
        x = torch.from_numpy(np.array(images_u8[i:i + batch])).float().div_(255.0)
        preds.append(model(x).argmax(1))
    preds = torch.cat(preds).numpy()
    labels = np.asarray(labels)
    acc = float((preds == labels).mean())
    per_class = {CLASSES[c]: float((preds[labels == c] == c).mean()) for c in range(10)}
    return acc, per_class


# ------------------------------------------------------------------ ONNX check

def run_onnx_with_torch(path, x):
    """Evaluate an exported ONNX graph node by node with torch functional ops.

    onnxruntime is not available here, so this small interpreter (covering just
    the ops this model exports to) checks that the *file* -- graph, attributes
    and folded weights -- computes the same logits as the torch model.
    """
    import onnx
    from onnx import numpy_helper
    m = onnx.load(path)
    onnx.checker.check_model(m)
    env = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
    env[m.graph.input[0].name] = x
    for n in m.graph.node:
        a = {at.name: onnx.helper.get_attribute_value(at) for at in n.attribute}
        i = [env[name] for name in n.input]
        op = n.op_type
        if op == "Identity":
            y = i[0]
        elif op == "Constant":
            y = torch.from_numpy(numpy_helper.to_array(a["value"]).copy())
        elif op == "Conv":
            assert a.get("group", 1) == 1 and set(a.get("dilations", [1, 1])) == {1}
            pads = a.get("pads", [0, 0, 0, 0])
            assert pads[:2] == pads[2:], "asymmetric padding not supported"
            y = F.conv2d(i[0], i[1], i[2] if len(i) > 2 else None,
                         stride=a.get("strides", [1, 1]), padding=pads[:2])
        elif op == "Relu":
            y = F.relu(i[0])
        elif op in ("Add", "Sub", "Mul", "Div"):
            y = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div}[op](i[0], i[1])
        elif op == "GlobalAveragePool":
            y = i[0].mean(dim=(2, 3), keepdim=True)
        elif op == "Flatten":
            y = torch.flatten(i[0], a.get("axis", 1))
        elif op == "Gemm":
            assert a.get("transB", 0) == 1 and a.get("transA", 0) == 0
            y = a.get("alpha", 1.0) * i[0] @ i[1].T + a.get("beta", 1.0) * i[2]
        else:
            raise NotImplementedError(f"op {op} not covered by the checker")
        env[n.output[0]] = y
    return env[m.graph.output[0].name], sorted({n.op_type for n in m.graph.node})


def check_onnx(path, model, images_u8):
    """Max |logit difference| and argmax agreement, ONNX file vs torch model."""
    x = torch.from_numpy(np.array(images_u8)).float().div_(255.0)
    with torch.no_grad():
        ref = model.eval()(x)
        got, ops = run_onnx_with_torch(path, x)
    return {"images": len(x), "max_abs_logit_diff": float((ref - got).abs().max()),
            "argmax_agreement": float((ref.argmax(1) == got.argmax(1)).float().mean()),
            "ops": ops}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--max-lr", type=float, default=0.15)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--pad", type=int, default=2, help="random-crop padding")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                    help="train in channels_last memory format (~2x faster on CPU here)")
    ap.add_argument("--eval-every", type=int, default=2,
                    help="evaluate on the test split every N epochs (and after the last)")
    ap.add_argument("--bench", type=int, default=0,
                    help="time this many training batches (after 5 warm-up) and exit")
    ap.add_argument("--onnx", default=os.path.join(REPO_ROOT, "models", "fmnist-resnet.onnx"))
    ap.add_argument("--report", default=os.path.join(REPO_ROOT, "models", "fmnist-resnet.train.json"))
    ap.add_argument("--state-dict", default="/tmp/fmnist-resnet.pt")
    ap.add_argument("--check-only", action="store_true",
                    help="skip training: load --state-dict, compare it with --onnx on "
                         "1000 test images and record the result in --report")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    train_x, train_y = load_split(args.data_dir, "train")
    test_x, test_y = load_split(args.data_dir, "test")
    if args.check_only:
        model = FmnistResNet()
        model.load_state_dict(torch.load(args.state_dict))
        result = check_onnx(args.onnx, model, test_x[:1000])
        print(f"ONNX vs torch: {result}", flush=True)
        with open(args.report) as f:
            report = json.load(f)
        report["onnx"]["torch_reference_check"] = result
        with open(args.report, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
        return

    train_x_t = torch.from_numpy(train_x.copy())
    train_y_t = torch.from_numpy(train_y.astype(np.int64))

    model = FmnistResNet()
    mem_fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=mem_fmt)

    # No weight decay on BN parameters and biases.
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": args.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=args.max_lr, momentum=args.momentum, nesterov=True)
    steps_per_epoch = (len(train_x) + args.batch_size - 1) // args.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.max_lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch,
        pct_start=0.25, div_factor=10.0, final_div_factor=100.0)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"params {n_params}, steps/epoch {steps_per_epoch}", flush=True)

    t_start = time.time()
    epoch_times = []
    for epoch in range(args.epochs):
        model.train()
        t0 = time.time()
        perm = torch.randperm(len(train_x), generator=gen)
        loss_sum, correct, seen = 0.0, 0, 0
        for step in range(steps_per_epoch):
            idx = perm[step * args.batch_size:(step + 1) * args.batch_size]
            x = augment(train_x_t[idx], args.pad, gen).to(memory_format=mem_fmt)
            y = train_y_t[idx]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            if args.bench and step == 4:
                t0 = time.time()  # exclude warm-up batches from the benchmark
            if args.bench and step + 1 == args.bench + 5:
                dt = time.time() - t0
                print(f"bench: {args.bench} batches in {dt:.1f}s -> "
                      f"{dt / args.bench * steps_per_epoch:.0f}s/epoch (est.)", flush=True)
                return
        epoch_times.append(time.time() - t0)
        msg = ""
        if (epoch + 1) % args.eval_every == 0 or epoch + 1 == args.epochs:
            msg = f"test_acc {evaluate(model, test_x, test_y)[0]:.4f}  "
        print(f"epoch {epoch + 1:2d}/{args.epochs}  loss {loss_sum / seen:.4f}  "
              f"train_acc {correct / seen:.4f}  {msg}"
              f"lr {sched.get_last_lr()[0]:.4f}  {epoch_times[-1]:.0f}s", flush=True)
    train_wall = time.time() - t_start

    # ---------------------------------------------------------------- results
    model = model.to(memory_format=torch.contiguous_format).eval()
    test_acc, per_class = evaluate(model, test_x, test_y)
    print(f"final test accuracy {test_acc:.4f}", flush=True)
    torch.save(model.state_dict(), args.state_dict)

    # ------------------------------------------------------------------- ONNX
    dummy = torch.zeros(1, 1, 28, 28, dtype=torch.float32)
    torch.onnx.export(
        model, dummy, args.onnx, opset_version=17, do_constant_folding=True,
        input_names=["pixels"], output_names=["logits"],
        dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}})
    onnx_check = "not run (python3-onnx not installed)"
    try:
        import onnx
        onnx.checker.check_model(onnx.load(args.onnx))
        onnx_check = "onnx.checker.check_model passed"
    except ImportError:
        pass
    print(f"exported {args.onnx} ({os.path.getsize(args.onnx)} bytes); {onnx_check}", flush=True)
    ref_check = None
    if onnx_check.endswith("passed"):
        ref_check = check_onnx(args.onnx, model, test_x[:1000])
        print(f"ONNX vs torch: {ref_check}", flush=True)

    report = {
        "model": "fmnist-resnet",
        "dataset": "Fashion-MNIST (train 60000 / official test 10000)",
        "test_accuracy": round(test_acc, 4),
        "per_class_accuracy": {k: round(v, 4) for k, v in per_class.items()},
        "classes": CLASSES,
        "epochs": args.epochs,
        "train_wall_seconds": round(train_wall, 1),
        "seconds_per_epoch": round(float(np.mean(epoch_times)), 1),
        "seed": args.seed,
        "architecture": {
            "summary": "ResNet-20-style: stem conv3x3 1->16+BN+ReLU; 3 stages x 3 "
                       "BasicBlocks (widths 16/32/64, stride 2 at first block of "
                       "stages 2-3, 1x1 conv+BN shortcut there); global avg pool; "
                       "linear 64->10",
            "parameters": n_params,
            "input": {"name": "pixels", "shape": ["batch", 1, 28, 28], "dtype": "float32",
                      "range": [0.0, 1.0]},
            "output": {"name": "logits", "shape": ["batch", 10], "dtype": "float32",
                       "note": "raw logits, no softmax"},
            "normalization": {"mean": MEAN, "std": STD, "inside_model": True},
        },
        "training": {
            "optimizer": "SGD nesterov", "momentum": args.momentum,
            "weight_decay": args.weight_decay, "weight_decay_on_bn_and_bias": False,
            "schedule": "OneCycleLR (pct_start 0.25, div_factor 10, final_div_factor 100)",
            "max_lr": args.max_lr, "batch_size": args.batch_size,
            "augmentation": f"random crop (zero pad {args.pad}) + horizontal flip",
            "label_smoothing": 0.0, "channels_last": args.channels_last,
            "threads": args.threads,
        },
        "onnx": {"opset": 17, "file": os.path.relpath(args.onnx, REPO_ROOT),
                 "bytes": os.path.getsize(args.onnx), "check": onnx_check,
                 "torch_reference_check": ref_check},
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "command": "/usr/bin/python3 models/recipes/train_fmnist_resnet.py",
    }
    with open(args.report, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(f"wrote {args.report}", flush=True)


if __name__ == "__main__":
    main()
