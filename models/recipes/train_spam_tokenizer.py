#!/usr/bin/env python3
"""WordPiece tokenizer for offramp's spam backbone, trained on the SpamAssassin train split.

There is no Hugging Face `tokenizers` Python package here, so this file implements the
BERT pipeline itself and writes a standard Hugging Face `tokenizer.json` that the npm
package `@huggingface/tokenizers` (the serving side) loads. The two must give the same
ids: test/text-tokenizer.test.ts checks it on every text of the committed test split
against the hashes this recipe writes.

Pipeline (each step mirrors @huggingface/tokenizers 0.2's JS implementation, which is
what serves; where it differs from the original Python BERT code, the JS wins):
  1. special tokens: the raw text is first split on the literal special tokens
     ([PAD] [UNK] [CLS] [SEP] [MASK], added tokens with normalized=false); each other
     section is normalised and tokenised on its own.
  2. BertNormalizer (clean_text, handle_chinese_chars, lowercase, strip_accents):
     drop U+0000, U+FFFD and control characters (categories Cc Cf Co Cs, but tab/CR/LF
     are whitespace); map JavaScript-\\s whitespace to a space (so U+001C..U+001F, which
     Python's isspace() calls whitespace, are dropped as Cc like the JS does); put spaces
     around CJK ideographs of the BMP blocks (the JS walks UTF-16 code units, so
     supplementary-plane ideographs are not split); lowercase; NFD and drop Mn marks.
  3. BertPreTokenizer: split on whitespace; every punctuation character (Unicode P* or
     ASCII !-/ :-@ [-` {-~) is its own word.
  4. WordPiece: greedy longest-match-first, continuation pieces prefixed "##"; a word
     longer than 100 characters, or one with no full cover, becomes [UNK].
  5. Post-processor: [CLS] $A [SEP].
Truncation: the model reads at most MAX_LENGTH = 256 ids. @huggingface/tokenizers
ignores tokenizer.json's `truncation` block, so callers truncate themselves: keep the
first 255 ids of the encoding ([CLS] + 254 pieces) and end with [SEP]
(`truncate_ids`). The block is still written, for other HF runtimes.

Vocabulary (VOCAB_SIZE = 8192, the five special tokens first, ids 0-4): byte-pair
merges over word frequencies, as Hugging Face's WordPiece trainer does it. Words are
counted on the normalised, pre-tokenised train split; a word starts as its characters
("h", "##e", "##l", ...); characters seen fewer than MIN_CHAR_COUNT times are left out
of the alphabet (they become [UNK]) and so are the words holding them; then the most
frequent adjacent pair (ties: the lexicographically smaller pair) is merged into a new
piece ("h" + "##e" -> "he", "##l" + "##o" -> "##lo") until the vocabulary is full or
no pair occurs twice. Deterministic: no randomness, no dependence on dict order.

Outputs (defaults reproduce the committed files):
  models/spam-bert.tokenizer.json                  Hugging Face tokenizer.json
  models/data/spam-assassin/test-token-ids.jsonl.gz  one {"id", "n", "sha256"} a line
      for every committed test text, in file order: n = number of ids of the full
      (untruncated) encoding with [CLS]/[SEP], sha256 = hex SHA-256 of the ids joined
      by "," — what the vitest test compares the JS tokenizer's ids against.

Usage (from the repository root; needs /tmp/spam-assassin-train.jsonl.gz from
`node models/recipes/export_spam_data.mjs`):
  /usr/bin/python3 models/recipes/train_spam_tokenizer.py
"""

import argparse
import collections
import gzip
import hashlib
import heapq
import json
import os
import time
import unicodedata

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA_DIR = os.path.join(REPO_ROOT, "models", "data", "spam-assassin")
DEFAULT_TRAIN = "/tmp/spam-assassin-train.jsonl.gz"
DEFAULT_TOKENIZER = os.path.join(REPO_ROOT, "models", "spam-bert.tokenizer.json")

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(5)
VOCAB_SIZE = 8192
MIN_CHAR_COUNT = 5
MIN_PAIR_COUNT = 2
MAX_LENGTH = 256
MAX_INPUT_CHARS_PER_WORD = 100
PREFIX = "##"

# JavaScript's \s (ECMAScript WhiteSpace + LineTerminator), which the JS normaliser and
# pre-tokeniser use; U+FEFF is in it but is Cf, so clean_text drops it first.
JS_SPACE = frozenset(
    "\t\n\x0b\x0c\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff"
    + "".join(chr(c) for c in range(0x2000, 0x200B)))


