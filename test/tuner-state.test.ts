// Tuner state across restarts, without a server: the state file (format, atomic writes, every
// reason a file is rejected), the guard's re-check of saved thresholds, a tuner resumed from a
// saved state, when the saver writes, and LiveTuning started from a restored state. The tuner
// learns on the bundled model's recorded stationary trace (test/fixtures/traces/).
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { readTrace } from '../src/cli/replay-command.js';
import { LiveTuning } from '../src/engine/live-tuning.js';
import {
  decodeTunerState,
  encodeTunerState,
  loadTunerState,
  MAX_SAVED_ROWS,
  TUNER_STATE_FORMAT,
  writeTunerState,
  type ModelIdentity,
  type RestoreContext,
  type TunerStateFile,
} from '../src/engine/tuner-state-file.js';
import { TunerStateSaver } from '../src/engine/tuner-state-saver.js';
import { createTuner } from '../tuner/create-tuner.js';
import { tally } from '../tuner/feedback-history.js';
import { realisedDisagreement, type FeedbackRecord } from '../tuner/feedback-record.js';
import {
  compactResumePoint,
  expandResumePoint,
  recheckResumePoint,
  type CompactResumePoint,
  type ResumeCheckOptions,
} from '../tuner/resume.js';
import type { GuardedTunerOptions, Tuner, TunerResumePoint } from '../tuner/tuner.js';
import { WindowEvaluator } from '../tuner/window-eval.js';
import type { TraceHeader } from '../tuner/replay.js';
import { neverPlan, PlanHostStub as Host } from './helpers/plan-host.js';

const TRACE = fileURLToPath(new URL('./fixtures/traces/fmnist-stationary.jsonl.gz', import.meta.url));
const RAMPS = [0, 3, 5];
const WINDOW = 500;
const BATCH = 10;

let header: TraceHeader;
let records: FeedbackRecord[];
let options: GuardedTunerOptions;
/** The guarded tuner after every recorded row, fed so that its last batch ended with a re-tune. */
let tuned: Tuner;
let point: TunerResumePoint;
let dir: string;

const IDENTITY: ModelIdentity = {
  name: 'fmnist-resnet',
  createdAt: '2026-01-01T00:00:00.000Z',
  modelSha256: 'ab',
  exits: 'cd',
};

function feed(tuner: Tuner, rows: readonly FeedbackRecord[]): void {
  for (let i = 0; i < rows.length; i += BATCH) tuner.observe(rows.slice(i, i + BATCH));
}

function checkOptions(overrides: Partial<ResumeCheckOptions> = {}): ResumeCheckOptions {
  return {
    kind: 'guarded',
    rule: options.rule,
    profile: options.profile,
    budget: options.budget,
    confidence: options.confidence,
    window: options.window,
    ...overrides,
  };
}

function stateFile(learned: CompactResumePoint | null, overrides: Partial<TunerStateFile> = {}): TunerStateFile {
  return {
    format: TUNER_STATE_FORMAT,
    savedAt: '2026-02-03T04:05:06.000Z',
    model: 'fmnist',
    identity: IDENTITY,
    tuner: { kind: 'guarded', policy: 'confidence', mode: 'release', budget: 0.01, confidence: 0.95, window: WINDOW },
    learned,
    pins: new Map([[5, 0.99]]),
    paused: false,
    ...overrides,
  };
}

function context(overrides: Partial<RestoreContext> = {}): RestoreContext {
  return {
    identity: IDENTITY,
    kind: 'guarded',
    rule: options.rule,
    profile: options.profile,
    accuracy: { budget: options.budget, confidence: options.confidence, window: options.window },
    exits: [0, 1, 2, 3, 4, 5, 6, 7],
    disabled: new Map(),
    ...overrides,
  };
}

