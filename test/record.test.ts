import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { parseTraceHeader } from '../tuner/replay.js';
import { readManifest } from '../src/model/manifest.js';
import { BUNDLED_DIR, TEST_IMAGES, TEST_LABELS } from './helpers/bundled.js';

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
