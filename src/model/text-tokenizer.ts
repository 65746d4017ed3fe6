/**
 * Text in, token ids out: a Hugging Face `tokenizer.json` (the file users export beside their
 * model) read by @huggingface/tokenizers, a pure-JS implementation, so serving needs no native
 * code and no download. Used by the server (BYTES inputs), by `offramp prepare` (text bootstrap
 * data) and by the bench; all three must turn a text into the same ids.
 *
 * Truncation is done here, not by the library: @huggingface/tokenizers ignores the file's
 * `truncation` block. A text whose ids (with the template's special tokens) exceed `maxLength`
 * keeps its first `maxLength − specials` content ids between the template's own prefix and suffix
 * ([CLS] … [SEP] for BERT), which is what the Python tokenizers library does with strategy
 * LongestFirst on a single sequence.
 *
 * Long texts are not tokenized whole. Tokenizing is linear in the text's length and runs on the
 * serving thread; an email is often thousands of characters of which the model reads the first
 * 256 ids. When the file's pre-tokenizer splits at white space, the ids of a prefix of the text cut
 * at white space are a prefix of the whole text's ids (every word before the cut is tokenized the
 * same), so a prefix with enough ids gives exactly the truncated row; a prefix with too few falls
 * back to the whole text.
 */
import { readFile } from 'node:fs/promises';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';

/** Where a text model's inputs and tokenizer are: the prepared manifest's `model.text`. */
export interface TextSpec {
  /** The tokenizer.json file, relative to the prepared model directory. */
  tokenizer: string;
  /** Longest row, in ids including the special tokens; longer texts are truncated. */
  maxLength: number;
  /** Id written into padding positions (their attention mask is 0, so the value only has to be a valid id). */
  padId: number;
  /** Names of the model's inputs. */
  inputs: { ids: string; mask: string; typeIds?: string };
  /** The BYTES input a client sends text to (offered in the model's metadata beside the id inputs). */
  textInput: string;
}

/** The name of the BYTES input of every text model: what clients send raw text to. */
export const TEXT_INPUT_NAME = 'text';

/** BERT's usual limit when neither the tokenizer file nor the caller names one. */
export const DEFAULT_MAX_LENGTH = 512;

export interface TokenizedText {
  ids: BigInt64Array;
  /** True when the text had more ids than `maxLength` and was cut. */
  truncated: boolean;
}

/** Pre-tokenizers that split at white space (and maybe punctuation) first: cutting a text at white space cuts its ids. */
const SPLITS_AT_WHITESPACE = new Set(['BertPreTokenizer', 'Whitespace', 'WhitespaceSplit']);

/** Characters per id allowed for a prefix before tokenizing it: above what English text needs (~4–5). */
const PREFIX_CHARS_PER_ID = 8;

// The package's .d.ts files import each other without file extensions, which NodeNext module
// resolution cannot follow, so its types arrive unresolved: name the part used here.
interface HfEncoder {
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[] };
  token_to_id(token: string): number | undefined;
}
const Tokenizer = HfTokenizer as unknown as new (tokenizerJson: object, config: object) => HfEncoder;

interface TokenizerFile {
  truncation?: { max_length?: number } | null;
  padding?: { pad_id?: number } | null;
  pre_tokenizer?: { type?: string; pretokenizers?: { type?: string }[] } | null;
  added_tokens?: { id?: number }[];
  /** WordPiece and BPE: token → id; Unigram: [token, score] pairs, the id being the position. */
  model?: { type?: string; vocab?: Record<string, number> | [string, number][] };
}

/** One more than the largest id the file can produce: ids at or above it are not tokens of this vocabulary. */
function vocabularySize(file: TokenizerFile): number {
  const vocab = file.model?.vocab;
  let size = Array.isArray(vocab) ? vocab.length : 0;
  if (vocab && !Array.isArray(vocab)) for (const id of Object.values(vocab)) size = Math.max(size, id + 1);
  for (const t of file.added_tokens ?? []) if (typeof t.id === 'number') size = Math.max(size, t.id + 1);
  return size;
}

