/**
 * What the bench process and its load-generator child processes exchange, as files: the parent
 * writes a job, the child writes what it measured. Plain JSON so that the child stays small and
 * imports nothing from the runtime.
 */

import type { BodyFormat } from './request-body.js';

/** Request bodies file: one pre-serialised KServe v2 JSON body per line, line i = test item i. */
export type BodiesFile = string;

/** An open-loop job: send body `items[i]` at `offsetsMs[i]` after the start, whatever is outstanding. */
export interface OpenLoopJob {
  url: string;
  bodiesPath: BodiesFile;
  /** How each body goes on the wire: KServe v2 binary tensor data, or the JSON line as it is. */
  body: BodyFormat;
  /** Scheduled send times in ms from the start, ascending. */
  offsetsMs: number[];
  /** Test item (= line of the bodies file) sent by each request. */
  items: number[];
  /** Give up on a request after this long (counted as status 0). */
  timeoutMs: number;
  /** Where the child writes its OpenLoopResult. */
  outPath: string;
}

/**
 * Per request, columns of equal length in send order. Latency counts from the *scheduled* send
 * time, so a client that falls behind its schedule shows up as latency rather than being hidden
 * (no coordinated omission); `sendLagMs` says how far behind the client itself was.
 */
export interface OpenLoopResult {
  latencyMs: number[];
  sendLagMs: number[];
  /** HTTP status; 0 when the connection failed or timed out. */
  status: number[];
  /** Predicted class of the single row; -1 when the request failed. */
  predicted: number[];
  /**
   * Exit that answered (-1 = full model); null when the request failed. With a cascade, exits
   * 0..T−1 are its tiers and T + r is the backbone's ramp r (src/model/cascade.ts).
   */
  exitRamp: (number | null)[];
  /**
   * The response's `tier` parameter: the cascade tier that answered, 0-based, T = the served model;
   * null without a cascade or when the request failed.
   */
  tier: (number | null)[];
  /**
   * Why a request failed: the error code from the body of a non-200 answer (e.g.
   * OFFRAMP_QUEUE_FULL), or CLIENT_TIMEOUT / CLIENT_CONNECTION_ERROR for status 0; else null.
   */
  errorCode: (string | null)[];
  /** From the first scheduled send to the last answer, in seconds. */
  elapsedS: number;
}

/** What the closed-loop (saturating) client prints as one JSON line. */
export interface ClosedLoopResult {
  requests: number;
  errors: number;
  /** The errors by HTTP status ("0": no answer: a timeout or a failed connection), as capacity probes count them. */
  errors_by_status: Record<string, number>;
  seconds: number;
  rps: number;
  p50: number;
  p99: number;
}
