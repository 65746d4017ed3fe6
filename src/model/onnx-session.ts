/**
 * The one file in offramp that imports onnxruntime-node (the lint config enforces it). Everything
 * else — the offline pipeline in ramps/ and the engine's executor in src/engine/ — runs models
 * through this wrapper, with plain typed arrays in and out (src/model/tensor.ts), so a fake
 * backend can stand in for it in unit tests.
 *
 * Note: onnxruntime-node's `run` executes synchronously on the calling thread; the serving
 * runtime therefore only calls it from worker threads.
 */
import * as ort from 'onnxruntime-node';
import type { HostTensor, TensorData } from './tensor.js';

export interface SessionOptions {
  /** Threads one operator may use; 0 lets onnxruntime choose (all cores). */
  intraOpThreads?: number;
  /** Names of outputs to compute; default: all declared outputs. */
  outputs?: string[];
  /**
   * Let idle intra-op threads busy-wait for the next operator (onnxruntime's default). Serving
   * turns it off: spinning threads take the cores the serving thread needs between batches.
   */
  spinning?: boolean;
}

/**
 * The session settings serving uses (src/engine/executor/backbone-runner.ts), and so the ones
 * latency profiling must use too. Above all no spinning: with it, the idle threads of the session
 * that just ran busy-wait on the cores the next session needs, and a chain of 18 sessions timed
 * one after another measured anything from 1× to 15× its true cost (the bundled model's first
 * profile: 27 ms at batch 4, 3.8 ms at 8).
 */
export function servingSessionOptions(intraOpThreads: number): SessionOptions {
  return { intraOpThreads, spinning: false };
}

/**
 * Brackets every call into onnxruntime's native code (creating a session, running one). The
 * serving runtime's executor worker installs one (src/engine/executor/thread-stop.ts says why);
 * elsewhere there is none.
 */
export interface NativeCallGate {
  enter(): void;
  leave(): void;
}

let nativeCallGate: NativeCallGate | undefined;

/** Installs the gate for this thread's sessions (one per thread: modules are per thread). */
export function setNativeCallGate(gate: NativeCallGate | undefined): void {
  nativeCallGate = gate;
}

async function gated<T>(call: () => Promise<T>): Promise<T> {
  const gate = nativeCallGate;
  gate?.enter();
  try {
    return await call();
  } finally {
    gate?.leave();
  }
}

export class OnnxSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly defaultOutputs: readonly string[] | undefined,
  ) {}

  /** Creates a session from a file path or serialized model bytes. */
  static async create(model: string | Uint8Array, options: SessionOptions = {}): Promise<OnnxSession> {
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      intraOpNumThreads: options.intraOpThreads ?? 0,
      interOpNumThreads: 1,
      ...(options.spinning === false ? { extra: { session: { intra_op: { allow_spinning: '0' } } } } : {}),
    };
    const session = await gated(() =>
      typeof model === 'string'
        ? ort.InferenceSession.create(model, sessionOptions)
        : ort.InferenceSession.create(model, sessionOptions),
    );
    return new OnnxSession(session, options.outputs);
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.defaultOutputs ?? this.session.outputNames;
  }

  async run(feeds: Record<string, HostTensor>, outputs?: readonly string[]): Promise<Record<string, HostTensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) {
      ortFeeds[name] = new ort.Tensor(t.type as ort.Tensor.Type, t.data as ort.Tensor.DataType, t.dims);
    }
    const wanted = outputs ?? this.outputNames;
    const results = await gated(() => this.session.run(ortFeeds, [...wanted]));
    const out: Record<string, HostTensor> = {};
    for (const name of wanted) {
      const t = results[name];
      if (t === undefined) throw new Error(`onnxruntime returned no output '${name}'`);
      out[name] = { type: t.type, data: t.data as TensorData, dims: [...t.dims] };
    }
    return out;
  }

  async release(): Promise<void> {
    await gated(() => this.session.release());
  }
}
