import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { parseTraceHeader } from '../tuner/replay.js';
import { readManifest } from '../src/model/manifest.js';
import { BUNDLED_DIR, SPAM_BERT_DIR, SPAM_TEST, TEST_IMAGES, TEST_LABELS } from './helpers/bundled.js';

describe('offramp record', () => {
  it('writes a header and one complete feedback record per input row', async () => {
    const out = join(await mkdtemp(join(tmpdir(), 'offramp-record-')), 'trace.jsonl');
    const code = await main([
      'record',
      '--model',
      BUNDLED_DIR,
      '--data',
      TEST_IMAGES,
      '--labels',
      TEST_LABELS,
      '--out',
      out,
      '--limit',
      '40',
      '--batch',
      '16',
      '--json',
    ]);
    expect(code).toBe(0);
    const lines = (await readFile(out, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const manifest = await readManifest(BUNDLED_DIR);
    expect(lines[0]).toMatchObject({ offramp_trace: 1, model: manifest.name, classes: 10 });
    // The header carries each ramp's solo-exit curve, so replay can start where a server starts.
    expect((lines[0] as { ramps: unknown }).ramps).toEqual(
      manifest.ramps.map((r) => ({ id: r.id, computeBefore: r.computeBefore, soloCurve: r.soloCurve })),
    );
    expect(() => parseTraceHeader(lines[0])).not.toThrow();
    const records = lines.slice(1) as {
      ramps: { id: number }[];
      final: { argmax: number } | null;
      exit: number;
      label: number;
      batchSize: number;
      probe: boolean;
    }[];
    expect(records).toHaveLength(40);
    for (const r of records) {
      expect(r.ramps.map((x) => x.id)).toEqual(manifest.ramps.map((x) => x.id));
      expect(r.final).not.toBeNull();
      expect(r.exit).toBe(-1);
      expect(r.probe).toBe(true);
      expect(r.label).toBeGreaterThanOrEqual(0);
    }
    expect(records.map((r) => r.batchSize)).toEqual([...Array<number>(32).fill(16), ...Array<number>(8).fill(8)]);
    // The backbone is a real classifier: most of 40 test images are classified correctly.
    expect(records.filter((r) => r.final?.argmax === r.label).length).toBeGreaterThan(30);
  });

  it('names a missing prepared model directory', async () => {
    const errors: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = (chunk: string) => errors.push(String(chunk)) > 0;
    try {
      expect(await main(['record', '--model', '/nonexistent', '--data', TEST_IMAGES, '--out', '/tmp/x.jsonl'])).toBe(1);
    } finally {
      process.stderr.write = write;
    }
    expect(errors.join('')).toContain('/nonexistent/manifest.json');
  });
});

/** Runs `offramp record` with these arguments, keeping what it writes to stderr. */
async function recordErrors(argv: string[]): Promise<{ code: number; stderr: string }> {
  const errors: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = (chunk: string) => errors.push(String(chunk)) > 0;
  try {
    return { code: await main(['record', ...argv, '--json']), stderr: errors.join('') };
  } finally {
    process.stderr.write = write;
  }
}

describe('offramp record on a text model (models/spam-bert)', () => {
  it('records JSON Lines texts with their labels mapped through the manifest labels', async () => {
    const out = join(await mkdtemp(join(tmpdir(), 'offramp-record-')), 'trace.jsonl');
    const code = await main([
      'record',
      '--model',
      SPAM_BERT_DIR,
      '--data',
      SPAM_TEST,
      '--out',
      out,
      '--limit',
      '12',
      '--batch',
      '4',
      '--json',
    ]);
    expect(code).toBe(0);
    const lines = (await readFile(out, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ offramp_trace: 1, model: 'spam-bert', classes: 2, labels: ['ham', 'spam'] });
    const records = lines.slice(1) as { ramps: unknown[]; final: { argmax: number }; label: number }[];
    expect(records).toHaveLength(12);
    expect(records.every((r) => r.ramps.length === 7 && (r.label === 0 || r.label === 1))).toBe(true);
    // 98 % test accuracy: at most one of 12 wrong.
    expect(records.filter((r) => r.final.argmax === r.label).length).toBeGreaterThanOrEqual(11);
  });

  it('takes JSON Lines, not .npy, and names the fix', async () => {
    const out = join(await mkdtemp(join(tmpdir(), 'offramp-record-')), 'trace.jsonl');
    const result = await recordErrors(['--model', SPAM_BERT_DIR, '--data', TEST_IMAGES, '--out', out]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `offramp: ${SPAM_BERT_DIR} is a text model: give its inputs as JSON Lines (.jsonl or .jsonl.gz), not ${TEST_IMAGES}\n`,
    );
  });

  it('takes the labels from the records, not from --labels, and refuses a label the model does not have', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'offramp-record-'));
    const withLabels = await recordErrors([
      '--model',
      SPAM_BERT_DIR,
      '--data',
      SPAM_TEST,
      '--labels',
      TEST_LABELS,
      '--out',
      join(dir, 'a.jsonl'),
    ]);
    expect(withLabels.code).toBe(1);
    expect(withLabels.stderr).toContain(
      `--labels is for .npy data; a text model's labels are the records' "label" fields`,
    );
    const data = join(dir, 'texts.jsonl');
    await writeFile(data, '{"text": "hello", "label": "ham"}\n{"text": "buy now", "label": "phishing"}\n');
    const unknown = await recordErrors(['--model', SPAM_BERT_DIR, '--data', data, '--out', join(dir, 'b.jsonl')]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(
      `offramp: ${data} record 2: label "phishing" is not one of the model's labels (ham, spam)\n`,
    );
  });

  it('refuses text data for an image model', async () => {
    const out = join(await mkdtemp(join(tmpdir(), 'offramp-record-')), 'trace.jsonl');
    const result = await recordErrors(['--model', BUNDLED_DIR, '--data', SPAM_TEST, '--out', out]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${BUNDLED_DIR} is not a text model`);
  });
});
