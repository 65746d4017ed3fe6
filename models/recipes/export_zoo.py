#!/usr/bin/env python3
"""Export a small zoo of standard classifiers to ONNX for offramp's tests.

The models are exported the way a user would export them from PyTorch
(``torch.onnx.export``, opset 17, eval mode, constant folding on, dynamic
batch axis), but with random weights: nothing is downloaded.

Generated files (written to ``models/zoo/`` by default; roughly, with the
ONNX-level size after BatchNorm folding):

    resnet18.onnx         ~45 MB   input  [N,3,224,224] f32 -> logits [N,1000]
    resnet50.onnx         ~98 MB   input  [N,3,224,224] f32 -> logits [N,1000]
    mobilenet_v2.onnx     ~14 MB   input  [N,3,224,224] f32 -> logits [N,1000]
    efficientnet_b0.onnx  ~21 MB   input  [N,3,224,224] f32 -> logits [N,1000]
    text_encoder.onnx     ~3 MB    input_ids [N,S] i64 (S <= 64, 0 = padding)
                                   -> logits [N,2]

These files are generated, not sources: they are gitignored (rule
``models/zoo/*.onnx``) and can be rebuilt at any time with this script.
Seeds are fixed per model, so ``--only`` produces the same files as a full run.

Usage (Debian's torch 1.13 / torchvision 0.14):

    /usr/bin/python3 models/recipes/export_zoo.py [--out DIR] [--only NAME[,NAME]]
                                                  [--force] [--verify]

``--verify`` additionally runs each exported file with onnxruntime (if it is
importable) and compares it with the PyTorch model.
"""

import argparse
import collections
import os
import sys
import time
import zlib
from pathlib import Path

import torch
import torch.nn as nn
import torchvision

OPSET = 17
SEED = 20240101
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "models" / "zoo"


# --------------------------------------------------------------------------
# Weight realism
# --------------------------------------------------------------------------
#
# Freshly initialised torchvision models have BatchNorm with identity
# statistics (mean 0, var 1, gamma 1, beta 0) and zero biases. Once the
# exporter folds BatchNorm into the convolutions, many folded biases are
# identical all-zero tensors, and torch.onnx deduplicates identical
# initializers into Identity nodes, which a trained checkpoint would never
# produce. Likewise nn.TransformerEncoder deep-copies its layer, so all layers
# start with identical weights. We therefore give every normalisation layer
# and bias its own random values (and re-initialise the copied transformer
# layers), which keeps the graph shaped like an export of trained weights.

def randomize_norms_and_biases_(model: nn.Module) -> None:
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.weight.uniform_(0.8, 1.2)
                mod.bias.normal_(0.0, 0.05)
                mod.running_mean.normal_(0.0, 0.05)
                mod.running_var.uniform_(0.8, 1.2)
            elif isinstance(mod, nn.LayerNorm):
                mod.weight.normal_(1.0, 0.05)
                mod.bias.normal_(0.0, 0.05)
            elif isinstance(mod, (nn.Linear, nn.Conv2d)) and mod.bias is not None:
                mod.bias.normal_(0.0, 0.02)
            elif isinstance(mod, nn.MultiheadAttention) and mod.in_proj_bias is not None:
                mod.in_proj_bias.normal_(0.0, 0.02)


# --------------------------------------------------------------------------
# Text encoder: a small BERT-like classifier, written as a user would
# --------------------------------------------------------------------------

class TextEncoderClassifier(nn.Module):
    """Token + learned position embeddings, LayerNorm, 4 post-norm encoder
    layers (nn.TransformerEncoderLayer, GELU) with a key-padding mask built
    from ``input_ids != 0``, and a BERT-style pooler/classifier on token 0."""

    def __init__(self, vocab=1000, hidden=128, max_pos=64, layers=4, heads=4,
                 ffn=256, num_classes=2, pad_id=0):
        super().__init__()
        self.pad_id = pad_id
        self.tok_emb = nn.Embedding(vocab, hidden, padding_idx=pad_id)
        self.pos_emb = nn.Embedding(max_pos, hidden)
        self.emb_norm = nn.LayerNorm(hidden)
        layer = nn.TransformerEncoderLayer(
            d_model=hidden, nhead=heads, dim_feedforward=ffn, dropout=0.1,
            activation="gelu", batch_first=True)
        # enable_nested_tensor=False: the nested-tensor conversion is an
        # inference-only "fast path" that cannot be exported to ONNX.
        self.encoder = nn.TransformerEncoder(layer, num_layers=layers,
                                             enable_nested_tensor=False)
        self.pooler = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, num_classes)
        # TransformerEncoder deep-copies `layer`: give each copy its own weights.
        for enc_layer in self.encoder.layers:
            for p in enc_layer.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # Position ids 0..S-1, built inside the graph from the sequence length.
        seq_len = input_ids.shape[1]
        position_ids = torch.arange(seq_len, device=input_ids.device).unsqueeze(0)
        x = self.tok_emb(input_ids) + self.pos_emb(position_ids)
        x = self.emb_norm(x)
        # Padding mask (True = ignore), computed in the graph and handed to
        # every encoder layer by nn.TransformerEncoder.
        padding_mask = input_ids == self.pad_id
        x = self.encoder(x, src_key_padding_mask=padding_mask)
        pooled = torch.tanh(self.pooler(x[:, 0]))
        return self.classifier(pooled)


