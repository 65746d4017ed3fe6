/**
 * Executor worker thread: owns the onnxruntime sessions of one prepared model (and of the tiers
 * of a cascade in front of it) and runs batches on request. onnxruntime-node's `run` blocks the thread it is called on, which is why this is a
 * worker and not the serving thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { readManifest } from '../../model/manifest.js';
import { setNativeCallGate } from '../../model/onnx-session.js';
import { enterNative, leaveNative } from './thread-stop.js';
import { BackboneRunner } from './backbone-runner.js';
import { CascadeRunner } from './cascade-runner.js';
import type { FaultKind } from '../backend.js';
import type { FromWorker, ToWorker, WorkerInit } from './messages.js';

if (!parentPort) throw new Error('executor worker must run in a worker thread');
const port = parentPort;
const init = workerData as WorkerInit;
const send = (message: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(message, transfer);
const stopWord = new Int32Array(init.stopWord);
setNativeCallGate({ enter: () => enterNative(stopWord), leave: () => leaveNative(stopWord) });

async function start(): Promise<void> {
  let runner: BackboneRunner | CascadeRunner;
  try {
    const manifest = await readManifest(init.modelDir);
    const draws = init.probeSeed !== undefined ? { seed: init.probeSeed } : {};
    runner = init.cascade
      ? await CascadeRunner.load(
          init.modelDir,
          manifest,
          init.cascade.tiers,
          init.cascade.execution,
          init.intraOpThreads,
          draws,
        )
      : await BackboneRunner.load(init.modelDir, manifest, init.intraOpThreads, draws);
  } catch (err) {
    send({ type: 'load-error', message: (err as Error).message });
    return;
  }
  // The pool may send the next batch while one runs (so the worker never waits for the serving
  // thread); runs are chained so they never overlap.
  let queue: Promise<void> = Promise.resolve();
  port.on('message', (message: ToWorker) => {
    if (message.type === 'fault') {
      injectFault(message.fault);
      return;
    }
    if (message.type === 'close') {
      queue = queue.then(() => runner.release()).finally(() => send({ type: 'closed' }));
      return;
    }
    const { batchId, input, plan } = message;
    queue = queue.then(() =>
      runner
        .run(input, plan, (exits) => send({ type: 'exit', batchId, exits }))
        .then((result) => send({ type: 'done', batchId, result }, [result.finalProbs.buffer as ArrayBuffer]))
        .catch((err: unknown) => send({ type: 'error', batchId, message: (err as Error).message ?? String(err) })),
    );
  });
  send({ type: 'ready' });
}

/**
 * Makes a fault real on this thread, at once (between two batches, or between two segments of a
 * running batch: the point where this message is read). Thrown from the message listener, the
 * error is uncaught, so the thread dies and the pool sees its 'error' event, as with any crash.
 */
function injectFault(fault: FaultKind): void {
  switch (fault) {
    case 'crash-worker':
      throw new Error('injected fault: crash-worker');
    case 'hang-worker':
      // Spins without yielding: no message is read again, no batch answered, until the pool's
      // hang detection (server.worker_timeout_ms) terminates the thread.
      for (;;) {
        // spin
      }
  }
}

void start();
