#!/usr/bin/env python3
"""Training recipe for the Fashion-MNIST cascade members (Agreement-Based Cascading).

An ABC tier is k=3 small, *different* models that vote on a request: when all agree the
tier answers, otherwise the request goes on to the backbone (models/fmnist-resnet.onnx).
The serving budget is disagreement with the backbone, not accuracy, so every member is
distilled from the backbone: trained on the backbone's own softmax on the 60k train images
(the split the backbone was trained on), as served by onnxruntime-node. Diversity comes
from the architectures (linear on pixels / one hidden layer / small convolutional).

Members (all take raw [0,1] pixels; the normalisation is inside the graph):
  logreg  Flatten -> Linear 784->10
  mlp     Flatten -> Linear 784->256 -> ReLU -> Linear 256->10
  cnn     Conv3x3 1->8 -> ReLU -> MaxPool2 -> Conv3x3 8->16 -> ReLU -> MaxPool2 (7x7)
          -> Flatten -> Linear 784->10

Loss: T^2 * KL(softmax(teacher/T) || softmax(student/T)) + --label-weight * CE(labels).
Each epoch shows every train image once, mirrored left-right at random; the teacher
logits of the mirrored copy are the backbone's own on the mirrored image (computed with
the others), so the flip adds inputs without putting words in the backbone's mouth.
Adam, cosine decay to 0, batch 128. No early stopping: the test split is only evaluated.

Outputs (defaults reproduce the committed files):
  models/members/fmnist-{logreg,mlp,cnn}.onnx   opset 17, constant folding; input `pixels`
        float32 [batch,1,28,28] in [0,1]; output `logits` float32 [batch,10] (raw logits)
  models/members/fmnist-{logreg,mlp,cnn}.labels.txt   = models/fmnist-resnet.labels.txt
  models/members/fmnist-members.train.json   settings and figures; check_fmnist_members.mjs
        adds the onnxruntime-node figures (accuracy, agreement, ABC, latency, ONNX vs torch)
  /tmp/fmnist-backbone/*.npy          backbone logits (fmnist_backbone_logits.mjs; cached)
  /tmp/fmnist-members-torch-logits.npy  torch logits of the first 1000 test images [3,1000,10]
  /tmp/fmnist-members.pt              state_dicts (not committed)

Data: the Debian package `dataset-fashion-mnist` (IDX gz files in
/usr/share/datasets/fashion-mnist). Nothing is downloaded.

Usage (from the repository root, CPU only; takes a few minutes):
  /usr/bin/python3 models/recipes/train_fmnist_members.py
  /usr/bin/python3 models/recipes/train_fmnist_members.py --export-only   # from the state_dicts
  node models/recipes/check_fmnist_members.mjs    # re-run the ORT figures alone
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_fmnist_resnet import (  # noqa: E402
    CLASSES, DEFAULT_DATA_DIR, REPO_ROOT, Normalize, load_split)

MEMBERS = ("logreg", "mlp", "cnn")
OUT_DIR = os.path.join(REPO_ROOT, "models", "members")
BACKBONE_DIR = "/tmp/fmnist-backbone"

# Debian's torch links the reference BLAS (~2 GFLOP/s here), so a Linear on 784 inputs is
# about 10x slower than the same product as a oneDNN convolution. Training runs every
# Linear as a convolution with the same weights (`FAST`); the export switches it off and
# traces plain Gemm, the same function (the ORT check compares the two).
FAST = True


def linear(x, layer):
    """layer(x) for x [batch, features]."""
    if not FAST:
        return layer(x)
    return F.conv2d(x[:, :, None, None], layer.weight[:, :, None, None], layer.bias).flatten(1)


# ------------------------------------------------------------------------- models

class LogReg(nn.Module):
    def __init__(self):
        super().__init__()
        self.normalize = Normalize()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        return linear(torch.flatten(self.normalize(x), 1), self.fc)


class Mlp(nn.Module):
    def __init__(self, hidden=256):
        super().__init__()
        self.normalize = Normalize()
        self.fc1 = nn.Linear(784, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x):
        h = F.relu(linear(torch.flatten(self.normalize(x), 1), self.fc1))
        return linear(h, self.fc2)


class SmallCnn(nn.Module):
    def __init__(self, c1=8, c2=16):
        super().__init__()
        self.normalize = Normalize()
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.fc = nn.Linear(c2 * 7 * 7, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(self.normalize(x))), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return linear(torch.flatten(x, 1), self.fc)


def build(name, args):
    return {"logreg": LogReg, "mlp": lambda: Mlp(args.hidden),
            "cnn": lambda: SmallCnn(args.cnn_c1, args.cnn_c2)}[name]()


SUMMARY = {
    "logreg": "logistic regression on the normalised pixels: Flatten -> Linear 784->10",
    "mlp": "Flatten -> Linear 784->{hidden} -> ReLU -> Linear {hidden}->10",
    "cnn": "Conv3x3 1->{c1} pad 1 -> ReLU -> MaxPool2 -> Conv3x3 {c1}->{c2} pad 1 -> ReLU -> "
           "MaxPool2 -> Flatten -> Linear {c2}*7*7->10",
}


# ----------------------------------------------------------------------- training

def backbone_logits(data_dir, split, flip):
    """The backbone's logits on a split's images ([N,10]; with flip also on their mirror images).

    Computed once by onnxruntime-node (fmnist_backbone_logits.mjs, about 2 minutes for the
    train split with mirrors) and cached under /tmp.
    """
    paths = [os.path.join(BACKBONE_DIR, f"{split}{s}-logits.npy") for s in ("", "-flip")[:1 + flip]]
    if not all(os.path.exists(p) for p in paths):
        subprocess.run(["node", os.path.join(os.path.dirname(__file__), "fmnist_backbone_logits.mjs"),
                        "--split", split, "--out", BACKBONE_DIR, "--data-dir", data_dir]
                       + ["--flip"] * flip, check=True, cwd=REPO_ROOT)
    return [np.load(p) for p in paths]


def distill_loss(student, teacher, labels, temperature, label_weight):
    t = temperature
    kl = F.kl_div(F.log_softmax(student / t, 1), F.log_softmax(teacher / t, 1),
                  reduction="batchmean", log_target=True) * t * t
    if label_weight == 0:
        return kl
    return kl + label_weight * F.cross_entropy(student, labels)


@torch.no_grad()
def predict(model, images_u8, batch=1000):
    model.eval()
    out = [model(torch.from_numpy(np.array(images_u8[i:i + batch])).float().div_(255.0))
           for i in range(0, len(images_u8), batch)]
    return torch.cat(out)


def train_member(name, model, data, args):
    train_x, train_y, teacher, teacher_flip, test_x, test_y, test_teacher = data
    n = len(train_x)
    steps_per_epoch = math.ceil(n / args.batch_size)
    total = steps_per_epoch * args.epochs
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, total) / total)))
    # Its own stream per member, so that training one member alone (--members) gives it.
    gen = torch.Generator().manual_seed(args.seed * 100 + MEMBERS.index(name))
    log, t0 = [], time.time()
    for epoch in range(args.epochs):
        model.train()
        te = time.time()
        perm = torch.randperm(n, generator=gen)
        flip = torch.rand(n, generator=gen) < args.flip_prob
        loss_sum = 0.0
        for step in range(steps_per_epoch):
            idx = perm[step * args.batch_size:(step + 1) * args.batch_size]
            f = flip[idx]
            x = train_x[idx]
            x = torch.where(f[:, None, None, None], x.flip(3), x).float().div_(255.0)
            tl = torch.where(f[:, None], teacher_flip[idx], teacher[idx])
            loss = distill_loss(model(x), tl, train_y[idx], args.temperature, args.label_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
        pred = predict(model, test_x).argmax(1).numpy()
        log.append({"epoch": epoch + 1, "train_loss": round(loss_sum / n, 4),
                    "test_accuracy": round(float((pred == test_y).mean()), 4),
                    "test_agreement_with_backbone": round(float((pred == test_teacher).mean()), 4),
                    "seconds": round(time.time() - te, 1)})
        print(f"{name} {json.dumps(log[-1])}", flush=True)
    return log, time.time() - t0


# ------------------------------------------------------------------------- export

def export_onnx(model, path):
    global FAST
    model.eval()
    FAST = False
    torch.onnx.export(
        model, torch.zeros(1, 1, 28, 28), path, opset_version=17, do_constant_folding=True,
        input_names=["pixels"], output_names=["logits"],
        dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}})
    FAST = True
    import onnx
    m = onnx.load(path)
    onnx.checker.check_model(m)
    return sorted({n.op_type for n in m.graph.node})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    ap.add_argument("--members", default=",".join(MEMBERS))
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--label-weight", type=float, default=0.0)
    ap.add_argument("--flip-prob", type=float, default=0.5)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--cnn-c1", type=int, default=8)
    ap.add_argument("--cnn-c2", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--check-images", type=int, default=1000)
    ap.add_argument("--out-dir", default=OUT_DIR)
    ap.add_argument("--state-dict", default="/tmp/fmnist-members.pt")
    ap.add_argument("--torch-logits", default="/tmp/fmnist-members-torch-logits.npy")
    ap.add_argument("--export-only", action="store_true")
    ap.add_argument("--no-check", action="store_true",
                    help="do not run check_fmnist_members.mjs afterwards")
    args = ap.parse_args()
    names = args.members.split(",")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    test_x, test_y = load_split(args.data_dir, "test")
    models = {}
    for name in names:
        torch.manual_seed(args.seed * 100 + MEMBERS.index(name))
        models[name] = build(name, args)
    os.makedirs(args.out_dir, exist_ok=True)
    report_path = os.path.join(args.out_dir, "fmnist-members.train.json")

    if args.export_only:
        states = torch.load(args.state_dict)
        for name in names:
            models[name].load_state_dict(states[name])
        with open(report_path) as f:
            previous = json.load(f)
        members_info = previous["members"]
        teacher_accuracy = previous["distillation"]["teacher_train_accuracy"]
    else:
        train_x, train_y = load_split(args.data_dir, "train")
        teacher, teacher_flip = backbone_logits(args.data_dir, "train", True)
        test_teacher, = backbone_logits(args.data_dir, "test", False)
        teacher_accuracy = {
            "images": round(float((teacher.argmax(1) == train_y).mean()), 4),
            "mirror_images": round(float((teacher_flip.argmax(1) == train_y).mean()), 4)}
        print(f"backbone accuracy on the train split: {teacher_accuracy}", flush=True)
        data = (torch.from_numpy(train_x.copy()), torch.from_numpy(train_y.astype(np.int64)),
                torch.from_numpy(teacher), torch.from_numpy(teacher_flip),
                test_x, test_y, test_teacher.argmax(1))
        members_info = {}
        for name in names:
            log, wall = train_member(name, models[name], data, args)
            members_info[name] = {"epoch_log": log, "train_wall_seconds": round(wall, 1)}
        torch.save({n: m.state_dict() for n, m in models.items()}, args.state_dict)

    labels_src = os.path.join(REPO_ROOT, "models", "fmnist-resnet.labels.txt")
    with open(labels_src) as f:
        labels_text = f.read()
    assert labels_text.split("\n")[:10] == CLASSES
    reference = []
    for name in names:
        model = models[name]
        pred = predict(model, test_x).argmax(1).numpy()
        onnx_path = os.path.join(args.out_dir, f"fmnist-{name}.onnx")
        ops = export_onnx(model, onnx_path)
        with open(os.path.join(args.out_dir, f"fmnist-{name}.labels.txt"), "w") as f:
            f.write(labels_text)
        reference.append(predict(model, test_x[:args.check_images]).numpy())
        members_info[name].update({
            "architecture": SUMMARY[name].format(hidden=args.hidden, c1=args.cnn_c1, c2=args.cnn_c2),
            "parameters": sum(p.numel() for p in model.parameters()),
            "torch_test_accuracy": round(float((pred == test_y).mean()), 4),
            "onnx": {"file": os.path.relpath(onnx_path, REPO_ROOT), "bytes": os.path.getsize(onnx_path),
                     "ops": ops, "check": "onnx.checker.check_model passed"},
        })
        print(f"{name}: {members_info[name]['parameters']} parameters, torch test accuracy "
              f"{members_info[name]['torch_test_accuracy']}, {os.path.getsize(onnx_path)} bytes, "
              f"ops {ops}", flush=True)
    np.save(args.torch_logits, np.stack(reference).astype(np.float32))

    report = {
        "models": "fmnist cascade members (logreg, mlp, cnn) for models/fmnist-resnet.onnx",
        "dataset": "Fashion-MNIST (train 60000 / official test 10000)",
        "classes": CLASSES,
        "members": members_info,
        "distillation": {
            "teacher": "models/fmnist-resnet.onnx logits on the train images and their mirror "
                       "images (onnxruntime-node, fmnist_backbone_logits.mjs)",
            "loss": "T^2 KL(softmax(teacher/T) || softmax(student/T)) + label_weight CE(labels)",
            "teacher_train_accuracy": teacher_accuracy,
            "temperature": args.temperature, "label_weight": args.label_weight,
            "mirror_probability": args.flip_prob,
        },
        "training": {
            "optimizer": "AdamW", "lr": args.lr, "weight_decay": args.weight_decay,
            "weight_decay_on_bias": False, "schedule": "cosine decay to 0, no warm-up",
            "epochs": args.epochs, "batch_size": args.batch_size, "threads": args.threads,
        },
        "io": {"input": {"name": "pixels", "shape": ["batch", 1, 28, 28], "dtype": "float32",
                         "range": [0.0, 1.0]},
               "output": {"name": "logits", "shape": ["batch", 10], "dtype": "float32",
                          "note": "raw logits, no softmax"},
               "normalization": {"mean": 0.2860, "std": 0.3530, "inside_model": True},
               "opset": 17},
        "seed": args.seed,
        "torch_version": torch.__version__, "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "command": "/usr/bin/python3 models/recipes/train_fmnist_members.py",
    }
    with open(report_path, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(f"wrote {report_path}", flush=True)
    if not args.no_check:
        subprocess.run(["node", os.path.join(os.path.dirname(__file__), "check_fmnist_members.mjs"),
                        "--torch-logits", args.torch_logits, "--members", ",".join(names),
                        "--dir", args.out_dir], check=True, cwd=REPO_ROOT)


if __name__ == "__main__":
    main()
