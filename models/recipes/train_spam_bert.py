#!/usr/bin/env python3
"""Training recipe for offramp's text backbone: a small BERT-style spam classifier.

Trains a transformer encoder from scratch (no pre-training: nothing is downloaded) on the
SpamAssassin train split, evaluates it on the committed test split and exports it to ONNX.

Model (pre-LN BERT encoder): token + learned position embeddings -> LayerNorm -> dropout;
LAYERS x [x + MHSA(LN(x)), x + FFN(LN(x))] with GELU FFN; final LayerNorm; the [CLS]
position (index 0) -> linear -> 2 logits, labels ["ham", "spam"]. Attention is written
out (Q/K/V linears, MatMul, Softmax) rather than nn.MultiheadAttention so the exported
graph is plain ops that later phases can cut between layers; padding keys get -10000
added to their scores (a finite mask, so an all-padding row cannot produce NaN).
Pre-LN because it trains stably from scratch at a useful learning rate without a long
warm-up. Sizes: vocabulary 8192 x width 256, 4 layers, 4 heads, FFN 768, 256 positions:
~4.8 M parameters, ~19 MB as float32 ONNX, and ~1.6 GFLOP per 256-token request so that
batch-1 inference costs well over 10x the serving path's fixed per-request overhead.

Inputs are the ids of models/spam-bert.tokenizer.json (see train_spam_tokenizer.py),
truncated to 256 ([CLS] + 254 pieces + [SEP]), padded with [PAD]=0 and attention_mask 0.

Training: AdamW (weight decay on matrices only), linear warm-up then linear decay,
cross-entropy, batch 32, dropout 0.1. The number of epochs is fixed after timing the
first steps so that training fits --time-budget seconds (the schedule then runs to its
end; it is never cut off mid-decay); --max-epochs caps it.

Outputs (defaults reproduce the committed files):
  models/spam-bert.onnx        opset 14, constant folding; inputs `input_ids`,
                               `attention_mask` int64 [batch, sequence]; output `logits`
                               float32 [batch, 2] (raw logits: ham, spam)
  models/spam-bert.labels.txt  ham, spam
  models/spam-bert.train.json  settings, seed, wall time, test accuracy, per-class recall
  /tmp/spam-bert.pt            torch state_dict (not committed)
  /tmp/spam-bert-torch-logits.json  torch logits of the first --check-texts test texts,
                               which models/recipes/check_spam_bert.mjs compares with
                               onnxruntime-node (and where it adds the latency figures)

Usage (from the repository root, CPU only; first `node models/recipes/export_spam_data.mjs`):
  /usr/bin/python3 models/recipes/train_spam_bert.py
  /usr/bin/python3 models/recipes/train_spam_bert.py --export-only   # re-export the state_dict
  node models/recipes/check_spam_bert.mjs                            # ORT check + latency
"""

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_spam_tokenizer import (  # noqa: E402
    DATA_DIR, DEFAULT_TOKENIZER, DEFAULT_TRAIN, MAX_LENGTH, PAD_ID, load_wordpiece,
    read_jsonl_gz, truncate_ids)

LABELS = ["ham", "spam"]
REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


# -------------------------------------------------------------------------- model

# Debian's torch links the reference BLAS (a few GFLOP/s), so MatMul/Linear are ~30x slower
# here than oneDNN convolutions. Training and evaluation therefore run every matrix
# product as a oneDNN convolution with the same weights (`FAST` = True): Linear as a 1x1
# conv, the two attention products as grouped convs, one group per (sequence, head).
# The ONNX export switches FAST off and traces plain MatMul/Gemm; the exported graph is
# the same function (the ORT check compares it with the conv-path logits).
FAST = True


def linear(x, layer):
    if not FAST:
        return layer(x)
    # [batch, width, sequence] is oneDNN's fast layout here (about 3x a [batch*seq, width, 1] view).
    return F.conv1d(x.transpose(1, 2), layer.weight.unsqueeze(-1), layer.bias).transpose(1, 2)


