import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { encodeNpy, parseNpy, readNpy, writeNpy } from '../src/model/npy.js';

describe('.npy files', () => {
  it('round-trips float32, int64 and uint8 arrays, plain and gzipped', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'offramp-npy-'));
    const arrays = [
      { type: 'float32', shape: [2, 3], data: Float32Array.from([1.5, -2, 3, 4, 5, 6]) },
      { type: 'int64', shape: [3], data: BigInt64Array.from([1n, -2n, 3n]) },
      { type: 'uint8', shape: [2, 1, 2, 2], data: Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 255]) },
    ];
    for (const [i, array] of arrays.entries()) {
      for (const ext of ['.npy', '.npy.gz']) {
        const path = join(dir, `a${i}${ext}`);
        await writeNpy(path, array);
        const back = await readNpy(path);
        expect(back.type).toBe(array.type);
        expect(back.shape).toEqual(array.shape);
        expect([...back.data]).toEqual([...array.data]);
      }
    }
  });

  it('puts the data at a 64-byte boundary, as numpy does', () => {
    const bytes = encodeNpy({ type: 'float32', shape: [1], data: Float32Array.from([1]) });
    expect((bytes.length - 4) % 64).toBe(0);
  });

  it('rejects files that are not .npy, and dtypes it cannot serve, with a message naming the file', () => {
    expect(() => parseNpy(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), 'x.npy')).toThrow(
      /x\.npy: not a \.npy file/,
    );
    const complex = encodeNpy({ type: 'float32', shape: [1], data: Float32Array.from([1]) });
    const text = Buffer.from(complex).toString('latin1').replace("'<f4'", "'<c8'");
    expect(() => parseNpy(Buffer.from(text, 'latin1'), 'c.npy')).toThrow(/c\.npy: unsupported dtype '<c8'/);
  });

  const testImages = 'models/data/fashion-mnist/test-images.npy.gz';
  it.skipIf(!existsSync(testImages))('reads the committed Fashion-MNIST test split', async () => {
    const images = await readNpy(testImages);
    expect(images.type).toBe('uint8');
    expect(images.shape).toEqual([10000, 1, 28, 28]);
    const labels = await readNpy('models/data/fashion-mnist/test-labels.npy.gz');
    expect(labels.shape).toEqual([10000]);
    expect(Math.max(...(labels.data as Uint8Array))).toBe(9);
  });
});
