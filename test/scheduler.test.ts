import { describe, expect, it } from 'vitest';
import type { BatchingConfig } from '../src/config/index.js';
import { DynamicBatcher, type WorkerState } from '../src/engine/scheduler.js';
import type { EngineRequest } from '../src/engine/request.js';

/** Triton's fixed delay: the tests of this mode pass an idle worker, which it must not act on. */
const config: BatchingConfig = {
  maxBatchSize: 4,
  delay: 'fixed',
  maxQueueDelayMs: 5,
  maxQueueSize: 3,
  preferredBatchSizes: [],
};
const idle: WorkerState = { idleWorkers: 1 };
const busy: WorkerState = { idleWorkers: 0 };
/** 1 ms per row: a batch of n takes n ms. */
const latency = (n: number): number => n;

function request(id: string, arrivalMs: number, options: Partial<EngineRequest> = {}): EngineRequest {
  return {
    id,
    rows: 1,
    input: { kind: 'dense', rows: 1, data: new Float32Array(1), rowShape: [1] },
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

describe('dynamic batcher, fixed delay', () => {
  it('is idle with an empty queue', () => {
    expect(new DynamicBatcher(config, latency).step(0, idle).kind).toBe('idle');
  });

  it('waits for a fuller batch until the oldest request has waited max_queue_delay', () => {
    const b = new DynamicBatcher(config, latency);
    b.add(request('a', 0));
    expect(b.step(1, idle)).toMatchObject({ kind: 'wait', untilMs: 5 });
    expect(ids(b.step(5, idle))).toEqual(['a:0+1']);
  });

  it('waits the same whether or not a worker is idle', () => {
    const b = new DynamicBatcher(config, latency);
    b.add(request('a', 0));
    expect(b.step(1, busy)).toMatchObject({ kind: 'wait', untilMs: 5 });
    expect(b.step(1, idle)).toMatchObject({ kind: 'wait', untilMs: 5 });
    expect(ids(b.step(5, busy))).toEqual(['a:0+1']);
  });

  it('dispatches at once when a full batch is queued', () => {
    const b = new DynamicBatcher({ ...config, maxQueueSize: 10 }, latency);
    for (const id of ['a', 'b', 'c', 'd', 'e']) b.add(request(id, 0));
    const step = b.step(0, idle);
    expect(ids(step)).toEqual(['a:0+1', 'b:0+1', 'c:0+1', 'd:0+1']);
    expect(b.queuedRows).toBe(1);
  });

  it('dispatches a preferred batch size without waiting', () => {
    const b = new DynamicBatcher({ ...config, preferredBatchSizes: [2] }, latency);
    b.add(request('a', 0));
    expect(b.step(0, idle).kind).toBe('wait');
    b.add(request('b', 0));
    expect(ids(b.step(0, idle))).toEqual(['a:0+1', 'b:0+1']);
  });

  it('never waits so long that the most urgent deadline cannot be met', () => {
    const b = new DynamicBatcher({ ...config, maxQueueDelayMs: 50 }, latency);
    b.add(request('a', 0, { deadlineMs: 10, rows: 2 }));
    // A batch of 2 rows takes 2 ms, so it must start by t = 8, long before the 50 ms delay.
    expect(b.step(0, idle)).toMatchObject({ kind: 'wait', untilMs: 8 });
    expect(ids(b.step(8, idle))).toEqual(['a:0+2']);
  });

  it('times out a request whose deadline passed before it ran, and does not run it', () => {
    const b = new DynamicBatcher(config, latency);
    b.add(request('late', 0, { deadlineMs: 3 }));
    b.add(request('ok', 1));
    const step = b.step(6, idle);
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
    expect(ids(b.step(10, idle))).toEqual(['default-1:0+1', 'urgent:0+1']);
    expect(ids(b.step(10, idle))).toEqual(['default-2:0+1', 'low:0+1']);
  });

  it('splits a request larger than the batch across batches', () => {
    const b = new DynamicBatcher(config, latency);
    b.add(request('big', 0, { rows: 6 }));
    expect(ids(b.step(0, idle))).toEqual(['big:0+4']);
    expect(b.step(0, idle)).toMatchObject({ kind: 'wait' });
    expect(ids(b.step(5, idle))).toEqual(['big:4+2']);
  });

  it('a cancelled request leaves the queue', () => {
    const b = new DynamicBatcher(config, latency);
    const r = request('a', 0);
    b.add(r);
    expect(b.remove(r)).toBe(true);
    expect(b.step(10, idle).kind).toBe('idle');
  });
});

describe('dynamic batcher, work-conserving', () => {
  /** The fixed delay is set but must play no part: only idle workers and deadlines decide. */
  const wc: BatchingConfig = { ...config, delay: 'work-conserving', maxQueueSize: 10 };

  it('dispatches a lone request at once to an idle worker', () => {
    const b = new DynamicBatcher(wc, latency);
    b.add(request('a', 0));
    expect(ids(b.step(0, idle))).toEqual(['a:0+1']);
    expect(b.step(0, idle).kind).toBe('idle');
  });

  it('lets a batch grow while every worker is busy, past max_queue_delay, and sends it when one frees', () => {
    const b = new DynamicBatcher(wc, latency);
    b.add(request('a', 0));
    // Deadline 100, a batch of 1 takes 1 ms: the only timer is the latest start, t = 99.
    expect(b.step(0, busy)).toMatchObject({ kind: 'wait', untilMs: 99 });
    b.add(request('b', 3));
    b.add(request('c', 7));
    // Three rows take 3 ms: the latest start moves to t = 97.
    expect(b.step(7, busy)).toMatchObject({ kind: 'wait', untilMs: 97 });
    expect(b.queuedRows).toBe(3);
    expect(ids(b.step(8, idle))).toEqual(['a:0+1', 'b:0+1', 'c:0+1']);
  });

  it('a worker freeing takes at most max_batch_size; the rest goes to the next idle worker', () => {
    const b = new DynamicBatcher(wc, latency);
    b.add(request('big', 0, { rows: 3 }));
    expect(b.step(0, busy).kind).toBe('wait');
    b.add(request('small', 1, { rows: 2 }));
    // Five rows queued, four fit: a full batch goes even to a busy worker's waiting place.
    expect(ids(b.step(1, busy))).toEqual(['big:0+3', 'small:0+1']);
    expect(b.step(1, busy).kind).toBe('wait');
    expect(ids(b.step(2, idle))).toEqual(['small:1+1']);
  });

  it('sends the largest preferred size while busy, and anything smaller only to an idle worker', () => {
    const b = new DynamicBatcher({ ...wc, preferredBatchSizes: [2] }, latency);
    b.add(request('a', 0));
    expect(b.step(0, busy).kind).toBe('wait');
    b.add(request('b', 0));
    expect(ids(b.step(0, busy))).toEqual(['a:0+1', 'b:0+1']);
  });

  it('never holds a batch past the latest start that meets the most urgent deadline', () => {
    const b = new DynamicBatcher(wc, latency);
    b.add(request('a', 0, { deadlineMs: 10, rows: 2 }));
    // A batch of 2 rows takes 2 ms, so it must start by t = 8 even though every worker is busy.
    expect(b.step(0, busy)).toMatchObject({ kind: 'wait', untilMs: 8 });
    expect(b.step(7, busy).kind).toBe('wait');
    expect(ids(b.step(8, busy))).toEqual(['a:0+2']);
  });

  it('times out an expired request whether or not a worker is idle, and does not run it', () => {
    const b = new DynamicBatcher(wc, latency);
    b.add(request('late', 0, { deadlineMs: 3 }));
    b.add(request('ok', 1));
    const held = b.step(6, busy);
    expect(held.expired.map((r) => r.id)).toEqual(['late']);
    expect(held.kind).toBe('wait');
    b.add(request('late-2', 6, { deadlineMs: 8 }));
    const sent = b.step(9, idle);
    expect(sent.expired.map((r) => r.id)).toEqual(['late-2']);
    expect(ids(sent)).toEqual(['ok:0+1']);
  });

  it('keeps priorities: lower values first, first come first served within a level', () => {
    const b = new DynamicBatcher({ ...wc, maxBatchSize: 2 }, latency);
    b.add(request('low', 0, { priority: 3 }));
    b.add(request('default-1', 1));
    b.add(request('urgent', 2, { priority: 1 }));
    expect(ids(b.step(2, busy))).toEqual(['default-1:0+1', 'urgent:0+1']);
    expect(b.step(2, busy).kind).toBe('wait');
    expect(ids(b.step(3, idle))).toEqual(['low:0+1']);
  });

  it('a reconfigured delay applies from the next step', () => {
    const b = new DynamicBatcher(config, latency);
    b.add(request('a', 0));
    expect(b.step(0, idle).kind).toBe('wait');
    b.reconfigure(wc);
    expect(ids(b.step(0, idle))).toEqual(['a:0+1']);
  });
});
