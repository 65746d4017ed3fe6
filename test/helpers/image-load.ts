/**
 * A bounded real load for end-to-end tests: a few HTTP clients, each sending one real
 * Fashion-MNIST test image per request to a running server (KServe v2 JSON), pausing between
 * requests so that together they offer about `ratePerS`. At most `clients` requests are in flight,
 * so a slow server slows the load instead of piling it up; the pauses are jittered (0.5–1.5 × the
 * mean) so that per-interval figures vary as real traffic's do.
 */
import { testImages } from './bundled.js';

export interface ImageLoadOptions {
  /** Requests a second offered by all clients together (less when the server is slower). */
  ratePerS: number;
  clients?: number;
  /** Distinct test images cycled through, from the start of the test set. */
  images?: number;
}

export interface ImageLoad {
  readonly sent: number;
  readonly answered: number;
  /** The first few answers other than 200 ("503 OFFRAMP_…") or connection errors. */
  readonly failures: readonly string[];
  /** Stops every client and waits for its request in flight. */
  stop(): Promise<void>;
}

const KEPT_FAILURES = 10;

export async function startImageLoad(base: string, model: string, options: ImageLoadOptions): Promise<ImageLoad> {
  const clients = options.clients ?? 2;
  const count = options.images ?? 200;
  const images = await testImages(count);
  const pixels = images.data as Float32Array;
  const rowLength = pixels.length / count;
  const bodies = Array.from({ length: count }, (_, i) =>
    JSON.stringify({
      inputs: [
        {
          name: 'pixels',
          shape: [1, ...images.dims.slice(1)],
          datatype: 'FP32',
          data: Array.from(pixels.subarray(i * rowLength, (i + 1) * rowLength)),
        },
      ],
    }),
  );
  const meanPauseMs = (1000 * clients) / options.ratePerS;
  const url = `${base}/v2/models/${encodeURIComponent(model)}/infer`;
  let running = true;
  let sent = 0;
  let answered = 0;
  const failures: string[] = [];
  const fail = (what: string) => {
    if (failures.length < KEPT_FAILURES) failures.push(what);
  };

  const client = async () => {
    while (running) {
      const started = Date.now();
      const body = bodies[sent++ % count]!;
      try {
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        const text = await res.text();
        if (res.status === 200) answered++;
        else fail(`${res.status} ${text.slice(0, 200)}`);
      } catch (error) {
        if (running) fail(String(error));
      }
      const pause = meanPauseMs * (0.5 + Math.random()) - (Date.now() - started);
      if (running && pause > 0) await new Promise((resolve) => setTimeout(resolve, pause));
    }
  };
  const done = Promise.all(Array.from({ length: clients }, client));

  return {
    get sent() {
      return sent;
    },
    get answered() {
      return answered;
    },
    failures,
    async stop() {
      running = false;
      await done;
    },
  };
}
