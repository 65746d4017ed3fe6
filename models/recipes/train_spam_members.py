#!/usr/bin/env python3
"""Training recipe for the spam backbone's cascade members (Agreement-Based Cascading).

ABC puts a tier of three small, different models in front of models/spam-bert.onnx: when
all three (or a chosen quorum) agree the tier answers, otherwise the request goes on to
the backbone. What the tier is held to online is its disagreement with the backbone, so
the members are distilled from the backbone, and they are built on different principles
so that their agreement says something (three copies of one model would agree on their
shared mistakes too):

  meanemb       mean of token embeddings over the real tokens -> linear (fastText-like,
                a bag of words: no order at all);
  cnn1d         token embeddings -> 1-D convolutions of widths 3 and 5 -> ReLU -> max over
                the real tokens -> linear (local n-gram detectors, position-free);
  transformer1  token + learned position embeddings -> one pre-LN transformer encoder
                layer (the backbone's own EncoderLayer, width 64) -> mean over the real
                tokens -> linear (global context, order-aware).

They read what the backbone reads: `input_ids` and `attention_mask` of
models/spam-bert.tokenizer.json, [CLS] ... [SEP], at most 256 ids, padded with [PAD]=0 and
mask 0 to the batch's longest row. None of them may depend on the padding: meanemb and
transformer1 average over mask-1 positions only (transformer1's attention adds -10000 to
padding keys, as the backbone does, which softmax turns into an exact 0); cnn1d zeroes
the embeddings of padding positions before the convolutions, so a window at the end of a
text sees zeros whether the batch is padded or not (the convolution's own zero padding),
and zeroes the ReLU outputs at padding positions, which cannot then exceed the max over
the real ones (ReLU outputs are >= 0). The check below pads every verified row to 256.

Targets: the backbone's softmax on the train texts (its onnxruntime-node logits on the
committed models/spam-bert.onnx, each text alone and unpadded, as served), with the
labels' cross-entropy mixed in at weight --label-weight (default 0: pure distillation).
Why: the online budget is disagreement with the backbone, so the members should copy the
backbone's decision, including where the backbone is wrong; on the train split the two
differ on very few texts (the number goes in the .train.json), so the labels add
little. Temperature --temperature (default 2) on both sides of the KL term, scaled by
T^2: the backbone is near-certain on its own train texts, and T > 1 keeps its ranking of
the doubtful ones in the targets.

Training: AdamW, linear warm-up 6 % then linear decay, batch 32, a fixed number of epochs
per member (the test split is evaluated after each epoch for the log only, never to pick
an epoch; transformer1 gets 4: its attention runs as grouped convolutions that oneDNN
does not take, ~1 s a step here, and it is past 97 % agreement after one), dropout 0.1 (0.2 for cnn1d's pooled features), seed 0. Matrix products run as
oneDNN convolutions during training (train_spam_bert's FAST path), plain MatMul/Gemm in
the export.

Cost: the three together cost a small fraction of the backbone at batch 1 and 256 ids
(target <= ~15 %); the figures, measured with onnxruntime-node at 1 thread with the
backbone timed in the same process, go into the .train.json.

Outputs (defaults reproduce the committed files):
  models/members/spam-meanemb.onnx, spam-cnn1d.onnx, spam-transformer1.onnx
      opset 14, constant folding; inputs `input_ids`, `attention_mask` int64
      [batch, sequence]; output `logits` float32 [batch, 2] (raw logits: ham, spam)
  models/members/spam-members.train.json
      per member: test accuracy vs labels, agreement with the backbone (test split),
      ms per row at batch 1 and 16 at 256 ids (and the backbone's), parameters, bytes,
      ONNX-vs-torch and padding checks; the ABC figures on the test split (all-3-agree
      and 2-of-3: share of rows answered, disagreement with the backbone on them)
  /tmp/spam-members-teacher.json  backbone logits on the train and test splits (cache;
      --refresh-teacher recomputes it)
  /tmp/spam-<member>.pt           torch state_dicts (not committed)

Verification: onnx.checker, then onnxruntime-node (models/recipes/spam_members_ort.mjs)
on the first --check-texts test texts: ONNX vs torch logits, and the same rows padded to
256 ids alone and in batches of 16 vs unpadded; both must be <= 1e-4 or the run fails.

Usage (from the repository root, CPU only; first `node models/recipes/export_spam_data.mjs`
for /tmp/spam-assassin-train.jsonl.gz):
  /usr/bin/python3 models/recipes/train_spam_members.py
  /usr/bin/python3 models/recipes/train_spam_members.py --members cnn1d   # retrain one,
      keeping the others' state_dicts from /tmp (the report is rewritten for all three)
  /usr/bin/python3 models/recipes/train_spam_members.py --members none    # re-export,
      re-check and re-time the /tmp state_dicts (e.g. on a quieter machine)
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
import train_spam_bert as bert  # noqa: E402
from train_spam_bert import LABELS, encode_split, make_batch, predict  # noqa: E402
from train_spam_tokenizer import (  # noqa: E402
    DATA_DIR, DEFAULT_TOKENIZER, DEFAULT_TRAIN, MAX_LENGTH, PAD_ID, load_wordpiece,
    read_jsonl_gz)

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MEMBERS_DIR = os.path.join(REPO_ROOT, "models", "members")
BACKBONE = os.path.join(REPO_ROOT, "models", "spam-bert.onnx")
ORT_SCRIPT = os.path.join(REPO_ROOT, "models", "recipes", "spam_members_ort.mjs")
MEMBER_NAMES = ["meanemb", "cnn1d", "transformer1"]
TOLERANCE = 1e-4


# -------------------------------------------------------------------------- models

def _init(module):
    # The backbone's initialisation (N(0, 0.02), zero biases) for every member.
    bert.SpamBert._init(module)


class MeanEmb(nn.Module):
    def __init__(self, vocab, dim=64, dropout=0.1):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Linear(dim, 2)
        self.apply(_init)

    def forward(self, input_ids, attention_mask):
        m = attention_mask.to(torch.float32).unsqueeze(-1)
        x = (self.tok(input_ids) * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.classifier(self.drop(x))


class CNN1d(nn.Module):
    def __init__(self, vocab, dim=64, filters=96, kernels=(3, 5), dropout=0.2):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.convs = nn.ModuleList(nn.Conv1d(dim, filters, k, padding=k // 2) for k in kernels)
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Linear(filters * len(kernels), 2)
        self.apply(_init)
        for conv in self.convs:  # N(0, 0.02) is too small for a conv's fan-in; PyTorch's default
            conv.reset_parameters()

    def forward(self, input_ids, attention_mask):
        m = attention_mask.to(torch.float32).unsqueeze(1)  # [batch, 1, sequence]
        x = self.tok(input_ids).transpose(1, 2) * m
        # Max over time after zeroing padding positions: ReLU outputs are >= 0, so the zeros
        # never win over a real position and padding cannot change the result.
        pooled = [(F.relu(conv(x)) * m).amax(2) for conv in self.convs]
        return self.classifier(self.drop(torch.cat(pooled, 1)))


class Transformer1(nn.Module):
    def __init__(self, vocab, width=64, heads=2, ffn=128, positions=MAX_LENGTH, dropout=0.1):
        super().__init__()
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(positions, width)
        self.ln_emb = nn.LayerNorm(width)
        self.drop = nn.Dropout(dropout)
        self.layer = bert.EncoderLayer(width, heads, ffn, dropout)
        self.ln_out = nn.LayerNorm(width)
        self.classifier = nn.Linear(width, 2)
        self.apply(_init)

    def forward(self, input_ids, attention_mask):
        s = input_ids.shape[1]
        positions = torch.arange(s, device=input_ids.device).unsqueeze(0)
        x = self.drop(self.ln_emb(self.tok(input_ids) + self.pos(positions)))
        bias = (1.0 - attention_mask.to(x.dtype))[:, None, None, :] * -10000.0
        x = self.ln_out(self.layer(x, bias))
        m = attention_mask.to(x.dtype).unsqueeze(-1)
        return self.classifier(self.drop((x * m).sum(1) / m.sum(1).clamp(min=1.0)))


# Per member: constructor, its size settings, and training settings.
SPECS = {
    "meanemb": dict(cls=MeanEmb, kwargs=dict(dim=64, dropout=0.1), lr=1e-2, epochs=12,
                    weight_decay=0.0,
                    summary="mean of token embeddings (dim 64) over mask-1 positions -> "
                            "dropout -> linear 64 -> 2"),
    "cnn1d": dict(cls=CNN1d, kwargs=dict(dim=64, filters=96, kernels=(3, 5), dropout=0.2),
                  lr=3e-3, epochs=8, weight_decay=0.01,
                  summary="token embeddings (dim 64), padding positions zeroed -> Conv1d "
                          "widths 3 and 5, 96 filters each, same padding -> ReLU -> max over "
                          "mask-1 positions -> dropout -> linear 192 -> 2"),
    "transformer1": dict(cls=Transformer1, kwargs=dict(width=64, heads=2, ffn=128, dropout=0.1),
                         lr=2e-3, epochs=4, weight_decay=0.01,
                         summary="token + learned position (256) embeddings, width 64, "
                                 "LayerNorm -> 1 pre-LN encoder layer (2 heads, GELU FFN 128; "
                                 "train_spam_bert.EncoderLayer) -> LayerNorm -> mean over "
                                 "mask-1 positions -> linear 64 -> 2"),
}


# ----------------------------------------------------------------- onnxruntime-node

def run_node(mode, payload, tag):
    src, dst = f"/tmp/spam-members-{tag}-in.json", f"/tmp/spam-members-{tag}-out.json"
    with open(src, "w") as f:
        json.dump(payload, f)
    subprocess.run(["node", ORT_SCRIPT, mode, src, dst], cwd=REPO_ROOT, check=True)
    with open(dst) as f:
        return json.load(f)


def teacher_logits(path, train_ids, test_ids, refresh):
    """The backbone's onnxruntime-node logits on both splits, each text alone (cached)."""
    if not refresh and os.path.exists(path):
        with open(path) as f:
            cached = json.load(f)
        if cached["train_ids"] == train_ids and cached["test_ids"] == test_ids:
            return np.array(cached["train"], np.float32), np.array(cached["test"], np.float32)
    t0 = time.time()
    out = run_node("run", {"model": BACKBONE, "ids": train_ids + test_ids}, "teacher")["logits"]
    print(f"backbone logits on {len(out)} texts in {time.time() - t0:.0f}s", flush=True)
    train, test = out[:len(train_ids)], out[len(train_ids):]
    with open(path, "w") as f:
        json.dump({"model": "models/spam-bert.onnx", "train_ids": train_ids,
                   "test_ids": test_ids, "train": train, "test": test}, f)
    return np.array(train, np.float32), np.array(test, np.float32)