def read_jsonl_gz(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# ------------------------------------------------------------------ normalisation

def _is_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs")


def _is_cjk(cp):
    # Only the BMP ranges: the JS checks UTF-16 code units, never seeing cp > 0xFFFF.
    return 0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0xF900 <= cp <= 0xFAFF


def normalize(text):
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or _is_control(ch):
            continue
        if ch in JS_SPACE:
            out.append(" ")
        elif _is_cjk(cp):
            out.append(" " + ch + " ")
        else:
            out.append(ch)
    text = "".join(out).lower()
    return "".join(c for c in unicodedata.normalize("NFD", text)
                   if unicodedata.category(c) != "Mn")


def _is_punct(ch):
    cp = ord(ch)
    if 0x21 <= cp <= 0x2F or 0x3A <= cp <= 0x40 or 0x5B <= cp <= 0x60 or 0x7B <= cp <= 0x7E:
        return True
    return unicodedata.category(ch).startswith("P")


def pre_tokenize(text):
    words, cur = [], []
    for ch in text:
        if ch in JS_SPACE:
            if cur:
                words.append("".join(cur))
                cur = []
        elif _is_punct(ch):
            if cur:
                words.append("".join(cur))
                cur = []
            words.append(ch)
        else:
            cur.append(ch)
    if cur:
        words.append("".join(cur))
    return words


def split_special(text):
    """Split raw text on literal special tokens, leftmost-longest like the JS splitter."""
    sections, start, i = [], 0, 0
    while i < len(text):
        match = next((t for t in SPECIAL_TOKENS if text.startswith(t, i)), None)
        if match is None:
            i += 1
            continue
        if i > start:
            sections.append(text[start:i])
        sections.append(match)
        i += len(match)
        start = i
    if start < len(text):
        sections.append(text[start:])
    return sections


def words_of(text):
    """Normalised, pre-tokenised words of a text, special tokens passed through."""
    words = []
    for section in split_special(text):
        if section in SPECIAL_TOKENS:
            words.append(section)
        else:
            words.extend(pre_tokenize(normalize(section)))
    return words


# ----------------------------------------------------------------------- encoding

class WordPiece:
    def __init__(self, vocab):
        self.vocab = vocab  # token -> id
        self._cache = {}

    def word_ids(self, word):
        if word in SPECIAL_TOKENS:
            return [self.vocab[word]]
        hit = self._cache.get(word)
        if hit is not None:
            return hit
        ids, start = [], 0
        if len(word) > MAX_INPUT_CHARS_PER_WORD:  # code points, like the JS [...token]
            ids = [UNK_ID]
            start = len(word)
        while start < len(word):
            end, piece = len(word), None
            while start < end:
                sub = word[start:end] if start == 0 else PREFIX + word[start:end]
                if sub in self.vocab:
                    piece = self.vocab[sub]
                    break
                end -= 1
            if piece is None:  # no cover: the whole word is [UNK]
                ids = [UNK_ID]
                break
            ids.append(piece)
            start = end
        self._cache[word] = ids
        return ids

    def encode(self, text):
        """Full encoding with [CLS]/[SEP], untruncated (what the JS `encode` returns)."""
        ids = [CLS_ID]
        for w in words_of(text):
            ids.extend(self.word_ids(w))
        ids.append(SEP_ID)
        return ids


def truncate_ids(ids, max_length=MAX_LENGTH):
    """Keep [CLS] + the first max_length-2 pieces, end with [SEP]."""
    return ids if len(ids) <= max_length else ids[:max_length - 1] + [SEP_ID]


def ids_digest(ids):
    return hashlib.sha256(",".join(map(str, ids)).encode("ascii")).hexdigest()


def load_wordpiece(path=DEFAULT_TOKENIZER):
    with open(path, encoding="utf-8") as f:
        return WordPiece(json.load(f)["model"]["vocab"])


# ----------------------------------------------------------------------- training

def train_vocab(texts, vocab_size=VOCAB_SIZE, min_char_count=MIN_CHAR_COUNT):
    word_freq = collections.Counter()
    for t in texts:
        word_freq.update(w for w in words_of(t) if w not in SPECIAL_TOKENS
                         and len(w) <= MAX_INPUT_CHARS_PER_WORD)
    char_freq = collections.Counter()
    for w, f in word_freq.items():
        for i, c in enumerate(w):
            char_freq[c if i == 0 else PREFIX + c] += f
    alphabet = sorted(s for s, f in char_freq.items() if f >= min_char_count)
    alpha = set(alphabet)
    vocab = list(SPECIAL_TOKENS) + alphabet
    known = set(vocab)

    words, freqs = [], []
    for w, f in sorted(word_freq.items()):
        syms = [w[0]] + [PREFIX + c for c in w[1:]]
        if all(s in alpha for s in syms) and len(syms) > 1:
            words.append(syms)
            freqs.append(f)
    pair_count = collections.Counter()
    where = collections.defaultdict(set)
    for wi, syms in enumerate(words):
        for p in zip(syms, syms[1:]):
            pair_count[p] += freqs[wi]
            where[p].add(wi)
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)
    merges = 0
    while len(vocab) < vocab_size and heap:
        negc, pair = heapq.heappop(heap)
        current = pair_count.get(pair, 0)
        if current != -negc:  # stale entry: re-queue with its present count
            if current > 0:
                heapq.heappush(heap, (-current, pair))
            continue
        if current < MIN_PAIR_COUNT:
            break
        a, b = pair
        merged = a + b[len(PREFIX):]
        if merged not in known:
            vocab.append(merged)
            known.add(merged)
        merges += 1
        for wi in sorted(where.pop(pair, ())):
            syms, f = words[wi], freqs[wi]
            if not any(x == a and y == b for x, y in zip(syms, syms[1:])):
                continue
            for p in zip(syms, syms[1:]):
                pair_count[p] -= f
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(merged)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            words[wi] = out
            for p in zip(out, out[1:]):
                pair_count[p] += f
                where[p].add(wi)
                heapq.heappush(heap, (-pair_count[p], p))
        pair_count.pop(pair, None)
    stats = {"distinct_words": len(word_freq), "alphabet": len(alphabet), "merges": merges}
    return {tok: i for i, tok in enumerate(vocab)}, stats


