/**
 * Measures how long each segment and each head takes at every batch size on this machine, with
 * the thread setting serving will use. The tuner's savings estimates and the scheduler's
 * deadline checks are built on these figures, so they are measured, never guessed.
 */
import { OnnxSession } from '../src/model/onnx-session.js';
import type { HostTensor } from '../src/model/tensor.js';
import type { LatencyProfile } from '../src/model/manifest.js';
import type { TextSpec } from '../src/model/text-tokenizer.js';

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
  /** Text models: the row length each batch size's inputs have (see typicalBatchLengths), for the record. */
  sequenceLengths?: number[];
}

/**
 * Per batch size b, the length a batch of b rows drawn from these lengths is padded to, typically:
 * the median of the longest of b rows, which is the length quantile 0.5^(1/b) (the longest of b
 * independent rows is at most q with probability F(q)^b). Batch 1 gets the median length.
 */
export function typicalBatchLengths(lengths: readonly number[], batchSizes: readonly number[]): number[] {
  const sorted = [...lengths].sort((a, b) => a - b);
  return batchSizes.map((b) => {
    const rank = Math.ceil(Math.pow(0.5, 1 / b) * sorted.length) - 1;
    return sorted[Math.min(sorted.length - 1, Math.max(0, rank))] ?? 1;
  });
}

/**
 * A text batch's feeds with every row cut or padded to `length` ids. Padding costs what real
 * tokens cost (attention runs over every position; the mask only zeroes weights), so this times
 * a batch padded to that length.
 */
export function feedsAtLength(
  feeds: Record<string, HostTensor>,
  text: Pick<TextSpec, 'inputs' | 'padId'>,
  length: number,
): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const [name, tensor] of Object.entries(feeds)) {
    const [rows = 0, width = 0] = tensor.dims;
    const data = new BigInt64Array(rows * length).fill(name === text.inputs.ids ? BigInt(text.padId) : 0n);
    const source = tensor.data as BigInt64Array;
    const keep = Math.min(width, length);
    for (let r = 0; r < rows; r++) data.set(source.subarray(r * width, r * width + keep), r * length);
    out[name] = { type: 'int64', data, dims: [rows, length] };
  }
  return out;
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
  const lengths = options.sequenceLengths;
  const atLengths = lengths
    ? '; text rows cut or padded to the length a batch of that size is typically padded to ' +
      `(the median of its longest row over the bootstrap): ${lengths.join(', ')} ids ` +
      `for batch ${options.batchSizes.join(', ')}`
    : '';
  return {
    intraOpThreads: options.intraOpThreads,
    batchSizes: options.batchSizes,
    segmentMs,
    headMs,
    fullModelMs,
    ...(lengths ? { sequenceLengths: lengths } : {}),
    method:
      `smallest of ${rounds} passes' medians of up to ${options.maxRuns} runs ` +
      `(≥${options.minRuns}, ~${options.budgetMs} ms each) after 2 warm-up runs${atLengths}`,
  };
}