def attention(q, k, v, bias):
    """softmax(q k^T + bias) v for q, k, v [b, h, s, d] (q already scaled)."""
    if not FAST:
        return (q @ k.transpose(-1, -2) + bias).softmax(-1) @ v
    b, h, s, d = q.shape
    g = b * h
    # scores[g, j, i] = sum_d k[g, j, d] q[g, i, d]: input q as [1, g*d, s], weight k [g*s, d, 1]
    scores = F.conv1d(q.transpose(-1, -2).reshape(1, g * d, s), k.reshape(g * s, d, 1), groups=g)
    probs = (scores.view(b, h, s, s).transpose(-1, -2) + bias).softmax(-1)
    # ctx[g, c, i] = sum_j v[g, j, c] p[g, i, j]: input p as [1, g*s_k, s_q], weight v^T
    ctx = F.conv1d(probs.transpose(-1, -2).reshape(1, g * s, s),
                   v.transpose(-1, -2).reshape(g * d, s, 1), groups=g)
    return ctx.view(b, h, d, s).transpose(-1, -2)


class SelfAttention(nn.Module):
    def __init__(self, width, heads, dropout):
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(width, width)
        self.v = nn.Linear(width, width)
        self.out = nn.Linear(width, width)

    def forward(self, x, bias):
        b, s, w = x.shape
        split = lambda t: t.reshape(b, s, self.heads, self.head_dim).transpose(1, 2)  # noqa: E731
        q = split(linear(x, self.q)) / math.sqrt(self.head_dim)
        k, v = split(linear(x, self.k)), split(linear(x, self.v))
        ctx = attention(q, k, v, bias)  # attention-probability dropout left out: simpler, small data
        return linear(ctx.transpose(1, 2).reshape(b, s, w), self.out)