# -------------------------------------------------------------------------- training


def train_member(name, spec, vocab, train_ids, train_y, teacher, test_ids, test_y, test_bb, args):
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = spec["cls"](vocab, **spec["kwargs"])
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": spec["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=spec["lr"], betas=(0.9, 0.98), eps=1e-6)
    epochs = spec["epochs"]
    steps_per_epoch = math.ceil(len(train_ids) / args.batch_size)
    total = epochs * steps_per_epoch
    warm = max(1, int(0.06 * total))
    T, lw = args.temperature, args.label_weight
    soft = torch.from_numpy(teacher / T).log_softmax(1)
    step, t0, log = 0, time.time(), []
    for epoch in range(epochs):
        model.train()
        perm = rng.permutation(len(train_ids))
        loss_sum = 0.0
        for start in range(0, len(perm), args.batch_size):
            idx = perm[start:start + args.batch_size]
            x, m = make_batch([train_ids[i] for i in idx])
            lr = spec["lr"] * (step / warm if step < warm else (total - step) / (total - warm))
            for g in opt.param_groups:
                g["lr"] = lr
            out = model(x, m)
            target = soft[idx]
            kd = F.kl_div((out / T).log_softmax(1), target, log_target=True,
                          reduction="batchmean") * T * T
            loss = (1 - lw) * kd + lw * F.cross_entropy(out, torch.from_numpy(train_y[idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            loss_sum += loss.item() * len(idx)
        pred = predict(model, test_ids).argmax(1).numpy()
        log.append({"epoch": epoch + 1, "train_loss": round(loss_sum / len(perm), 4),
                    "test_accuracy": round(float((pred == test_y).mean()), 4),
                    "test_agreement_with_backbone": round(float((pred == test_bb).mean()), 4),
                    "seconds": round(time.time() - t0, 1)})
        print(name, json.dumps(log[-1]), flush=True)
    return model, {"epochs": epochs, "steps": step, "lr": spec["lr"],
                   "weight_decay": spec["weight_decay"],
                   "train_wall_seconds": round(time.time() - t0, 1), "epoch_log": log}


def export_onnx(model, path, opset):
    """The backbone's export (same inputs, outputs and dynamic axes), checked to read exactly its inputs."""
    ops = bert.export_onnx(model, path, opset)
    import onnx
    m = onnx.load(path)
    assert [i.name for i in m.graph.input] == ["input_ids", "attention_mask"], m.graph.input
    return ops


# ---------------------------------------------------------------------------- report

def abc_figures(preds, backbone, labels):
    """preds [members, rows] argmax; what a 3-member tier answers and how often it differs."""
    preds = np.asarray(preds)
    spam_votes = preds.sum(0)
    k = preds.shape[0]
    out = {}
    for quorum, key in ((k, "all_3_agree"), (2, "2_of_3")):
        answered = (spam_votes >= quorum) | (k - spam_votes >= quorum)
        answer = (spam_votes >= quorum).astype(np.int64)
        n = int(answered.sum())
        differ = int((answer[answered] != backbone[answered]).sum())
        out[key] = {"rows_answered": n, "share_answered": round(n / len(backbone), 4),
                    "disagree_with_backbone_rows": differ,
                    "disagreement_with_backbone_on_answered": round(differ / max(n, 1), 4),
                    "disagreement_with_backbone_over_all_rows": round(differ / len(backbone), 4),
                    "accuracy_vs_labels_on_answered":
                        round(float((answer[answered] == labels[answered]).mean()), 4)}
    # With two classes three voters always have a 2-vote majority, so "2 of 3" answers
    # every row: it is the tier's plain majority vote, never deferring.
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", default=DEFAULT_TRAIN)
    ap.add_argument("--tokenizer", default=DEFAULT_TOKENIZER)
    ap.add_argument("--members", default=",".join(MEMBER_NAMES),
                    help="members to train; the others are loaded from --state-dir")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--label-weight", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--opset", type=int, default=14)
    ap.add_argument("--check-texts", type=int, default=200)
    ap.add_argument("--out-dir", default=MEMBERS_DIR)
    ap.add_argument("--state-dir", default="/tmp")
    ap.add_argument("--teacher-cache", default="/tmp/spam-members-teacher.json")
    ap.add_argument("--refresh-teacher", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    wp = load_wordpiece(args.tokenizer)
    vocab = len(wp.vocab)
    train_records = read_jsonl_gz(args.train)
    test_records = read_jsonl_gz(os.path.join(DATA_DIR, "test.jsonl.gz"))
    train_ids, train_y = encode_split(train_records, wp)
    test_ids, test_y = encode_split(test_records, wp)
    assert all(x[0] != PAD_ID for x in train_ids + test_ids)
    teacher, test_teacher = teacher_logits(args.teacher_cache, train_ids, test_ids,
                                           args.refresh_teacher)
    train_bb, test_bb = teacher.argmax(1), test_teacher.argmax(1)
    print(f"backbone: train accuracy {(train_bb == train_y).mean():.4f} "
          f"({int((train_bb != train_y).sum())} texts differ from labels), test accuracy "
          f"{(test_bb == test_y).mean():.4f}", flush=True)

    os.makedirs(args.out_dir, exist_ok=True)
    models, infos = {}, {}
    report_path = os.path.join(args.out_dir, "spam-members.train.json")
    previous = {}
    if os.path.exists(report_path):
        with open(report_path) as f:
            previous = json.load(f).get("members", {})
    to_train = [] if args.members == "none" else args.members.split(",")
    assert set(to_train) <= set(MEMBER_NAMES), to_train
    for name in MEMBER_NAMES:
        spec = SPECS[name]
        state = os.path.join(args.state_dir, f"spam-{name}.pt")
        if name in to_train:
            models[name], infos[name] = train_member(name, spec, vocab, train_ids, train_y,
                                                     teacher, test_ids, test_y, test_bb, args)
            torch.save(models[name].state_dict(), state)
        else:
            models[name] = spec["cls"](vocab, **spec["kwargs"])
            models[name].load_state_dict(torch.load(state))
            infos[name] = previous[name]["training"]

    # Export, then onnxruntime-node: torch vs ONNX, padding, all test logits, latency.
    ops, paths = {}, {}
    for name, model in models.items():
        paths[name] = os.path.join(args.out_dir, f"spam-{name}.onnx")
        ops[name] = export_onnx(model, paths[name], args.opset)
    rows = []
    for i, ids in enumerate(test_ids):
        row = {"ids": ids}
        if i < args.check_texts:
            x, m = make_batch([ids])
            with torch.no_grad():
                row["torch"] = {n: mdl.eval()(x, m)[0].tolist() for n, mdl in models.items()}
        rows.append(row)
    time_rows = [ids for ids in test_ids if len(ids) == MAX_LENGTH][:64]
    check = run_node("check", {"backbone": BACKBONE, "members": paths, "rows": rows,
                               "time_rows": time_rows, "pad_to": MAX_LENGTH}, "check")

    member_reports, preds = {}, []
    lat = check["latency"]
    for name, model in models.items():
        c = check["members"][name]
        for k in ("max_abs_logit_diff",):
            assert c["torch_check"][k] <= TOLERANCE, (name, c["torch_check"])
        for k in ("max_abs_diff_padded_alone", "max_abs_diff_padded_in_batches_of_16"):
            assert c["padding_check"][k] is None or c["padding_check"][k] <= TOLERANCE, \
                (name, c["padding_check"])
        pred = np.array(c["logits"]).argmax(1)
        preds.append(pred)
        spec = SPECS[name]
        member_reports[name] = {
            "file": f"models/members/spam-{name}.onnx",
            "test_accuracy": round(float((pred == test_y).mean()), 4),
            "test_agreement_with_backbone": round(float((pred == test_bb).mean()), 4),
            "per_class_recall": {lab: round(float((pred[test_y == c_] == c_).mean()), 4)
                                 for c_, lab in enumerate(LABELS)},
            "ms_per_row_256_ids": {"batch_1": lat[name]["b1"]["median_ms_per_row"],
                                   "batch_16": lat[name]["b16"]["median_ms_per_row"]},
            "parameters": sum(p.numel() for p in model.parameters()),
            "bytes": os.path.getsize(paths[name]),
            "architecture": spec["summary"],
            "onnx": {"opset": args.opset, "ops": ops[name],
                     "check": "onnx.checker.check_model passed"},
            "onnxruntime_check": {**c["torch_check"], **c["padding_check"]},
            "latency_passes_ms_per_row": {k: v["pass_medians_ms_per_row"]
                                          for k, v in lat[name].items()},
            "training": infos[name],
        }
    bb1, bb16 = lat["backbone"]["b1"]["median_ms_per_row"], lat["backbone"]["b16"]["median_ms_per_row"]
    sum1 = sum(member_reports[n]["ms_per_row_256_ids"]["batch_1"] for n in models)
    sum16 = sum(member_reports[n]["ms_per_row_256_ids"]["batch_16"] for n in models)
    report = {
        "models": "spam cascade members (ABC tier) for models/spam-bert.onnx",
        "dataset": f"SpamAssassin (train {len(train_ids)} / committed test {len(test_ids)})",
        "targets": {
            "kind": "distillation from models/spam-bert.onnx (onnxruntime-node logits, each "
                    "train text alone and unpadded)",
            "temperature": args.temperature, "label_cross_entropy_weight": args.label_weight,
            "backbone_train_accuracy": round(float((train_bb == train_y).mean()), 4),
            "backbone_train_texts_differing_from_labels": int((train_bb != train_y).sum()),
        },
        "backbone": {"file": "models/spam-bert.onnx",
                     "test_accuracy_onnxruntime": round(float((test_bb == test_y).mean()), 4),
                     "ms_per_row_256_ids": {"batch_1": bb1, "batch_16": bb16}},
        "members": member_reports,
        "three_members_cost_vs_backbone": {
            "batch_1_ms_per_row": round(sum1, 4), "batch_1_share": round(sum1 / bb1, 4),
            "batch_16_ms_per_row": round(sum16, 4), "batch_16_share": round(sum16 / bb16, 4)},
        "abc_test_split": abc_figures(preds, test_bb, test_y),
        "latency_settings": check["latency_settings"],
        "batch_size": args.batch_size, "seed": args.seed, "threads": args.threads,
        "torch_version": torch.__version__, "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "command": "/usr/bin/python3 models/recipes/train_spam_members.py",
    }
    with open(report_path, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    summary = {n: {k: r[k] for k in ("test_accuracy", "test_agreement_with_backbone",
                                     "ms_per_row_256_ids", "parameters", "bytes")}
               for n, r in member_reports.items()}
    print(json.dumps({"members": summary, "backbone": report["backbone"],
                      "cost": report["three_members_cost_vs_backbone"],
                      "abc": report["abc_test_split"]}, indent=1))
    print(f"wrote {report_path}")


if __name__ == "__main__":
    main()
