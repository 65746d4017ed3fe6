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
    hf_bert.onnx          ~1 MB    input_ids, attention_mask, token_type_ids
                                   [N,S] i64 (S <= 128) -> logits [N,3]
      hf_bert.tokenizer.json       its WordPiece tokenizer (368 tokens)
      hf_bert.labels.txt           negative, neutral, positive
      hf_bert.texts.jsonl          60 generated {"id","text","label"} records

These files are generated, not sources: they are gitignored (rule
``/models/zoo``) and can be rebuilt at any time with this script.
Seeds are fixed per model, so ``--only`` produces the same files as a full run.

Usage (Debian's torch 1.13 / torchvision 0.14):

    /usr/bin/python3 models/recipes/export_zoo.py [--out DIR] [--only NAME[,NAME]]
                                                  [--force] [--verify]

``--verify`` additionally runs each exported file with onnxruntime (Python's if
importable, else onnxruntime-node through ort_run.mjs) and compares it with the
PyTorch model; the script exits 1 if any differs.
"""

import argparse
import collections
import json
import math
import os
import sys
import time
import zlib
from pathlib import Path
from typing import Callable, NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

# The WordPiece encoder and tokenizer.json writer of the spam backbone's recipe.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

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
# hf_bert: what a Hugging Face BERT sequence classifier exports to
# --------------------------------------------------------------------------
#
# `transformers` is not installed here, so BertForSequenceClassification is
# written out below with the same module tree (bert.embeddings.word_embeddings,
# bert.encoder.layer.N.attention.self.query, ..., classifier), the same
# forward computation as its eager attention path, and the same ONNX signature
# as `optimum-cli export onnx --task text-classification` (opset 14): inputs
# input_ids, attention_mask, token_type_ids (int64 [batch, sequence]), output
# logits [batch, num_labels]. What offramp's tests then see is the graph a user
# who brings their own fine-tuned BERT hands it, at toy size.
#
# Beside the model the recipe writes what such a user also has: the
# tokenizer.json exported with it (a WordPiece vocabulary generated from fixed
# word lists, not trained: no data needed), the label names, and a small JSONL
# of generated texts to bootstrap the ramps with.

HF_BERT_MAX_LENGTH = 128
HF_BERT_LABELS = ["negative", "neutral", "positive"]
HF_BERT_TEXTS = 60
HF_BERT_LOGIT_STD = 2.0

_COMMON_WORDS = """
the a an and or but of to in on at by for with from about as into over after
before is are was were be been being has have had do does did will would can
could should may might must not no yes very really quite too so just only also
still again never always often sometimes this that these those it its they them
their we our you your he she his her i me my what which who when where why how
all some any each every more most much many few less other new old first last
one two three four five ten time day week month year today yesterday order
orders delivery package box item items product products service staff support
team price money refund store shop website app phone call email food meal
dinner coffee room hotel flight trip movie film book song game show place
quality size color battery screen camera sound taste smell good great nice fine
ok okay best better excellent amazing perfect happy glad love like enjoy
recommend helpful friendly fast quick easy clean fresh cheap bad worse worst
poor terrible awful broken late slow rude dirty cold hard expensive wrong
problem problems issue issues disappointed hate waste return returned never
average normal usual standard expected arrived came went got get make made take
took work works worked use used buy bought pay paid wait waited say said think
thought feel felt look looked
""".split()

# Word endings a trained vocabulary would hold as continuation pieces.
_SUFFIXES = ["s", "es", "ed", "ing", "ly", "er", "est", "ness", "ful", "less",
             "able", "tion", "ment", "ity", "ous", "ive", "al", "ish", "y"]

_SENTIMENT_WORDS = {
    "negative": ["bad", "terrible", "awful", "broken", "late", "slow", "rude",
                 "dirty", "disappointing", "worst", "useless", "overpriced"],
    "neutral": ["average", "normal", "usual", "standard", "expected", "okay",
                "fine", "ordinary", "typical", "acceptable"],
    "positive": ["great", "excellent", "amazing", "perfect", "friendly", "fast",
                 "helpful", "wonderful", "delicious", "recommended", "lovely"],
}
_SUBJECTS = ["the delivery", "the food", "our room", "the staff", "this phone",
             "the movie", "my order", "the support team", "the coffee",
             "the hotel", "the battery", "the app", "the package", "the flight"]
_TAILS = ["", "today", "again", "this time", "as always", "to be honest",
          "for the price", "last week", "on my second visit", "overall"]
# Words outside the vocabulary's word list, as real text has: split into
# ## pieces, accents stripped by the normaliser, or [UNK] (the emoji).
_RARE = ["unbelievably", "café", "refurbished", "thirty-two", "5/10", "!!",
         "(seriously)", "x-ray", "🙂", "zyzzyva"]


def hf_bert_vocab() -> dict:
    """WordPiece vocabulary (token -> id): special tokens at ids 0..4, then
    every ASCII character as a word start and (letters, digits) as a ##
    continuation, so any ASCII text has a full cover, then common words and
    ## suffixes."""
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    digits = [str(d) for d in range(10)]
    punct = [chr(c) for c in range(0x21, 0x7F)
             if not chr(c).isalnum()]  # BertPreTokenizer's ASCII punctuation
    tokens = (special + letters + digits + punct
              + ["##" + c for c in letters + digits]
              + [w for w in _COMMON_WORDS if len(w) > 1]
              + ["##" + s for s in _SUFFIXES if len(s) > 1])
    vocab = {}
    for t in tokens:
        vocab.setdefault(t, len(vocab))
    return vocab


def hf_bert_texts(count: int = HF_BERT_TEXTS):
    """Seeded, generated review-like texts with the label their sentiment word
    suggests (the random-weight model does not know it: labels are only
    there so the file looks like what a user has)."""
    import random
    rng = random.Random(SEED)
    records = []
    for i in range(count):
        label = HF_BERT_LABELS[i % len(HF_BERT_LABELS)]
        words = rng.sample(_SENTIMENT_WORDS[label], 2)
        subject = rng.choice(_SUBJECTS)
        text = f"{subject.capitalize()} was {words[0]} and {words[1]} {rng.choice(_TAILS)}".strip() + "."
        if rng.random() < 0.4:
            text += f" {rng.choice(_RARE).capitalize()}, {rng.choice(_SUBJECTS)} {rng.choice(['came', 'arrived', 'worked', 'looked'])} {rng.choice(_SENTIMENT_WORDS[label])}."
        if i % 20 == 7:                         # a few long texts, cut at 128 ids
            text += " " + " ".join(rng.choice(_COMMON_WORDS) for _ in range(140))
        records.append({"id": f"hf-bert-{i:03d}", "text": text, "label": label})
    return records


class BertConfig:
    def __init__(self, vocab_size, hidden_size=64, num_hidden_layers=4,
                 num_attention_heads=4, intermediate_size=256,
                 max_position_embeddings=HF_BERT_MAX_LENGTH, type_vocab_size=2,
                 num_labels=len(HF_BERT_LABELS), layer_norm_eps=1e-12,
                 hidden_dropout_prob=0.1, pad_token_id=0):
        self.__dict__.update(locals())
        del self.__dict__["self"]


class BertEmbeddings(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)
        self.register_buffer("position_ids", torch.arange(c.max_position_embeddings).unsqueeze(0))

    def forward(self, input_ids, token_type_ids):
        position_ids = self.position_ids[:, :input_ids.shape[1]]
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.num_attention_heads = c.num_attention_heads
        self.attention_head_size = c.hidden_size // c.num_attention_heads
        self.all_head_size = c.hidden_size
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def transpose_for_scores(self, x):
        x = x.view(x.size()[:-1] + (self.num_attention_heads, self.attention_head_size))
        return x.permute(0, 2, 1, 3)

    def forward(self, hidden_states, extended_attention_mask):
        q = self.transpose_for_scores(self.query(hidden_states))
        k = self.transpose_for_scores(self.key(hidden_states))
        v = self.transpose_for_scores(self.value(hidden_states))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.attention_head_size)
        probs = self.dropout(F.softmax(scores + extended_attention_mask, dim=-1))
        context = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        return context.view(context.size()[:-2] + (self.all_head_size,))


