/**
 * The spam backbone's tokenizer: the committed Hugging Face tokenizer.json, loaded by the JS
 * package that serves text (@huggingface/tokenizers), gives exactly the ids the Python recipe that
 * trained it gives (models/recipes/train_spam_tokenizer.py) — on every text of the committed test
 * split. The recipe wrote, per text, the count and SHA-256 of its full (untruncated) ids; any
 * difference in normalisation (accents, control characters, CJK, punctuation) shows up here.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { Tokenizer as PackageTokenizer } from '@huggingface/tokenizers';
import { describe, expect, it } from 'vitest';
import { TextTokenizer } from '../src/model/text-tokenizer.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DATA = join(ROOT, 'models', 'data', 'spam-assassin');

interface TextRecord {
  id: string;
  text: string;
  label: 'spam' | 'ham';
  group: string;
}
interface IdsRecord {
  id: string;
  n: number;
  sha256: string;
}

function readJsonlGz<T>(path: string): T[] {
  return gunzipSync(readFileSync(path))
    .toString('utf8')
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as T);
}

// The package's .d.ts files import each other without file extensions, which NodeNext module
// resolution cannot follow, so its types arrive unresolved: name the part used here.
interface HfTokenizer {
  encode(text: string): { ids: number[] };
  token_to_id(token: string): number | undefined;
}
const Tokenizer = PackageTokenizer as unknown as new (tokenizerJson: object, config: object) => HfTokenizer;

const sha256 = (ids: number[]) => createHash('sha256').update(ids.join(',')).digest('hex');

describe('spam-bert tokenizer.json under @huggingface/tokenizers', () => {
  const tokenizer = new Tokenizer(
    JSON.parse(readFileSync(join(ROOT, 'models', 'spam-bert.tokenizer.json'), 'utf8')) as object,
    {},
  );
  const texts = readJsonlGz<TextRecord>(join(DATA, 'test.jsonl.gz'));
  const expected = readJsonlGz<IdsRecord>(join(DATA, 'test-token-ids.jsonl.gz'));

  it('covers the whole test split, in order', () => {
    expect(texts.length).toBeGreaterThan(1000);
    expect(expected.map((r) => r.id)).toEqual(texts.map((r) => r.id));
  });

  it("gives the recipe's ids on every test text", () => {
    const mismatched: string[] = [];
    texts.forEach((record, i) => {
      const ids = tokenizer.encode(record.text).ids;
      const want = expected[i];
      if (want === undefined || ids.length !== want.n || sha256(ids) !== want.sha256) {
        mismatched.push(`${record.id} (${ids.length} ids, want ${want?.n})`);
      }
    });
    expect(mismatched).toEqual([]);
  });

  it('frames with [CLS] … [SEP] and maps the special tokens to ids 0-4', () => {
    const { ids } = tokenizer.encode('Héllo, WORLD! 東京 [MASK]');
    expect(ids[0]).toBe(2);
    expect(ids.at(-1)).toBe(3);
    expect(ids.at(-2)).toBe(4);
    expect(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].map((t) => tokenizer.token_to_id(t))).toEqual([
      0, 1, 2, 3, 4,
    ]);
  });
});

describe('TextTokenizer: what the server and prepare feed the model', () => {
  const json = JSON.parse(readFileSync(join(ROOT, 'models', 'spam-bert.tokenizer.json'), 'utf8')) as object;
  const whole = new Tokenizer(json, {});
  const texts = readJsonlGz<TextRecord>(join(DATA, 'test.jsonl.gz')).map((r) => r.text);

  it("cuts every test text to the file's 256 ids as the whole text's ids cut there would be: [CLS], the first 254, [SEP]", () => {
    const tokenizer = TextTokenizer.fromJson(json, 'spam-bert.tokenizer.json');
    expect(tokenizer.maxLength).toBe(256);
    let cut = 0;
    const wrong: number[] = [];
    texts.forEach((text, i) => {
      const ids = whole.encode(text).ids;
      const want = ids.length <= 256 ? ids : [...ids.slice(0, 255), ids.at(-1)!];
      const got = tokenizer.encode(text);
      if (got.truncated) cut++;
      if (got.truncated !== ids.length > 256 || Array.from(got.ids, Number).join() !== want.join()) wrong.push(i);
    });
    expect(wrong).toEqual([]);
    // Long texts are most of the split: the prefix shortcut (src/model/text-tokenizer.ts) was exercised.
    expect(cut).toBeGreaterThan(500);
  });

  it('takes a shorter maximum, reads the vocabulary size and the padding id', () => {
    const tokenizer = TextTokenizer.fromJson(json, 'spam-bert.tokenizer.json', 16);
    const { ids, truncated } = tokenizer.encode(texts[0]!);
    expect(truncated).toBe(true);
    expect(ids).toHaveLength(16);
    expect([ids[0], ids[15]]).toEqual([2n, 3n]);
    expect(tokenizer.vocabSize).toBe(8192);
    expect(tokenizer.padId).toBe(0);
    expect(() => TextTokenizer.fromJson(json, 'x.json', 2)).toThrow(/leaves no room/);
  });
});
