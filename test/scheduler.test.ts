import { describe, expect, it } from 'vitest';
import type { BatchingConfig } from '../src/config/index.js';
import { DynamicBatcher } from '../src/engine/scheduler.js';
import type { EngineRequest } from '../src/engine/request.js';

const config: BatchingConfig = { maxBatchSize: 4, maxQueueDelayMs: 5, maxQueueSize: 3, preferredBatchSizes: [] };
/** 1 ms per row: a batch of n takes n ms. */
const latency = (n: number): number => n;

function request(id: string, arrivalMs: number, options: Partial<EngineRequest> = {}): EngineRequest {
  return {
    id,
    rows: 1,
    data: new Float32Array(1),
    rowShape: [1],
    priority: 0,
    arrivalMs,
    deadlineMs: arrivalMs + 100,
    state: 'queued',
    dispatchedRows: 0,
    answers: [],
    answeredRows: 0,
    resolve: () => undefined,
    reject: () => undefined,
    ...options,
  };
}

const ids = (step: ReturnType<DynamicBatcher['step']>): string[] =>
  step.kind === 'batch' ? step.slices.map((s) => `${s.request.id}:${s.firstRow}+${s.rows}`) : [];

describe('dynamic batcher', () => {
  it('is idle with an empty queue', () => {
    expect(new DynamicBatcher(config, latency).step(0).kind).toBe('idle');
  });

  it('waits for a fuller batch until the oldest request has waited max_queue_delay', () => {
    const b = new DynamicBatcher(config, latency);
    b.add(request('a', 0));
    expect(b.step(1)).toMatchObject({ kind: 'wait', untilMs: 5 });
    expect(ids(b.step(5))).toEqual(['a:0+1']);
  });

  it('dispatches at once when a full batch is queued', () => {
    const b = new DynamicBatcher({ ...config, maxQueueSize: 10 }, latency);
    for (const id of ['a', 'b', 'c', 'd', 'e']) b.add(request(id, 0));
    const step = b.step(0);
    expect(ids(step)).toEqual(['a:0+1', 'b:0+1', 'c:0+1', 'd:0+1']);
    expect(b.queuedRows).toBe(1);
  });

  it('dispatches a preferred batch size without waiting', () => {
    const b = new DynamicBatcher({ ...config, preferredBatchSizes: [2] }, latency);
    b.add(request('a', 0));
    expect(b.step(0).kind).toBe('wait');
    b.add(request('b', 0));
    expect(ids(b.step(0))).toEqual(['a:0+1', 'b:0+1']);
  });

  it('never waits so long that the most urgent deadline cannot be met', () => {
    const b = new DynamicBatcher({ ...config, maxQueueDelayMs: 50 }, latency);
    b.add(request('a', 0, { deadlineMs: 10, rows: 2 }));
    // A batch of 2 rows takes 2 ms, so it must start by t = 8, long before the 50 ms delay.
    expect(b.step(0)).toMatchObject({ kind: 'wait', untilMs: 8 });
    expect(ids(b.step(8))).toEqual(['a:0+2']);
  });

  it('times out a request whose deadline passed before it ran, and does not run it', () => {
    const b = new DynamicBatcher(config, latency);
    b.add(request('late', 0, { deadlineMs: 3 }));
    b.add(request('ok', 1));
    const step = b.step(6);
    expect(step.expired.map((r) => r.id)).toEqual(['late']);
    expect(ids(step)).toEqual(['ok:0+1']);
  });

  it('rejects a request when the queue is full', () => {
    const b = new DynamicBatcher(config, latency);
    expect([b.add(request('a', 0)), b.add(request('b', 0)), b.add(request('c', 0)), b.add(request('d', 0))]).toEqual([
      true,
      true,
      true,
      false,
    ]);
  });

  it('serves lower priority values first, first come first served within a level', () => {
    const b = new DynamicBatcher({ ...config, maxBatchSize: 2, maxQueueSize: 10 }, latency);
    b.add(request('low', 0, { priority: 3 }));
    b.add(request('default-1', 1));
    b.add(request('urgent', 2, { priority: 1 }));
    b.add(request('default-2', 3));
    expect(ids(b.step(10))).toEqual(['default-1:0+1', 'urgent:0+1']);
    expect(ids(b.step(10))).toEqual(['default-2:0+1', 'low:0+1']);
  });

  it('splits a request larger than the batch across batches', () => {
    const b = new DynamicBatcher(config, latency);
    b.add(request('big', 0, { rows: 6 }));
    expect(ids(b.step(0))).toEqual(['big:0+4']);
    expect(b.step(0)).toMatchObject({ kind: 'wait' });
    expect(ids(b.step(5))).toEqual(['big:4+2']);
  });

  it('a cancelled request leaves the queue', () => {
    const b = new DynamicBatcher(config, latency);
    const r = request('a', 0);
    b.add(r);
    expect(b.remove(r)).toBe(true);
    expect(b.step(10).kind).toBe('idle');
  });
});