class EncoderLayer(nn.Module):
    """Pre-LN: x + Attn(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, width, heads, ffn, dropout):
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads, dropout)
        self.ln2 = nn.LayerNorm(width)
        self.ffn1 = nn.Linear(width, ffn)
        self.ffn2 = nn.Linear(ffn, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, bias):
        x = x + self.drop(self.attn(self.ln1(x), bias))
        return x + self.drop(linear(F.gelu(linear(self.ln2(x), self.ffn1)), self.ffn2))


class SpamBert(nn.Module):
    def __init__(self, vocab, width=256, layers=4, heads=4, ffn=768, positions=MAX_LENGTH,
                 dropout=0.1, classes=2):
        super().__init__()
        self.tok = nn.Embedding(vocab, width, padding_idx=PAD_ID)
        self.pos = nn.Embedding(positions, width)
        self.ln_emb = nn.LayerNorm(width)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(EncoderLayer(width, heads, ffn, dropout) for _ in range(layers))
        self.ln_out = nn.LayerNorm(width)
        self.classifier = nn.Linear(width, classes)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        # BERT's initialisation: N(0, 0.02) weights, zero biases.
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, input_ids, attention_mask):
        s = input_ids.shape[1]
        positions = torch.arange(s, device=input_ids.device).unsqueeze(0)
        x = self.drop(self.ln_emb(self.tok(input_ids) + self.pos(positions)))
        # [batch, 1, 1, seq]: 0 for real tokens, -10000 for padding keys.
        bias = (1.0 - attention_mask.to(x.dtype))[:, None, None, :] * -10000.0
        for layer in self.layers:
            x = layer(x, bias)
        return self.classifier(self.ln_out(x[:, 0]))


# --------------------------------------------------------------------------- data

def encode_split(records, wp):
    ids = [truncate_ids(wp.encode(r["text"])) for r in records]
    labels = np.array([LABELS.index(r["label"]) for r in records], dtype=np.int64)
    return ids, labels


def make_batch(id_lists):
    s = max(len(x) for x in id_lists)
    input_ids = torch.full((len(id_lists), s), PAD_ID, dtype=torch.int64)
    mask = torch.zeros((len(id_lists), s), dtype=torch.int64)
    for i, x in enumerate(id_lists):
        input_ids[i, :len(x)] = torch.tensor(x)
        mask[i, :len(x)] = 1
    return input_ids, mask


@torch.no_grad()
def predict(model, ids, batch=64):
    model.eval()
    # Sorted by length so batches pad little; results put back in input order.
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    logits = torch.empty((len(ids), 2))
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        logits[idx] = model(*make_batch([ids[i] for i in idx]))
    return logits


def evaluate(model, ids, labels, records):
    pred = predict(model, ids).argmax(1).numpy()
    acc = float((pred == labels).mean())
    recall = {name: float((pred[labels == c] == c).mean()) for c, name in enumerate(LABELS)}
    groups = sorted({r["group"] for r in records})
    group_acc = {}
    for g in groups:
        sel = np.array([r["group"] == g for r in records])
        group_acc[g] = float((pred[sel] == labels[sel]).mean())
    return acc, recall, group_acc


# ------------------------------------------------------------------------- export

def export_onnx(model, path, opset):
    global FAST
    model.eval()
    FAST = False
    ids, mask = make_batch([[2, 10, 20, 3], [2, 30, 3]])
    torch.onnx.export(
        model, (ids, mask), path, opset_version=opset, do_constant_folding=True,
        input_names=["input_ids", "attention_mask"], output_names=["logits"],
        dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                      "attention_mask": {0: "batch", 1: "sequence"},
                      "logits": {0: "batch"}})
    FAST = True
    import onnx
    m = onnx.load(path)
    onnx.checker.check_model(m)
    return sorted({n.op_type for n in m.graph.node})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", default=DEFAULT_TRAIN)
    ap.add_argument("--tokenizer", default=DEFAULT_TOKENIZER)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=768)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--warmup", type=float, default=0.06, help="fraction of steps")
    ap.add_argument("--max-epochs", type=int, default=8)
    ap.add_argument("--time-budget", type=float, default=2000.0, help="seconds of training")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--opset", type=int, default=14)
    ap.add_argument("--check-texts", type=int, default=300)
    ap.add_argument("--onnx", default=os.path.join(REPO_ROOT, "models", "spam-bert.onnx"))
    ap.add_argument("--report", default=os.path.join(REPO_ROOT, "models", "spam-bert.train.json"))
    ap.add_argument("--state-dict", default="/tmp/spam-bert.pt")
    ap.add_argument("--torch-logits", default="/tmp/spam-bert-torch-logits.json")
    ap.add_argument("--export-only", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    wp = load_wordpiece(args.tokenizer)
    test_records = read_jsonl_gz(os.path.join(DATA_DIR, "test.jsonl.gz"))
    test_ids, test_y = encode_split(test_records, wp)
    model = SpamBert(len(wp.vocab), args.width, args.layers, args.heads, args.ffn,
                     dropout=args.dropout)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters {n_params}", flush=True)

    train_info = {}
    if args.export_only:
        model.load_state_dict(torch.load(args.state_dict))
        with open(args.report) as f:
            train_info = json.load(f)
    else:
        train_records = read_jsonl_gz(args.train)
        train_ids, train_y = encode_split(train_records, wp)
        print(f"train {len(train_ids)} test {len(test_ids)}; train ids mean "
              f"{np.mean([len(x) for x in train_ids]):.0f}", flush=True)
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "emb" not in n]
        no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
        emb = [p for n, p in model.named_parameters() if p.dim() >= 2 and "emb" in n]
        opt = torch.optim.AdamW([
            {"params": decay + emb, "weight_decay": args.weight_decay},
            {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
        steps_per_epoch = math.ceil(len(train_ids) / args.batch_size)
        total_steps = None  # fixed after the timing probe
        epochs = args.max_epochs
        step, t0, log = 0, time.time(), []

        def lr_at(k):
            total = total_steps or steps_per_epoch * args.max_epochs
            warm = max(1, int(args.warmup * total))
            return args.lr * (k / warm if k < warm else max(0.0, (total - k) / (total - warm)))

        epoch = 0
        while epoch < epochs:
            model.train()
            perm = rng.permutation(len(train_ids))
            loss_sum, seen, te = 0.0, 0, time.time()
            for start in range(0, len(perm), args.batch_size):
                idx = perm[start:start + args.batch_size]
                x, m = make_batch([train_ids[i] for i in idx])
                y = torch.from_numpy(train_y[idx])
                for g in opt.param_groups:
                    g["lr"] = lr_at(step)
                loss = F.cross_entropy(model(x, m), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                step += 1
                loss_sum += loss.item() * len(idx)
                seen += len(idx)
                if total_steps is None and step == 20:
                    per_step = (time.time() - t0) / step
                    epochs = max(1, min(args.max_epochs,
                                        int(args.time_budget / (per_step * steps_per_epoch))))
                    total_steps = epochs * steps_per_epoch
                    print(f"{per_step:.2f} s/step -> {epochs} epochs ({total_steps} steps)",
                          flush=True)
                if step % 25 == 0:
                    print(f"epoch {epoch + 1} step {step} loss {loss_sum / seen:.4f} "
                          f"lr {lr_at(step):.2e} {time.time() - t0:.0f}s", flush=True)
            acc, recall, _ = evaluate(model, test_ids, test_y, test_records)
            log.append({"epoch": epoch + 1, "train_loss": round(loss_sum / seen, 4),
                        "test_accuracy": round(acc, 4), "seconds": round(time.time() - te, 1)})
            print(json.dumps(log[-1]), flush=True)
            epoch += 1
        wall = time.time() - t0
        torch.save(model.state_dict(), args.state_dict)
        train_info = {
            "epochs": epochs, "steps": step, "train_wall_seconds": round(wall, 1),
            "epoch_log": log,
            "training": {
                "optimizer": "AdamW (betas 0.9/0.98, eps 1e-6)", "lr": args.lr,
                "weight_decay": args.weight_decay, "weight_decay_on_ln_and_bias": False,
                "schedule": f"linear warm-up {args.warmup:.0%} of steps, then linear decay to 0",
                "batch_size": args.batch_size, "dropout": args.dropout,
                "grad_clip_norm": 1.0, "time_budget_seconds": args.time_budget,
                "max_epochs": args.max_epochs, "threads": args.threads,
                "train_texts": len(train_ids)},
        }

    acc, recall, group_acc = evaluate(model, test_ids, test_y, test_records)
    print(f"test accuracy {acc:.4f} recall {recall} groups {group_acc}", flush=True)
    ops = export_onnx(model, args.onnx, args.opset)
    with open(os.path.join(os.path.dirname(args.onnx), "spam-bert.labels.txt"), "w") as f:
        f.write("\n".join(LABELS) + "\n")
    logits = predict(model, test_ids[:args.check_texts])
    with open(args.torch_logits, "w") as f:
        json.dump({"ids": [r["id"] for r in test_records[:args.check_texts]],
                   "logits": logits.tolist()}, f)

    report = {
        "model": "spam-bert",
        "dataset": f"SpamAssassin public corpus, deduplicated (train {train_info.get('training', {}).get('train_texts')}"
                   f" / test {len(test_ids)}, stratified by group, seed 0)",
        "test_accuracy": round(acc, 4),
        "per_class_recall": {k: round(v, 4) for k, v in recall.items()},
        "per_group_accuracy": {k: round(v, 4) for k, v in group_acc.items()},
        "classes": LABELS,
        **{k: v for k, v in train_info.items() if k in ("epochs", "steps", "train_wall_seconds",
                                                          "epoch_log", "training")},
        "seed": args.seed,
        "architecture": {
            "summary": (f"pre-LN BERT encoder: token+position embeddings, LayerNorm; {args.layers} "
                        f"layers x (MHSA {args.heads} heads, GELU FFN {args.ffn}), width "
                        f"{args.width}; final LayerNorm; [CLS] -> linear -> 2"),
            "parameters": n_params, "vocab": len(wp.vocab), "width": args.width,
            "layers": args.layers, "heads": args.heads, "ffn": args.ffn,
            "max_positions": MAX_LENGTH,
            "inputs": [{"name": "input_ids", "shape": ["batch", "sequence"], "dtype": "int64"},
                       {"name": "attention_mask", "shape": ["batch", "sequence"],
                        "dtype": "int64"}],
            "output": {"name": "logits", "shape": ["batch", 2], "dtype": "float32",
                       "note": "raw logits, no softmax; index 0 ham, 1 spam"},
            "tokenizer": "models/spam-bert.tokenizer.json (WordPiece 8192, lowercase, "
                         "[CLS] $A [SEP]); truncate to 256 ids: first 255, then [SEP]",
        },
        "onnx": {"opset": args.opset, "file": "models/spam-bert.onnx",
                 "bytes": os.path.getsize(args.onnx),
                 "check": "onnx.checker.check_model passed", "ops": ops,
                 **train_info.get("onnx", {})},
        "torch_version": torch.__version__, "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "command": "/usr/bin/python3 models/recipes/train_spam_bert.py",
    }
    for k in ("onnxruntime_check", "batch1_latency"):
        if k in train_info:
            report[k] = train_info[k]
    with open(args.report, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(f"wrote {args.onnx} ({os.path.getsize(args.onnx)} bytes) and {args.report}")


if __name__ == "__main__":
    main()
