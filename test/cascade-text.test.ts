/**
 * A cascade in front of the bundled text model: the bundled spam members (input_ids +
 * attention_mask, models/members/README.md) as tier 0 before spam-bert, served by the real
 * server. The text is tokenized once, for the members and the backbone alike, so raw text and
 * the same text sent as ids must get the same answer from the same tier.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServingConfig } from '../src/config/index.js';
import { startServer, type RunningServer } from '../src/server.js';
import { readManifest } from '../src/model/manifest.js';
import { TextTokenizer } from '../src/model/text-tokenizer.js';
import { SPAM_BERT_DIR, SPAM_MEMBERS, SPAM_TEST, TEST_SERVER } from './helpers/bundled.js';
import { postInfer, type InferAnswer } from './helpers/infer.js';

const emails = gunzipSync(readFileSync(SPAM_TEST))
  .toString('utf8')
  .split('\n')
  .filter((l) => l.length > 0)
  .map((l) => (JSON.parse(l) as { text: string }).text);

let server: RunningServer;
let base: string;
let tokenizer: TextTokenizer;

const post = (inputs: unknown[]): Promise<InferAnswer> => postInfer(base, 'spam', inputs);

const asText = (text: string) => post([{ name: 'text', datatype: 'BYTES', shape: [1], data: [text] }]);

function asIds(text: string): Promise<InferAnswer> {
  const ids = Array.from(tokenizer.encode(text).ids, Number);
  return post([
    { name: 'input_ids', datatype: 'INT64', shape: [1, ids.length], data: ids },
    { name: 'attention_mask', datatype: 'INT64', shape: [1, ids.length], data: ids.map(() => 1) },
  ]);
}

beforeAll(async () => {
  const manifest = await readManifest(SPAM_BERT_DIR);
  tokenizer = await TextTokenizer.load(
    `${SPAM_BERT_DIR}/${manifest.model.text!.tokenizer}`,
    manifest.model.text!.maxLength,
  );
  const config = parseServingConfig(
    [
      `server: { ${TEST_SERVER} }`,
      'models:',
      '  - name: spam',
      `    path: ${JSON.stringify(SPAM_BERT_DIR)}`,
      '    tuner: { kind: static }',
      '    slo: { latency_ms: 5000 }',
      '    batching: { max_batch_size: 8 }',
      `    cascade: { tiers: [ { members: [${SPAM_MEMBERS.map((p) => JSON.stringify(p)).join(', ')}], theta: 1 } ] }`,
    ].join('\n'),
    'cascade-text.test.yaml',
  );
  server = await startServer(config, { version: 'test' });
  base = `http://127.0.0.1:${server.httpPort}`;
}, 120_000);

afterAll(async () => {
  await server?.close();
});

describe('a spam-bert cascade of the bundled spam members', () => {
  it('answers raw text and the same ids alike, with the tier, the votes as labels and the agreement', async () => {
    const texts = [...emails.slice(0, 10), 'win a free prize now, click here', 'hi bob, lunch at noon?'];
    const tiers: unknown[] = [];
    for (const text of texts) {
      const fromText = await asText(text);
      const fromIds = await asIds(text);
      expect([fromText.status, fromIds.status]).toEqual([200, 200]);
      for (const key of ['tier', 'tiers', 'votes', 'agreement'])
        expect(fromIds.parameters[key], key).toEqual(fromText.parameters[key]);
      expect(fromIds.outputs['label']).toEqual(fromText.outputs['label']);
      const { tier, tiers: count, votes, agreement } = fromText.parameters;
      expect(count).toBe(2);
      tiers.push(tier);
      if (tier === 0) {
        const label = fromText.outputs['label']![0] as string;
        expect(['ham', 'spam']).toContain(label);
        expect(votes).toBe([label, label, label].join(','));
        expect(agreement).toBe(1);
      } else {
        expect(tier).toBe(1);
        expect(votes).toBeUndefined();
      }
    }
    // The members agree on ~97 % of test texts (models/members/README.md): most answers are tier 0.
    expect(tiers.filter((t) => t === 0).length).toBeGreaterThan(texts.length / 2);
  });

  it('shows the text members as the tier in /exits', async () => {
    const exits = (await (await fetch(`${base}/v2/models/spam/exits`)).json()) as {
      cascade: { tiers: { members: string[]; costMs: number }[] };
      ramps: { id: number; kind: string }[];
    };
    expect(exits.cascade.tiers[0]!.members).toEqual(SPAM_MEMBERS);
    expect(exits.cascade.tiers[0]!.costMs).toBeGreaterThan(0);
    expect(exits.ramps[0]).toMatchObject({ id: 0, kind: 'tier' });
  });
});
