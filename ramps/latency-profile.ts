/**
 * Measures how long each segment and each head takes at every batch size on this machine, with
 * the thread setting serving will use. The tuner's savings estimates and the scheduler's
 * deadline checks are built on these figures, so they are measured, never guessed.
 */
import { OnnxSession } from '../src/model/onnx-session.js';
import type { HostTensor } from '../src/model/tensor.js';
import type { LatencyProfile } from '../src/model/manifest.js';

export interface ProfileTarget {
  segments: { session: OnnxSession; inputs: string[]; outputs: string[] }[];
  /** Head r reads `tensor` from the pool. */
  heads: { session: OnnxSession; tensor: string }[];
  full: OnnxSession;
}

export interface ProfileOptions {
  batchSizes: number[];
  intraOpThreads: number;
  /** Timed runs per measurement (after warm-up), at most. */
  maxRuns: number;
  /** Stop timing one measurement after this many ms, once `minRuns` are in. */
  budgetMs: number;
  minRuns: number;
  /**
   * Passes over every batch size (default 3); each figure is the smallest of its passes'
   * medians. Other work on the machine only ever adds time, and it comes in bursts: one pass
   * timed during a burst once recorded the bundled model at 26 ms for batch 2 and 1.4 ms for
   * batch 1. Spreading the passes out in time lets a figure miss the burst.
   */
  rounds?: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

async function timeRuns(run: () => Promise<unknown>, options: ProfileOptions): Promise<number> {
  await run();
  await run();
  const samples: number[] = [];
  const start = performance.now();
  while (
    samples.length < options.maxRuns &&
    (samples.length < options.minRuns || performance.now() - start < options.budgetMs)
  ) {
    const t0 = performance.now();
    await run();
    samples.push(performance.now() - t0);
  }
  return median(samples);
}

/**
 * @param inputsFor returns model inputs with the given batch size (real rows when available).
 */
export async function profileLatency(
  target: ProfileTarget,
  inputsFor: (batch: number) => Record<string, HostTensor>,
  options: ProfileOptions,
  onStep?: (done: number, total: number) => void,
): Promise<LatencyProfile> {
  const rounds = Math.max(1, options.rounds ?? 3);
  const sizes = options.batchSizes.length;
  const segmentMs = target.segments.map(() => new Array<number>(sizes).fill(Number.POSITIVE_INFINITY));
  const headMs = target.heads.map(() => new Array<number>(sizes).fill(Number.POSITIVE_INFINITY));
  const fullModelMs = new Array<number>(sizes).fill(Number.POSITIVE_INFINITY);
  const keepMin = (series: number[] | undefined, i: number, ms: number): void => {
    if (series) series[i] = Math.min(series[i] as number, ms);
  };
  let done = 0;
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < sizes; i++) {
      const inputs = inputsFor(options.batchSizes[i] as number);
      const pool: Record<string, HostTensor> = { ...inputs };
      for (let k = 0; k < target.segments.length; k++) {
        const segment = target.segments[k] as ProfileTarget['segments'][number];
        const feeds = Object.fromEntries(segment.inputs.map((name) => [name, pool[name] as HostTensor]));
        keepMin(segmentMs[k], i, await timeRuns(() => segment.session.run(feeds, segment.outputs), options));
        Object.assign(pool, await segment.session.run(feeds, segment.outputs));
      }
      for (let r = 0; r < target.heads.length; r++) {
        const head = target.heads[r] as ProfileTarget['heads'][number];
        const feeds = { [head.tensor]: pool[head.tensor] as HostTensor };
        keepMin(headMs[r], i, await timeRuns(() => head.session.run(feeds), options));
      }
      keepMin(fullModelMs, i, await timeRuns(() => target.full.run(inputs), options));
      onStep?.(++done, rounds * sizes);
    }
  }
  return {
    intraOpThreads: options.intraOpThreads,
    batchSizes: options.batchSizes,
    segmentMs,
    headMs,
    fullModelMs,
    method: `smallest of ${rounds} passes' medians of up to ${options.maxRuns} runs (≥${options.minRuns}, ~${options.budgetMs} ms each) after 2 warm-up runs`,
  };
}
