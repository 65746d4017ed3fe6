import { describe, expect, it } from 'vitest';
import { parseServingConfig } from '../src/config/index.js';
import { EngineDataPlane } from '../src/data-plane/engine-data-plane.js';
import { BUNDLED_DIR, testImages } from './helpers/bundled.js';

describe('live tuning on the bundled model', () => {
  it('starts with every ramp at "never" and opens exits from live feedback within a few windows', async () => {
    const config = parseServingConfig(
      [
        'server: { workers: 1, intra_op_threads: 1 }',
        'models:',
        '  - name: fmnist',
        `    path: ${JSON.stringify(BUNDLED_DIR)}`,
        '    accuracy: { budget: 0.02, window: 250 }',
        '    tuner: { kind: guarded }',
        '    batching: { max_batch_size: 16, max_queue_delay_ms: 2, max_queue_size: 4096 }',
        '    slo: { latency_ms: 60000 }',
      ].join('\n'),
      'live-tuning.test.yaml',
    );
    const plane = await EngineDataPlane.load(config, { version: 'test' });
    try {
      const before = plane.exits('fmnist');
      expect(before.ramps.filter((r) => r.active).every((r) => r.threshold === null)).toBe(true);
      const rows = 2400;
      const images = await testImages(rows);
      const exitsSeen: number[] = [];
      const inFlight = 32;
      let next = 0;
      await Promise.all(
        Array.from({ length: inFlight }, async () => {
          while (next < rows) {
            const i = next++;
            const data = Array.from((images.data as Float32Array).subarray(i * 784, (i + 1) * 784));
            const answer = await plane.infer({ modelName: 'fmnist', parameters: {}, inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 1, 28, 28], data }] });
            if (answer.parameters['early'] === true) exitsSeen.push(i);
          }
        }),
      );
      const after = plane.exits('fmnist');
      expect(after.ramps.some((r) => r.active && r.threshold !== null)).toBe(true);
      expect(exitsSeen.length).toBeGreaterThan(0);
      // Exits began within the first few windows of 250 requests, not only at the very end.
      expect(Math.min(...exitsSeen)).toBeLessThan(1500);
    } finally {
      await plane.close();
    }
  });
});
