/**
 * Runs split segments in order. A segment reads its inputs by name from a pool that holds the
 * caller's inputs and everything earlier segments produced, so side tensors (an attention mask)
 * reach every later segment that needs them. The plain, all-segments way to run what split.ts
 * produces: prepare and verify (ramps/) use it; the engine's runner (src/engine/executor/)
 * keeps its own chain because it drops exited rows between segments.
 */
import { OnnxSession, type SessionOptions } from './onnx-session.js';
import type { HostTensor } from './tensor.js';
import type { Segment } from './split.js';
import { encodeModel } from './onnx-model.js';

export class SegmentChain {
  private constructor(
    readonly segments: readonly Segment[],
    private readonly sessions: OnnxSession[],
  ) {}

  /** @param sessionOptions for every segment's session (a number: intra-op threads). */
  static async load(segments: readonly Segment[], sessionOptions: number | SessionOptions = 0): Promise<SegmentChain> {
    const options = typeof sessionOptions === 'number' ? { intraOpThreads: sessionOptions } : sessionOptions;
    const sessions: OnnxSession[] = [];
    for (const s of segments) sessions.push(await OnnxSession.create(encodeModel(s.model), options));
    return new SegmentChain(segments, sessions);
  }

  /**
   * Runs every segment; `afterSegment` sees the pool after each one (where ramps score rows).
   * Returns the pool: inputs, boundary tensors and the model outputs.
   */
  async run(
    inputs: Record<string, HostTensor>,
    afterSegment?: (k: number, pool: Record<string, HostTensor>) => void | Promise<void>,
  ): Promise<Record<string, HostTensor>> {
    const pool: Record<string, HostTensor> = { ...inputs };
    for (let k = 0; k < this.segments.length; k++) {
      const segment = this.segments[k] as Segment;
      const feeds: Record<string, HostTensor> = {};
      for (const io of segment.inputs) {
        const t = pool[io.name];
        if (!t) throw new Error(`segment ${k} needs '${io.name}', which nothing produced`);
        feeds[io.name] = t;
      }
      Object.assign(
        pool,
        await (this.sessions[k] as OnnxSession).run(
          feeds,
          segment.outputs.map((o) => o.name),
        ),
      );
      if (afterSegment) await afterSegment(k, pool);
    }
    return pool;
  }

  async release(): Promise<void> {
    for (const s of this.sessions) await s.release();
  }
}
