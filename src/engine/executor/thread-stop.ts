/**
 * Stopping an executor worker thread without taking the process down. `Worker.terminate()` on a
 * thread that is inside onnxruntime-node's native code (a session being created or run) aborts
 * the whole process: when the native call returns, the addon calls back into a JavaScript engine
 * that is being torn down and throws a C++ exception nothing catches. So the pool and the worker
 * share one 32-bit word: the worker counts its native calls in it (`enterNative`/`leaveNative`,
 * around every onnxruntime call, through src/model/onnx-session.ts's gate), and the pool sets a
 * stop bit (`requestStop`). Whichever comes second acts, so there is no window between a check
 * and an act:
 *
 * - no native call running when the bit is set: the thread is in JavaScript (say, a busy loop),
 *   where terminating it is safe, and the pool terminates it;
 * - a native call running: the worker ends its own thread (`process.exit` in a worker ends the
 *   thread) when the last one returns, or before it would start another.
 *
 * A thread stuck for good inside a native call can then never be stopped; it is left behind,
 * unreferenced, which is the best a process can do with it.
 */

const STOP = 1 << 30;
const DEPTH = STOP - 1;

export function createStopWord(): SharedArrayBuffer {
  return new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT);
}

/** Worker side, before a native call: counts it, or ends the thread if a stop was requested. */
export function enterNative(word: Int32Array): void {
  for (;;) {
    const value = Atomics.load(word, 0);
    if (value & STOP) process.exit(0);
    if (Atomics.compareExchange(word, 0, value, value + 1) === value) return;
  }
}

/** Worker side, after a native call settled: ends the thread if a stop was requested meanwhile. */
export function leaveNative(word: Int32Array): void {
  const value = Atomics.sub(word, 0, 1) - 1;
  if (value & STOP && (value & DEPTH) === 0) process.exit(0);
}

/** Pool side: requests the stop; true when the caller must terminate the thread (no native call runs). */
export function requestStop(word: Int32Array): boolean {
  return (Atomics.or(word, 0, STOP) & DEPTH) === 0;
}
