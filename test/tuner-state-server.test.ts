/**
 * Tuner state across a restart, end to end: a real server on the bundled image model with the
 * guarded tuner starting from "never" and a `server.state_dir`, real HTTP. Traffic until the tuner
 * opened exits, a graceful close (which saves the state), then a new server on the same folder:
 * its first requests are answered early, with the saved thresholds. Without the file, or under a
 * budget tightened so far that the guard's re-check fails, they are not.
 *
 * Requests go one row at a time, one after another: every batch is one row, so the tuner sees the
 * same rows in the same order on every run, and its periodic re-tune (every window / 4 rows) comes
 * right after each group of GROUP rows.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExitsReport } from '../src/data-plane/types.js';
import { decodeTunerState, tunerStatePath } from '../src/engine/tuner-state-file.js';
import type { HostTensor } from '../src/model/tensor.js';
import { startServer, type RunningServer } from '../src/server.js';
import { bundledConfig, TEST_SERVER, testImages } from './helpers/bundled.js';
import { pixelsInput, postInfer } from './helpers/infer.js';

const WINDOW = 200;
/** Rows between the tuner's periodic re-tunes (window / 4). */
const GROUP = WINDOW / 4;
/** Rows served before the restart at most, and after it. */
const BEFORE_MAX = 3000;
const FIRST = 50;
const PIXELS = 28 * 28;

let images: HostTensor;
const dirs: string[] = [];

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'offramp-state-server-'));
  dirs.push(dir);
  return dir;
}

async function serve(stateDir: string, budget = 0.02): Promise<{ server: RunningServer; base: string; log: string[] }> {
  const log: string[] = [];
  const config = bundledConfig(
    'tuner-state-server.yaml',
    [
      // Ramp-set changes off: the test is about thresholds surviving a restart.
      'tuner: { kind: guarded, start: never, interval_batches: 100000 }',
      `accuracy: { budget: ${budget}, window: ${WINDOW} }`,
      'exits: { mode: release }',
      'slo: { latency_ms: 60000 }',
    ],
    `${TEST_SERVER}, state_dir: ${JSON.stringify(stateDir)}`,
  );
  const server = await startServer(config, { version: 'test', log: (line) => log.push(line) });
  return { server, base: `http://127.0.0.1:${server.httpPort}`, log };
}

/** Serves rows `from`..`to` − 1 one request at a time; the exit that answered each. */
async function serveRows(base: string, from: number, to: number): Promise<number[]> {
  const exits: number[] = [];
  for (let i = from; i < to; i++) {
    const row: HostTensor = {
      type: images.type,
      dims: [1, 1, 28, 28],
      data: (images.data as Float32Array).subarray(i * PIXELS, (i + 1) * PIXELS),
    };
    const answer = await postInfer(base, 'fmnist', [pixelsInput(row)]);
    expect(answer.status).toBe(200);
    exits.push(answer.parameters['exit_ramp'] as number);
  }
  return exits;
}

async function exitsReport(base: string): Promise<ExitsReport> {
  return (await (await fetch(`${base}/v2/models/fmnist/exits`)).json()) as ExitsReport;
}

const open = (report: ExitsReport): boolean => report.ramps.some((r) => r.active && r.threshold !== null);

let stateDir: string;
/** Rows served before the restart. */
let served = 0;

beforeAll(async () => {
  images = await testImages(BEFORE_MAX + 4 * FIRST);
  stateDir = await tempDir();
  const { server, base } = await serve(stateDir);
  try {
    // Until the tuner's exits are open (the state heard from its thread may lag a group).
    while (served < BEFORE_MAX) {
      await serveRows(base, served, served + GROUP);
      served += GROUP;
      await new Promise((resolve) => setTimeout(resolve, 50));
      if (open(await exitsReport(base))) break;
    }
  } finally {
    await server.close();
  }
}, 180_000);

afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('a restarted server', () => {
  it('found a saved state with open exits after a graceful close', async () => {
    console.log(`exits opened after ${served} rows from "never"`);
    expect(served).toBeLessThan(BEFORE_MAX);
    const state = decodeTunerState(await readFile(tunerStatePath(stateDir, 'fmnist'), 'utf8'));
    expect(state.tuner).toMatchObject({ kind: 'guarded', policy: 'confidence', mode: 'release', budget: 0.02 });
    expect([...(state.learned?.thresholds.values() ?? [])].some((t) => t !== null)).toBe(true);
    // Every row is a probe in release mode; the tuner keeps its tuning window (10 windows).
    expect(state.learned?.rows.count).toBe(Math.min(served, 10 * WINDOW));
  });

  it('answers early from its first requests, with the saved thresholds', async () => {
    const saved = decodeTunerState(await readFile(tunerStatePath(stateDir, 'fmnist'), 'utf8'));
    const { server, base, log } = await serve(stateDir);
    try {
      const report = await exitsReport(base);
      expect(report.tuner.restored).toMatchObject({ from: 'file', recheck: { passed: true } });
      expect(Object.fromEntries(report.ramps.filter((r) => r.active).map((r) => [r.id, r.threshold]))).toEqual(
        Object.fromEntries(saved.learned?.thresholds ?? []),
      );
      const restoredLine = log.find((line) => /model fmnist: restored from .* the guard's re-check passed/.test(line));
      console.log(restoredLine);
      expect(restoredLine).toBeDefined();
      const exits = await serveRows(base, served, served + FIRST);
      const early = exits.filter((e) => e >= 0).length;
      console.log(`with the saved state: ${early} of the first ${FIRST} rows answered early`);
      expect(early).toBeGreaterThan(0);
    } finally {
      await server.close();
    }
  });

  it('does not without the state file', async () => {
    const { server, base, log } = await serve(await tempDir());
    try {
      expect((await exitsReport(base)).tuner.restored).toBeNull();
      expect(log.some((line) => /no saved tuner state at /.test(line))).toBe(true);
      const exits = await serveRows(base, served + FIRST, served + 2 * FIRST);
      expect(exits.filter((e) => e >= 0)).toEqual([]);
    } finally {
      await server.close();
    }
  });

  it("does not under a budget tightened so far that the guard's re-check fails", async () => {
    const { server, base, log } = await serve(stateDir, 0.002);
    try {
      const report = await exitsReport(base);
      expect(report.tuner.restored).toMatchObject({ from: 'file', recheck: { passed: false } });
      expect(report.ramps.filter((r) => r.active).every((r) => r.threshold === null)).toBe(true);
      expect(log.some((line) => /the guard's re-check failed/.test(line))).toBe(true);
      const exits = await serveRows(base, served + 2 * FIRST, served + 3 * FIRST);
      expect(exits.filter((e) => e >= 0)).toEqual([]);
    } finally {
      await server.close();
    }
  });
});