def tokenizer_json(vocab, max_length=MAX_LENGTH):
    """A Hugging Face BERT tokenizer.json around a WordPiece vocabulary (token -> id)."""
    special = [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False,
                "rstrip": False, "normalized": False, "special": True} for t in SPECIAL_TOKENS]
    return {
        "version": "1.0",
        "truncation": {"direction": "Right", "max_length": max_length,
                       "strategy": "LongestFirst", "stride": 0},
        "padding": None,
        "added_tokens": special,
        "normalizer": {"type": "BertNormalizer", "clean_text": True,
                       "handle_chinese_chars": True, "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {t: {"id": t, "ids": [vocab[t]], "tokens": [t]}
                               for t in ("[CLS]", "[SEP]")},
        },
        "decoder": {"type": "WordPiece", "prefix": PREFIX, "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]",
                  "continuing_subword_prefix": PREFIX,
                  "max_input_chars_per_word": MAX_INPUT_CHARS_PER_WORD, "vocab": vocab},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", default=DEFAULT_TRAIN)
    ap.add_argument("--out", default=DEFAULT_TOKENIZER)
    ap.add_argument("--ids-out", default=os.path.join(DATA_DIR, "test-token-ids.jsonl.gz"))
    ap.add_argument("--vocab-size", type=int, default=VOCAB_SIZE)
    args = ap.parse_args()

    t0 = time.time()
    train = read_jsonl_gz(args.train)
    vocab, stats = train_vocab([r["text"] for r in train], args.vocab_size)
    print(f"vocab {len(vocab)} {stats} in {time.time() - t0:.1f}s")
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(vocab), f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"{args.out}: {os.path.getsize(args.out)} bytes")

    wp = WordPiece(vocab)
    test = read_jsonl_gz(os.path.join(DATA_DIR, "test.jsonl.gz"))
    lines, lengths, unk = [], [], 0
    for r in test:
        ids = wp.encode(r["text"])
        lengths.append(len(ids))
        unk += ids.count(UNK_ID)
        lines.append(json.dumps({"id": r["id"], "n": len(ids), "sha256": ids_digest(ids)}))
    with open(args.ids_out, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as f:
        f.write(("\n".join(lines) + "\n").encode("utf-8"))
    lengths.sort()
    print(f"{args.ids_out}: {len(lines)} texts, ids per text median {lengths[len(lengths) // 2]}, "
          f"over {MAX_LENGTH}: {sum(n > MAX_LENGTH for n in lengths)}, [UNK] {unk}")


if __name__ == "__main__":
    main()