# --------------------------------------------------------------------------
# Zoo definition
# --------------------------------------------------------------------------

def _vision(builder):
    def build():
        model = builder(weights=None)          # num_classes=1000, random init
        randomize_norms_and_biases_(model)
        return model
    return build


def _text():
    model = TextEncoderClassifier()
    randomize_norms_and_biases_(model)
    return model


def _image_input(batch):
    return torch.randn(batch, 3, 224, 224)


def _text_input(batch, seq=24):
    ids = torch.randint(1, 1000, (batch, seq), dtype=torch.int64)
    if batch > 1:
        ids[1, seq // 2:] = 0                   # one padded row
    return ids


IMAGE_IO = dict(input_names=["input"], output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
TEXT_IO = dict(input_names=["input_ids"], output_names=["logits"],
               dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                             "logits": {0: "batch"}})

# name -> (model factory, example-input factory(batch), export names/axes)
ZOO = {
    "resnet18": (_vision(torchvision.models.resnet18), _image_input, IMAGE_IO),
    "resnet50": (_vision(torchvision.models.resnet50), _image_input, IMAGE_IO),
    "mobilenet_v2": (_vision(torchvision.models.mobilenet_v2), _image_input, IMAGE_IO),
    "efficientnet_b0": (_vision(torchvision.models.efficientnet_b0), _image_input, IMAGE_IO),
    "text_encoder": (_text, _text_input, TEXT_IO),
}


def seed_for(name: str) -> None:
    """Per-model seed, so a model's weights do not depend on --only."""
    torch.manual_seed(SEED + zlib.crc32(name.encode()))


# --------------------------------------------------------------------------
# Export, description, verification
# --------------------------------------------------------------------------

def export(name: str, path: Path) -> nn.Module:
    build, make_input, io = ZOO[name]
    seed_for(name)
    model = build().eval()
    example = make_input(2)
    tmp = path.with_suffix(".onnx.tmp")
    # Export with autograd enabled: under no_grad/inference_mode, torch 1.13
    # routes nn.TransformerEncoderLayer through its fused native "fast path"
    # (aten::_transformer_encoder_layer_fwd), which has no ONNX symbolic.
    with torch.enable_grad():
        torch.onnx.export(model, (example,), str(tmp), opset_version=OPSET,
                          do_constant_folding=True, export_params=True, **io)
    os.replace(tmp, path)                       # no half-written file on failure
    return model


def describe(path: Path) -> None:
    size_mb = path.stat().st_size / 1e6
    try:
        import onnx
    except ImportError:
        print(f"  size {size_mb:.1f} MB (install python3-onnx for details)")
        return
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)

    def sig(values):
        out = []
        for v in values:
            t = v.type.tensor_type
            dims = [d.dim_param or str(d.dim_value) for d in t.shape.dim]
            out.append(f"{v.name}:{onnx.TensorProto.DataType.Name(t.elem_type)}"
                       f"[{','.join(dims)}]")
        return " ".join(out)

    hist = collections.Counter(n.op_type for n in model.graph.node)
    print(f"  size {size_mb:.1f} MB, {len(model.graph.node)} nodes, "
          f"{len(model.graph.initializer)} initializers, checker OK")
    print(f"  inputs  {sig(model.graph.input)}")
    print(f"  outputs {sig(model.graph.output)}")
    print("  ops     " + ", ".join(f"{op}:{n}" for op, n in hist.most_common()))


def verify(name: str, path: Path, model: nn.Module) -> None:
    try:
        import onnxruntime as ort
    except ImportError:
        print("  verify: onnxruntime not importable, skipped")
        return
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    _, make_input, io = ZOO[name]
    cases = [make_input(1), make_input(3)]
    if name == "text_encoder":                  # other sequence lengths too
        cases += [_text_input(2, seq=5), _text_input(3, seq=64)]
    worst = 0.0
    for x in cases:
        with torch.no_grad():
            ref = model(x).numpy()
        got = sess.run(None, {io["input_names"][0]: x.numpy()})[0]
        worst = max(worst, float(abs(ref - got).max()))
    print(f"  verify: onnxruntime vs torch on {len(cases)} inputs, max |diff| {worst:.2e}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output directory (default: models/zoo)")
    parser.add_argument("--only", default="",
                        help="comma-separated subset of: " + ",".join(ZOO))
    parser.add_argument("--force", action="store_true",
                        help="re-export even if the file already exists")
    parser.add_argument("--verify", action="store_true",
                        help="compare each export with PyTorch via onnxruntime")
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(ZOO)
    unknown = [n for n in names if n not in ZOO]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {list(ZOO)}")

    torch.set_num_threads(1)                    # be gentle with shared machines
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"opset {OPSET}, out {args.out}")
    for name in names:
        path = args.out / f"{name}.onnx"
        if path.exists() and not args.force:
            print(f"{name}: {path} exists, skipped (use --force)")
            continue
        start = time.perf_counter()
        model = export(name, path)
        print(f"{name}: exported in {time.perf_counter() - start:.1f} s -> {path}")
        describe(path)
        if args.verify:
            verify(name, path, model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