beforeAll(async () => {
  ({ header, records } = await readTrace(TRACE));
  options = {
    kind: 'guarded',
    rule: { policy: header.policy, patience: 2 },
    profile: header.profile,
    budget: 0.01,
    confidence: 0.95,
    window: WINDOW,
    activeRamps: RAMPS,
    hindsight: false,
  };
  tuned = createTuner(options);
  // 10,000 rows in batches of 10: the periodic re-tune (every window / 4 = 125 rows) comes with the
  // last batch, so the thresholds in force were tested on exactly the rows the resume point holds.
  feed(tuned, records);
  point = tuned.resumePoint(MAX_SAVED_ROWS);
  dir = await mkdtemp(join(tmpdir(), 'offramp-tuner-state-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the resume point', () => {
  it("holds the tuner's thresholds and the usable rows of its tuning window", () => {
    expect(point.activeRamps).toEqual(RAMPS);
    expect(point.thresholds).toEqual(tuned.thresholds);
    // Exits opened: otherwise every check below would be about "never".
    expect([...point.thresholds.values()].some((t) => t !== null)).toBe(true);
    expect(point.records).toHaveLength(10 * WINDOW);
    expect(point.records.at(-1)).toBe(records.at(-1));
    expect(tuned.resumePoint(100).records).toEqual(point.records.slice(-100));
  });

  it('survives compaction: what the tuners read of a record is kept exactly', () => {
    const back = expandResumePoint(compactResumePoint(point), 7);
    expect(back.thresholds).toEqual(point.thresholds);
    back.records.forEach((r, i) => {
      const original = point.records[i] as FeedbackRecord;
      expect(r.exit).toBe(original.exit);
      expect(r.final?.argmax).toBe(original.final?.argmax);
      expect(r.ramps.map((x) => [x.id, x.argmax, x.score])).toEqual(
        original.ramps.filter((x) => RAMPS.includes(x.id)).map((x) => [x.id, x.argmax, x.score]),
      );
    });
    const evaluate = (rows: readonly FeedbackRecord[]) =>
      new WindowEvaluator(rows, { activeRamps: RAMPS, rule: options.rule, profile: options.profile }).evaluate(
        point.thresholds,
      );
    expect(evaluate(back.records)).toEqual(evaluate(point.records));
  });
});

describe('a ramp added at "never"', () => {
  // The older half of the rows was served before ramp 5 joined: they carry no reading of it.
  const withoutFive = (rows: readonly FeedbackRecord[]) =>
    rows.map((r, i) => (i < rows.length / 2 ? { ...r, ramps: r.ramps.filter((x) => x.id !== 5) } : r));

  it('leaves the rows it has no reading in among those the thresholds are judged on, and they stay without it', () => {
    const thresholds = new Map([...point.thresholds].map(([id, t]) => [id, id === 5 ? null : t]));
    const resumed = createTuner({ ...options, resume: { ...point, thresholds, records: withoutFive(point.records) } });
    const again = resumed.resumePoint(MAX_SAVED_ROWS);
    expect(again.records).toHaveLength(point.records.length);
    const back = expandResumePoint(compactResumePoint(again), 0);
    expect(back.records.map((r) => r.ramps.map((x) => x.id))).toEqual(
      again.records.map((r) => r.ramps.filter((x) => RAMPS.includes(x.id)).map((x) => x.id)),
    );
    expect(recheckResumePoint(back, checkOptions()).passed).toBe(true);
    // Once ramp 5 may answer, only the rows with its reading can judge the thresholds.
    const open = createTuner({ ...options, resume: { ...point, records: withoutFive(point.records) } });
    expect(open.resumePoint(MAX_SAVED_ROWS).records).toHaveLength(point.records.length / 2);
  });
});

describe("the guard's re-check", () => {
  it('passes on the rows the thresholds were tuned on', () => {
    const check = recheckResumePoint(point, checkOptions());
    expect(check).toMatchObject({ rule: 'guarded', rows: 10 * WINDOW, passed: true });
    expect(check.upperBound).toBeGreaterThan(check.disagreement as number);
  });

  it('fails the same thresholds under a tightened budget', () => {
    expect(recheckResumePoint(point, checkOptions({ budget: 0.004 })).passed).toBe(false);
  });

  it('fails when the rows disagree more than they did', () => {
    // Every 40th row that some ramp answers under the saved thresholds now disagrees with the
    // full model: about 1 % more disagreement among exits.
    const ev = new WindowEvaluator(point.records, { activeRamps: RAMPS, rule: options.rule, profile: options.profile });
    const exits = ev.evaluate(point.thresholds).exitRates;
    expect([...exits.values()].reduce((s, x) => s + x, 0)).toBeGreaterThan(0.3);
    let answered = 0;
    const worse = point.records.map((r) => {
      const scores = new Map(r.ramps.map((x) => [x.id, x]));
      const exitAt = RAMPS.find((id) => {
        const t = point.thresholds.get(id);
        return t !== null && t !== undefined && (scores.get(id)?.score ?? -Infinity) >= t;
      });
      if (exitAt === undefined || !r.final || answered++ % 40 !== 0) return r;
      const argmax = (scores.get(exitAt)?.argmax ?? 0) === 0 ? 1 : 0;
      return { ...r, final: { ...r.final, argmax } };
    });
    const check = recheckResumePoint({ ...point, records: worse }, checkOptions());
    expect(check.passed).toBe(false);
    expect(check.disagreement).toBeGreaterThan(recheckResumePoint(point, checkOptions()).disagreement as number);
  });

  it('lets "never" pass without rows; judges Apparate by its own empirical rule', () => {
    const never = { activeRamps: RAMPS, thresholds: new Map(RAMPS.map((id) => [id, null])), records: [] };
    expect(recheckResumePoint(never, checkOptions())).toMatchObject({ passed: true, rows: 0, disagreement: null });
    const apparate = recheckResumePoint(point, checkOptions({ kind: 'apparate' }));
    expect(apparate).toMatchObject({ rule: 'apparate', upperBound: null, passed: true });
    expect(recheckResumePoint(point, checkOptions({ kind: 'apparate', budget: 0.001 })).passed).toBe(false);
  });
});

describe('a resumed tuner', () => {
  it('serves the saved thresholds from its first batch, with estimates from the saved rows', () => {
    const resumed = createTuner({ ...options, activeRamps: [1, 2], resume: point });
    expect(resumed.activeRamps).toEqual(RAMPS);
    expect(resumed.thresholds).toEqual(point.thresholds);
    const window = point.records.slice(-WINDOW);
    const { k, n } = tally(window.map((record) => ({ record, disagrees: realisedDisagreement(record), batch: 0 })));
    expect(resumed.estimates).toMatchObject({ windowRows: WINDOW, windowDisagreement: k / n, learning: false });
    // Fewer rows than a re-tune needs: nothing changes.
    expect(resumed.observe(records.slice(0, BATCH))).toEqual([]);
    expect(resumed.thresholds).toEqual(point.thresholds);
  });

  it('re-tunes on the saved rows and the new ones, where a fresh tuner has too few rows to open any exit', () => {
    const resumed = createTuner({ ...options, resume: point });
    const fresh = createTuner(options);
    const more = records.slice(0, WINDOW / 4);
    feed(resumed, more);
    feed(fresh, more);
    expect(resumed.estimates.retunes).toBe(1);
    expect(resumed.estimates.tuningRows).toBe(10 * WINDOW);
    expect([...resumed.thresholds.values()].some((t) => t !== null)).toBe(true);
    expect([...fresh.thresholds.values()].every((t) => t === null)).toBe(true);
  });
});

describe('the state file', () => {
  it('round-trips through its text', () => {
    const state = stateFile(compactResumePoint(point), { paused: true });
    const back = decodeTunerState(encodeTunerState(state));
    expect(back).toEqual(state);
  });

  it('is written atomically: a write that fails leaves the old file and no temporary one', async () => {
    const path = join(dir, 'atomic.tuner.json');
    await writeTunerState(path, stateFile(null));
    expect((await readdir(dir)).filter((n) => n.startsWith('atomic.'))).toEqual(['atomic.tuner.json']);
    // A directory where the file goes: the rename fails after the temporary file was written.
    const blocked = join(dir, 'blocked.tuner.json');
    await mkdir(blocked);
    await expect(writeTunerState(blocked, stateFile(null))).rejects.toThrow();
    expect((await readdir(dir)).filter((n) => n.startsWith('blocked.'))).toEqual(['blocked.tuner.json']);
  });

  it('survives a process killed while writing: the file is the old one or the new one, whole', async () => {
    const path = join(dir, 'crash.tuner.json');
    // A large state (≈ 1.2 MB) written over and over by a child process, killed at random moments.
    const big = stateFile(compactResumePoint({ ...point, records: [...point.records, ...point.records] }));
    await writeTunerState(path, big);
    const script = join(dir, 'writer.mts');
    const moduleUrl = pathToFileURL(fileURLToPath(new URL('../src/engine/tuner-state-file.ts', import.meta.url)));
    await writeFile(
      script,
      [
        `import { decodeTunerState, writeTunerState } from ${JSON.stringify(moduleUrl.href)};`,
        `import { readFileSync } from 'node:fs';`,
        `const state = decodeTunerState(readFileSync(${JSON.stringify(path)}, 'utf8'));`,
        `process.stdout.write('ready\\n');`,
        `for (let i = 0; ; i++) await writeTunerState(${JSON.stringify(path)}, { ...state, savedAt: new Date(i).toISOString() });`,
      ].join('\n'),
    );
    const repo = fileURLToPath(new URL('..', import.meta.url));
    for (let round = 0; round < 3; round++) {
      const child = spawn(process.execPath, ['--import', 'tsx', script], {
        cwd: repo,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      await new Promise<void>((resolve, reject) => {
        child.stdout.once('data', () => resolve());
        child.once('exit', () => reject(new Error(`the writer exited early: ${stderr}`)));
      });
      await new Promise((resolve) => setTimeout(resolve, 100 + 97 * round));
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
      const text = await readFile(path, 'utf8');
      expect(decodeTunerState(text).learned?.rows.count).toBe(2 * 10 * WINDOW);
    }
    // Each kill that landed mid-write left its temporary file.
    const strays = (await readdir(dir)).filter((n) => n.startsWith('crash.tuner.json.') && n.endsWith('.tmp'));
    console.log(`crash test: ${strays.length} of 3 killed writers left a temporary file (cleared at the next start)`);
    // What a killed write left behind is cleared when the state is next loaded.
    await loadTunerState(path, context());
    expect((await readdir(dir)).filter((n) => n.startsWith('crash.'))).toEqual(['crash.tuner.json']);
  }, 60_000);
});

describe('restoring a saved state', () => {
  const save = async (name: string, state: TunerStateFile): Promise<string> => {
    const path = join(dir, `${name}.tuner.json`);
    await writeTunerState(path, state);
    return path;
  };

  it('restores thresholds, ramps, rows, pins and pause when the re-check passes', async () => {
    const path = await save('ok', stateFile(compactResumePoint(point), { paused: true }));
    const loaded = await loadTunerState(path, context());
    expect(loaded.rejected).toBeUndefined();
    expect(loaded.line).toMatch(/re-check passed \(guarded rule on 5000 rows: disagreement [\d.]+ %, upper bound/);
    const restored = loaded.restored;
    expect(restored?.resume?.thresholds).toEqual(point.thresholds);
    expect(restored?.resume?.records).toHaveLength(point.records.length);
    expect(restored?.pins).toEqual(new Map([[5, 0.99]]));
    expect(restored?.paused).toBe(true);
    expect(restored?.report).toMatchObject({ from: 'file', rows: 5000, recheck: { passed: true } });
  });

  it('keeps pins and pause but not the thresholds when the re-check fails', async () => {
    const path = await save('tight', stateFile(compactResumePoint(point)));
    const loaded = await loadTunerState(
      path,
      context({ accuracy: { budget: 0.004, confidence: 0.95, window: WINDOW } }),
    );
    expect(loaded.line).toMatch(/re-check failed .*the tuner starts as configured; pins 5 → 0.99/);
    expect(loaded.restored?.resume).toBeUndefined();
    expect(loaded.restored?.pins).toEqual(new Map([[5, 0.99]]));
    expect(loaded.restored?.report.recheck?.passed).toBe(false);
  });

  it('restores only pins for a static model', async () => {
    const path = await save(
      'static',
      stateFile(null, { tuner: { ...stateFile(null).tuner, kind: 'static' }, paused: true }),
    );
    const loaded = await loadTunerState(path, context({ kind: 'static' }));
    expect(loaded.restored).toMatchObject({
      pins: new Map([[5, 0.99]]),
      paused: false,
      report: { rows: 0, recheck: null },
    });
  });

  it('rejects, with the reason, every file it must not use', async () => {
    const learned = compactResumePoint(point);
    const cases: [string, TunerStateFile | string, Partial<RestoreContext>, RegExp][] = [
      ['not-json', '{"format": "offramp.tuner-state/1", "savedAt', {}, /is corrupt: not JSON/],
      ['truncated', encodeTunerState(stateFile(learned)).slice(0, 4000), {}, /is corrupt: not JSON/],
      [
        'version',
        encodeTunerState(stateFile(learned)).replace(TUNER_STATE_FORMAT, 'offramp.tuner-state/2'),
        {},
        /format "offramp.tuner-state\/2"/,
      ],
      [
        'columns',
        encodeTunerState(stateFile(learned)).replace(/"count":5000/, '"count":4999'),
        {},
        /rows.exit holds 20000 bytes, not 19996/,
      ],
      [
        'prepared',
        stateFile(learned),
        { identity: { ...IDENTITY, createdAt: '2026-03-01T00:00:00.000Z' } },
        /saved for fmnist-resnet prepared 2026-01-01/,
      ],
      ['exits', stateFile(learned), { identity: { ...IDENTITY, exits: 'ef' } }, /ramps or cascade tiers are not those/],
      ['kind', stateFile(learned), { kind: 'apparate' }, /saved by tuner guarded; the model now has tuner apparate/],
      [
        'policy',
        stateFile(learned),
        { rule: { policy: 'margin', patience: 2 } },
        /saved under the confidence policy; the model now has margin/,
      ],
      ['gone', stateFile(learned), { exits: [0, 1, 2, 3] }, /names ramp 5, which the model no longer has/],
      [
        'disabled',
        stateFile(learned),
        { disabled: new Map([[3, 'head file missing']]) },
        /names ramp 3, which is disabled \(head file missing\)/,
      ],
    ];
    for (const [name, state, overrides, reason] of cases) {
      const path = join(dir, `${name}.tuner.json`);
      if (typeof state === 'string') await writeFile(path, state);
      else await writeTunerState(path, state);
      const loaded = await loadTunerState(path, context(overrides));
      expect(loaded.rejected, name).toBe(true);
      expect(loaded.restored, name).toBeUndefined();
      expect(loaded.line, name).toMatch(reason);
      expect(loaded.line, name).toMatch(/; starting as configured/);
    }
    const unreadable = join(dir, 'unreadable.tuner.json');
    await mkdir(unreadable);
    expect((await loadTunerState(unreadable, context())).line).toMatch(/cannot be read \(EISDIR\)/);
    const missing = await loadTunerState(join(dir, 'missing.tuner.json'), context());
    expect(missing).toEqual({
      line: expect.stringMatching(/^no saved tuner state at .*missing.tuner.json/) as unknown,
    });
  });
});

describe('the saver', () => {
  const saver = (overrides: { fed?: () => number; write?: (path: string, state: TunerStateFile) => Promise<void> }) => {
    const writes: TunerStateFile[] = [];
    const lines: string[] = [];
    const s = new TunerStateSaver({
      path: join(dir, 'saver.tuner.json'),
      state: () => Promise.resolve(stateFile(null)),
      fedRows: overrides.fed ?? (() => 0),
      log: (line) => lines.push(line),
      debounceMs: 1000,
      intervalMs: 5000,
      write:
        overrides.write ??
        ((_path, state) => {
          writes.push(state);
          return Promise.resolve();
        }),
    });
    return { s, writes, lines };
  };

  it('writes a change at once, and the changes that follow within the debounce together after it', async () => {
    vi.useFakeTimers();
    try {
      const { s, writes } = saver({});
      s.changed();
      await vi.advanceTimersByTimeAsync(0);
      expect(writes).toHaveLength(1);
      s.changed();
      await vi.advanceTimersByTimeAsync(500);
      s.changed();
      await vi.advanceTimersByTimeAsync(499);
      expect(writes).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(1);
      expect(writes).toHaveLength(2);
      await s.close();
      expect(writes).toHaveLength(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it('writes every interval while feedback flows, and what is pending at close; nothing when nothing happened', async () => {
    vi.useFakeTimers();
    try {
      let fed = 0;
      const { s, writes } = saver({ fed: () => fed });
      await vi.advanceTimersByTimeAsync(5000);
      expect(writes).toHaveLength(0);
      fed = 10;
      await vi.advanceTimersByTimeAsync(5000);
      expect(writes).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(5000);
      expect(writes).toHaveLength(1);
      fed = 20;
      await s.close();
      expect(writes).toHaveLength(2);
      const idle = saver({});
      await idle.s.close();
      expect(idle.writes).toHaveLength(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('logs one line for failing writes, and one when writing works again', async () => {
    let fail = true;
    const { s, lines } = saver({
      write: () => (fail ? Promise.reject(new Error('ENOSPC: no space left on device')) : Promise.resolve()),
    });
    s.changed();
    await new Promise((resolve) => setTimeout(resolve, 1100));
    s.changed();
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect(lines).toEqual([expect.stringMatching(/^cannot write the tuner state to .*saver.tuner.json \(ENOSPC/)]);
    fail = false;
    await s.close();
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/written to .* again/);
  });
});

describe('LiveTuning from a restored state', () => {
  const NEVER = neverPlan([1, 2]);

  it('serves the saved ramps and thresholds with the pins on top, paused as it was left, and saves what it learns', async () => {
    const host = new Host(NEVER);
    const report = { from: 'file' as const, savedAt: '2026-02-03T04:05:06.000Z', rows: 5000, recheck: null };
    const tuning = new LiveTuning(host, {
      kind: 'guarded',
      profile: options.profile,
      accuracy: { budget: 0.01, confidence: 0.95, window: WINDOW },
      thread: false,
      restore: { resume: point, pins: new Map([[5, 0.99]]), paused: true, report },
    });
    expect(host.exitPlan.ramps).toEqual(
      RAMPS.map((id) => ({ id, threshold: id === 5 ? 0.99 : point.thresholds.get(id) })),
    );
    expect(tuning.state()).toMatchObject({ paused: true, restored: report });
    let changes = 0;
    tuning.onStateChange = () => changes++;
    host.onFeedback?.(records.slice(0, 200));
    expect(tuning.fedRows).toBe(200);
    const saved = await tuning.saveable();
    expect(saved?.tuner).toEqual({
      kind: 'guarded',
      policy: 'confidence',
      mode: 'release',
      budget: 0.01,
      confidence: 0.95,
      window: WINDOW,
    });
    expect(saved?.paused).toBe(true);
    expect(saved?.pins).toEqual(new Map([[5, 0.99]]));
    expect(saved?.learned?.rows.count).toBe(5000);
    tuning.unpin();
    expect(changes).toBeGreaterThanOrEqual(1);
    await tuning.close();
  });
});