class BertSelfOutput(nn.Module):
    """Post-LN: LayerNorm(input + dropout(dense(x)))."""

    def __init__(self, c: BertConfig, in_size: int):
        super().__init__()
        self.dense = nn.Linear(in_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, x, input_tensor):
        return self.LayerNorm(self.dropout(self.dense(x)) + input_tensor)


class BertAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(c)
        self.output = BertSelfOutput(c, c.hidden_size)

    def forward(self, hidden_states, extended_attention_mask):
        return self.output(self.self(hidden_states, extended_attention_mask), hidden_states)


class BertIntermediate(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)

    def forward(self, x):
        return F.gelu(self.dense(x))           # BERT's "gelu": the exact, erf form


class BertLayer(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertSelfOutput(c, c.intermediate_size)   # BertOutput: same shape of computation

    def forward(self, hidden_states, extended_attention_mask):
        attention_output = self.attention(hidden_states, extended_attention_mask)
        return self.output(self.intermediate(attention_output), attention_output)


class BertEncoder(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(c) for _ in range(c.num_hidden_layers))

    def forward(self, hidden_states, extended_attention_mask):
        for layer in self.layer:
            hidden_states = layer(hidden_states, extended_attention_mask)
        return hidden_states


class BertPooler(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states):
        return self.activation(self.dense(hidden_states[:, 0]))


class BertModel(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.embeddings = BertEmbeddings(c)
        self.encoder = BertEncoder(c)
        self.pooler = BertPooler(c)

    def forward(self, input_ids, attention_mask, token_type_ids):
        # get_extended_attention_mask: [batch, 1, 1, sequence], 0 where a key is
        # attended to and the dtype's most negative value where it is padding.
        extended = attention_mask[:, None, None, :].to(torch.float32)
        extended = (1.0 - extended) * torch.finfo(torch.float32).min
        hidden = self.encoder(self.embeddings(input_ids, token_type_ids), extended)
        return self.pooler(hidden)


class BertForSequenceClassification(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.bert = BertModel(c)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)
        self.classifier = nn.Linear(c.hidden_size, c.num_labels)

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.classifier(self.dropout(self.bert(input_ids, attention_mask, token_type_ids)))


def _hf_bert():
    model = BertForSequenceClassification(BertConfig(vocab_size=len(hf_bert_vocab())))
    # Not BERT's N(0, 0.02) initialisation: at that scale an untrained post-LN
    # encoder's [CLS] state hardly depends on the text, so every input would
    # get the same class. Unit-variance embeddings and 1/sqrt(fan_in) matrices
    # make the logits depend on the words, as a fine-tuned model's do.
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.Embedding):
                mod.weight.normal_(0.0, 1.0)
            elif isinstance(mod, nn.Linear):
                mod.weight.normal_(0.0, mod.in_features ** -0.5)
    randomize_norms_and_biases_(model)
    # Still, the pooled states of different texts lie close together, so the
    # raw classifier gives nearly flat probabilities and one class to most
    # texts. A fine-tuned head spreads them: standardise each logit over the
    # recipe's own texts (mean 0, standard deviation HF_BERT_LOGIT_STD).
    model.eval()
    with torch.no_grad():
        pooled = model.bert(*_hf_bert_text_input([r["text"] for r in hf_bert_texts()]))
        head = model.classifier
        head.weight.mul_((HF_BERT_LOGIT_STD / head(pooled).std(0))[:, None])
        head.bias.copy_(-(pooled @ head.weight.T).mean(0))
    return model


def _hf_bert_input(batch, seq=24):
    ids = torch.randint(5, len(hf_bert_vocab()), (batch, seq), dtype=torch.int64)
    ids[:, 0], ids[:, -1] = 2, 3                # [CLS] ... [SEP]
    mask = torch.ones(batch, seq, dtype=torch.int64)
    types = torch.zeros(batch, seq, dtype=torch.int64)
    if batch > 1:                               # one padded row, one text pair
        ids[1, seq // 2:], mask[1, seq // 2:] = 0, 0
        ids[1, seq // 2 - 1] = 3
        types[-1, seq // 2:] = 1
    return ids, mask, types


def _hf_bert_text_input(texts):
    """Ids of real texts as the tokenizer.json gives them, padded like a batch."""
    from train_spam_tokenizer import WordPiece, truncate_ids
    wordpiece = WordPiece(hf_bert_vocab())
    rows = [truncate_ids(wordpiece.encode(t), HF_BERT_MAX_LENGTH) for t in texts]
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.int64)
    mask = torch.zeros(len(rows), width, dtype=torch.int64)
    for i, r in enumerate(rows):
        ids[i, :len(r)], mask[i, :len(r)] = torch.tensor(r), 1
    return ids, mask, torch.zeros_like(ids)


def _hf_bert_companions(onnx_path: Path) -> dict:
    """What a user has beside an exported BERT: its tokenizer.json, label names
    and a few texts (here the bootstrap data offramp prepare needs)."""
    from train_spam_tokenizer import tokenizer_json
    stem = onnx_path.with_suffix("")
    return {
        Path(f"{stem}.tokenizer.json"): json.dumps(
            tokenizer_json(hf_bert_vocab(), HF_BERT_MAX_LENGTH),
            ensure_ascii=False, separators=(",", ":")) + "\n",
        Path(f"{stem}.labels.txt"): "\n".join(HF_BERT_LABELS) + "\n",
        Path(f"{stem}.texts.jsonl"): "".join(
            json.dumps(r, ensure_ascii=False) + "\n" for r in hf_bert_texts()),
    }


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
    return (torch.randn(batch, 3, 224, 224),)


def _text_input(batch, seq=24):
    ids = torch.randint(1, 1000, (batch, seq), dtype=torch.int64)
    if batch > 1:
        ids[1, seq // 2:] = 0                   # one padded row
    return (ids,)


IMAGE_IO = dict(input_names=["input"], output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
TEXT_IO = dict(input_names=["input_ids"], output_names=["logits"],
               dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                             "logits": {0: "batch"}})
_TOKENS = {0: "batch", 1: "sequence"}
HF_BERT_IO = dict(input_names=["input_ids", "attention_mask", "token_type_ids"],
                  output_names=["logits"],
                  dynamic_axes={"input_ids": _TOKENS, "attention_mask": _TOKENS,
                                "token_type_ids": _TOKENS, "logits": {0: "batch"}})


class ZooEntry(NamedTuple):
    build: Callable[[], nn.Module]
    # batch -> the model's inputs, a tuple in io["input_names"] order
    make_input: Callable[[int], tuple]
    io: dict
    opset: int = OPSET
    # onnx path -> {companion file: its text}, written beside the model
    companions: Optional[Callable[[Path], dict]] = None


ZOO = {
    "resnet18": ZooEntry(_vision(torchvision.models.resnet18), _image_input, IMAGE_IO),
    "resnet50": ZooEntry(_vision(torchvision.models.resnet50), _image_input, IMAGE_IO),
    "mobilenet_v2": ZooEntry(_vision(torchvision.models.mobilenet_v2), _image_input, IMAGE_IO),
    "efficientnet_b0": ZooEntry(_vision(torchvision.models.efficientnet_b0), _image_input, IMAGE_IO),
    "text_encoder": ZooEntry(_text, _text_input, TEXT_IO),
    # opset 14: what optimum exports BERT with by default (LayerNorm decomposed).
    "hf_bert": ZooEntry(_hf_bert, _hf_bert_input, HF_BERT_IO, opset=14,
                        companions=_hf_bert_companions),
}


def seed_for(name: str) -> None:
    """Per-model seed, so a model's weights do not depend on --only."""
    torch.manual_seed(SEED + zlib.crc32(name.encode()))


# --------------------------------------------------------------------------
# Export, description, verification
# --------------------------------------------------------------------------

def export(name: str, path: Path) -> nn.Module:
    entry = ZOO[name]
    seed_for(name)
    model = entry.build().eval()
    example = entry.make_input(2)
    tmp = path.with_suffix(".onnx.tmp")
    # Export with autograd enabled: under no_grad/inference_mode, torch 1.13
    # routes nn.TransformerEncoderLayer through its fused native "fast path"
    # (aten::_transformer_encoder_layer_fwd), which has no ONNX symbolic.
    with torch.enable_grad():
        torch.onnx.export(model, example, str(tmp), opset_version=entry.opset,
                          do_constant_folding=True, export_params=True, **entry.io)
    os.replace(tmp, path)                       # no half-written file on failure
    for companion, text in companions_of(name, path).items():
        tmp = companion.with_name(companion.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, companion)
    return model


def companions_of(name: str, path: Path) -> dict:
    companions = ZOO[name].companions
    return companions(path) if companions else {}


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


VERIFY_TOLERANCE = 1e-4                         # relative to the largest |logit|


def _ort_python(path: Path):
    """A run(feeds) -> first output with Python's onnxruntime, or None."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return lambda cases: [sess.run(None, {k: v.numpy() for k, v in feeds.items()})[0] for feeds in cases]


def _ort_node(path: Path):
    """The same with onnxruntime-node through ort_run.mjs (the repository's
    node_modules), or None when that is not installed."""
    import shutil
    import subprocess
    import numpy as np
    script = Path(__file__).with_name("ort_run.mjs")
    if shutil.which("node") is None or not (REPO_ROOT / "node_modules" / "onnxruntime-node").exists():
        return None

    def run(cases):
        request = {"model": str(path.resolve()), "cases": [
            {k: {"type": "int64" if v.dtype == torch.int64 else "float32",
                 "dims": list(v.shape), "data": v.flatten().tolist()} for k, v in feeds.items()}
            for feeds in cases]}
        done = subprocess.run(["node", str(script)], input=json.dumps(request).encode(),
                              capture_output=True, cwd=REPO_ROOT, check=True)
        return [np.array(next(iter(out.values()))["data"], dtype=np.float32).reshape(next(iter(out.values()))["dims"])
                for out in json.loads(done.stdout)]
    return run


def verify(name: str, path: Path, model: nn.Module) -> bool:
    """Compares onnxruntime's outputs with PyTorch's; False when they differ."""
    run, runtime = _ort_python(path), "onnxruntime"
    if run is None:
        run, runtime = _ort_node(path), "onnxruntime-node"
    if run is None:
        print("  verify: neither onnxruntime (Python) nor onnxruntime-node (npm ci) found, skipped")
        return True
    entry = ZOO[name]
    cases = [entry.make_input(1), entry.make_input(3)]
    if name == "text_encoder":                  # other sequence lengths too
        cases += [_text_input(2, seq=5), _text_input(3, seq=64)]
    if name == "hf_bert":                       # other lengths, and its own texts tokenized
        texts = [r["text"] for r in hf_bert_texts()]
        cases += [_hf_bert_input(2, seq=5), _hf_bert_input(3, seq=HF_BERT_MAX_LENGTH),
                  _hf_bert_text_input(texts[:30]), _hf_bert_text_input(texts[30:])]
    with torch.no_grad():
        refs = [model(*x).numpy() for x in cases]
    got = run([dict(zip(entry.io["input_names"], x)) for x in cases])
    worst = max(float(abs(r - g).max()) for r, g in zip(refs, got))
    scale = max(1.0, max(float(abs(r).max()) for r in refs))
    ok = worst <= VERIFY_TOLERANCE * scale
    print(f"  verify: {runtime} vs torch on {len(cases)} inputs ({sum(len(r) for r in refs)} rows), "
          f"max |diff| {worst:.2e}, max |logit| {scale:.2f}: {'OK' if ok else 'FAIL'}")
    if name == "hf_bert":                       # the classes its own texts get: all three, or prepare learns little
        print(f"  classes of its {len(texts)} texts: "
              f"{collections.Counter(int(c) for r in refs[-2:] for c in r.argmax(1))}")
    return ok


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
          f"opset {OPSET} (hf_bert 14), out {args.out}")
    failed = []
    for name in names:
        path = args.out / f"{name}.onnx"
        if all(p.exists() for p in [path, *companions_of(name, path)]) and not args.force:
            print(f"{name}: {path} exists, skipped (use --force)")
            continue
        start = time.perf_counter()
        model = export(name, path)
        print(f"{name}: exported in {time.perf_counter() - start:.1f} s -> {path}")
        for companion in companions_of(name, path):
            print(f"  wrote {companion}")
        describe(path)
        if args.verify and not verify(name, path, model):
            failed.append(name)
    if failed:
        print(f"verify failed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