export class TextTokenizer {
  private constructor(
    private readonly encoder: HfEncoder,
    /** Special ids the template puts after the text's own ids (kept when a text is cut). */
    private readonly suffix: number,
    readonly maxLength: number,
    readonly padId: number,
    /** Ids are 0 … vocabSize − 1 (pre-tokenized requests are checked against it). */
    readonly vocabSize: number,
    /** Whether a long text may be tokenized from a prefix (see the file comment). */
    private readonly prefixCut: boolean,
  ) {}

  /**
   * @param maxLength longest row in ids; default: the file's `truncation.max_length`, else 512.
   * @throws Error naming the file when it is unreadable, not JSON, or not a tokenizer the library reads.
   */
  static async load(path: string, maxLength?: number): Promise<TextTokenizer> {
    let json: TokenizerFile;
    try {
      json = JSON.parse(await readFile(path, 'utf8')) as TokenizerFile;
    } catch (err) {
      throw new Error(`cannot read tokenizer ${path}: ${(err as Error).message}`, { cause: err });
    }
    return TextTokenizer.fromJson(json, path, maxLength);
  }

  static fromJson(json: object, source: string, maxLength?: number): TextTokenizer {
    const file = json as TokenizerFile;
    let encoder: HfEncoder;
    try {
      encoder = new Tokenizer(json, {});
      encoder.encode('a');
    } catch (err) {
      throw new Error(`${source} is not a tokenizer.json @huggingface/tokenizers can read: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const limit = maxLength ?? file.truncation?.max_length ?? DEFAULT_MAX_LENGTH;
    // The template's special tokens, found by encoding one text with and without them.
    const probe = 'a b';
    const withSpecials = encoder.encode(probe).ids;
    const content = encoder.encode(probe, { add_special_tokens: false }).ids;
    let prefix = 0;
    while (prefix <= withSpecials.length - content.length) {
      if (content.every((id, i) => withSpecials[prefix + i] === id)) break;
      prefix++;
    }
    if (prefix > withSpecials.length - content.length)
      throw new Error(`${source}: its post-processor does not keep the text's ids in one run; cannot truncate it`);
    const suffix = withSpecials.length - content.length - prefix;
    if (!Number.isInteger(limit) || limit <= prefix + suffix)
      throw new Error(`${source}: maximum length ${limit} leaves no room for text between the special tokens`);
    const padId = file.padding?.pad_id ?? encoder.token_to_id('[PAD]') ?? encoder.token_to_id('<pad>') ?? 0;
    const pre = file.pre_tokenizer;
    const splitsAtWhitespace =
      SPLITS_AT_WHITESPACE.has(pre?.type ?? '') ||
      (pre?.type === 'Sequence' && (pre.pretokenizers ?? []).some((p) => SPLITS_AT_WHITESPACE.has(p.type ?? '')));
    return new TextTokenizer(encoder, suffix, limit, padId, vocabularySize(file), splitsAtWhitespace);
  }

  /** The ids of one text, special tokens included, cut to `maxLength`. */
  encode(text: string): TokenizedText {
    const budget = this.maxLength * PREFIX_CHARS_PER_ID;
    if (this.prefixCut && text.length > budget) {
      // Cut at the last white space within the budget, so that no word is split.
      const cut = text.slice(0, budget).search(/\s\S*$/);
      if (cut > 0) {
        const ids = this.encoder.encode(text.slice(0, cut)).ids;
        // More ids than fit, counting a spare one for the word the cut may end on: the whole text's
        // first maxLength − suffix ids are these.
        if (ids.length > this.maxLength) return { ids: this.cut(ids), truncated: true };
      }
    }
    const ids = this.encoder.encode(text).ids;
    if (ids.length <= this.maxLength) return { ids: BigInt64Array.from(ids, BigInt), truncated: false };
    return { ids: this.cut(ids), truncated: true };
  }

  /** The first `maxLength − suffix` ids, then the template's suffix (the last `suffix` ids). */
  private cut(ids: number[]): BigInt64Array {
    const out = new BigInt64Array(this.maxLength);
    const keep = this.maxLength - this.suffix;
    for (let i = 0; i < keep; i++) out[i] = BigInt(ids[i] as number);
    for (let i = 0; i < this.suffix; i++) out[keep + i] = BigInt(ids[ids.length - this.suffix + i] as number);
    return out;
  }
}
