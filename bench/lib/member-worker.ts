/**
 * One cascade member on its own worker thread, for bench/cascade-execution.ts's "parallel" way:
 * it loads the member's graph (workerData.model, member `index` of its tier), says so, then answers every posted batch once
 * its session has run it (the probabilities go back too, as a parallel tier would need them).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { memberOutput } from '../../src/model/cascade.js';
import { OnnxSession, servingSessionOptions } from '../../src/model/onnx-session.js';
import type { BatchInput } from '../../src/engine/backend.js';

const port = parentPort;
if (!port) throw new Error('member-worker must run in a worker thread');
const { model, index } = workerData as { model: Uint8Array; index: number };
const session = await OnnxSession.create(model, servingSessionOptions(1));
const output = memberOutput(index);
port.on('message', (feeds: BatchInput) => {
  void session.run(feeds, [output]).then((out) => port.postMessage(out[output]?.data));
});
port.postMessage('ready');
