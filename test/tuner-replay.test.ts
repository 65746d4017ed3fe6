// Replaying traces through the tuners as if live — the bundled model's recorded traces
// (test/fixtures/traces/) and synthetic ones: the budget per 1,000-row window, savings against
// hindsight, recovery after a shift, and the `offramp replay` command.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { readTrace, registerReplayCommand, resampleRecords } from '../src/cli/replay-command.js';
import { calibratedStartRate, calibratedThresholds } from '../tuner/calibration.js';
import { evaluateWindow } from '../tuner/window-eval.js';
import { replayTrace, type ReplayReport } from '../tuner/replay.js';
import { EASY, SHIFTED, syntheticTrace, toJsonl } from './fixtures/synthetic-trace.js';
import { BUNDLED_DIR } from './helpers/bundled.js';

function line(name: string, r: ReplayReport): string {
  const f = (x: number | null | undefined, digits = 1): string =>
    x === null || x === undefined ? '-' : `${(x * 100).toFixed(digits)}%`;
  return (
    `${name}: ${r.windows.filter((w) => w.withinBudget).length}/${r.windows.length} windows within budget, ` +
    `disagreement ${f(r.overallDisagreement, 2)}, savings ${f(r.meanSavings)}` +
    (r.compliantHindsight
      ? `, compliant hindsight ${f(r.compliantHindsight.savings)} (${f(r.fractionOfCompliantHindsight)} of it)`
      : '') +
    (r.meanHindsightSavings !== null
      ? `, per-window hindsight ${f(r.meanHindsightSavings)} (${f(r.fractionOfHindsight)})`
      : '')
  );
}

// A 100,000-row guarded replay takes ~35 s on an idle 2-core machine and several times that
// when other test files share the cores (the zoo's splitting tests in CI). The timeout is only a
// guard against a hang, so these get a generous one rather than the suite's default.
const LONG_REPLAY_TIMEOUT_MS = 600_000;

describe("replay on the bundled model's recorded traces", () => {
  // `offramp record` over the Fashion-MNIST test split, reordered by test/fixtures/make-traces.ts:
  // stationary = shuffled; shifted = the five easiest classes first, the five hardest after.
  const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/traces/${name}`, import.meta.url));
  const RAMPS = [0, 3, 5];

  it(
    'stationary: the budget holds in ≥ 99 % of 1,000-row windows, with ≥ 90 % of the compliant hindsight savings',
    async () => {
      const { header, records } = await readTrace(fixture('fmnist-stationary.jsonl.gz'));
      // 100 windows drawn with replacement from the 10,000 recorded rows: i.i.d. traffic from the
      // same distribution, long enough for "99 % of windows" to mean something.
      // The reference is found on the recorded rows, the distribution the stream is drawn from.
      const stream = resampleRecords(records, 100_000, 1);
      const report = replayTrace(header, stream, { kind: 'guarded', activeRamps: RAMPS, population: records });
      console.log(line('recorded stationary (100 windows), guarded', report));
      expect(report.windows).toHaveLength(100);
      expect(report.withinBudgetFraction).toBeGreaterThanOrEqual(0.99);
      // Measured 94.4 % here (seed 1); seeds 2 and 3 gave 91.9 % and 91.7 %.
      expect(report.fractionOfCompliantHindsight).toBeGreaterThanOrEqual(0.9);
    },
    LONG_REPLAY_TIMEOUT_MS,
  );

  it('stationary, as recorded: every window within budget; apparate and static beside it', async () => {
    const { header, records } = await readTrace(fixture('fmnist-stationary.jsonl.gz'));
    const guarded = replayTrace(header, records, { kind: 'guarded', activeRamps: RAMPS });
    console.log(line('recorded stationary (10 windows), guarded', guarded));
    expect(guarded.withinBudgetFraction).toBe(1);
    expect(guarded.meanSavings).toBeGreaterThan(0.2);
    for (const tuner of ['apparate', 'static'] as const) {
      const report = replayTrace(header, records, { kind: tuner, activeRamps: RAMPS, hindsight: false });
      console.log(line(`recorded stationary (10 windows), ${tuner}`, report));
      expect(report.windows).toHaveLength(10);
    }
  });

  it('guarded from the calibrated start: saves in the first window and keeps the budget in every window', async () => {
    // The start is prepare's calibration at the window-safe rate, from the solo-exit curves the
    // trace header carries; from "never", the first window only pays for the heads.
    for (const name of ['fmnist-stationary.jsonl.gz', 'fmnist-shifted.jsonl.gz']) {
      const { header, records } = await readTrace(fixture(name));
      const options = { kind: 'guarded', activeRamps: RAMPS, hindsight: false } as const;
      const never = replayTrace(header, records, options);
      const calibrated = replayTrace(header, records, { ...options, start: 'calibrated' });
      console.log(
        `${name}: window 0 savings from never ${(never.windows[0]!.savings * 100).toFixed(1)}%, ` +
          `from calibrated ${(calibrated.windows[0]!.savings * 100).toFixed(1)}%; ` +
          line('calibrated start', calibrated),
      );
      expect(Object.values(never.startThresholds).every((t) => t === null)).toBe(true);
      expect(Object.values(calibrated.startThresholds).every((t) => t !== null)).toBe(true);
      expect(never.windows[0]!.savings).toBeLessThan(0);
      expect(calibrated.windows[0]!.savings).toBeGreaterThan(0.2);
      expect(calibrated.withinBudgetFraction).toBe(1);
      expect(calibrated.meanSavings).toBeGreaterThan(never.meanSavings);
    }
  });

  it('shifted: back under budget within 2 windows of the shift', async () => {
    const { header, records } = await readTrace(fixture('fmnist-shifted.jsonl.gz'));
    const shiftWindow = 5;
    const report = replayTrace(header, records, { kind: 'guarded', activeRamps: RAMPS, hindsight: false });
    console.log(
      line('recorded shifted, guarded', report),
      '| windows from the shift:',
      report.windows
        .slice(shiftWindow)
        .map((w) => `${(w.disagreement * 100).toFixed(2)}%`)
        .join(' '),
    );
    expect(report.windows).toHaveLength(10);
    expect(report.windows.slice(shiftWindow + 2).every((w) => w.withinBudget)).toBe(true);
    // The easy half let the tuner open far more than the hard half can bear: it did pull back.
    const savings = (ws: typeof report.windows): number => ws.reduce((s, w) => s + w.savings, 0) / ws.length;
    expect(savings(report.windows.slice(shiftWindow + 1))).toBeLessThan(savings(report.windows.slice(2, shiftWindow)));
    const apparate = replayTrace(header, records, { kind: 'apparate', activeRamps: RAMPS, hindsight: false });
    console.log(line('recorded shifted, apparate', apparate));
  });
});

describe("replay on a long shifted stream from the bundled model's trace", () => {
  // The recorded shifted trace is 10 windows: the guarded tuner never leaves its first phase
  // (learning on a third of the tuning window). Here the shift comes after 30 windows, when older
  // rows learn the path and the whole tuning window tests it (tuner/guarded-tuner.ts).
  it('shifted after 30 windows: back under budget within 2 windows of the shift', async () => {
    const { header, records } = await readTrace(
      fileURLToPath(new URL('./fixtures/traces/fmnist-shifted.jsonl.gz', import.meta.url)),
    );
    const easy = records.slice(0, records.length / 2);
    const hard = records.slice(records.length / 2);
    const shiftWindow = 30;
    const stream = [...resampleRecords(easy, shiftWindow * 1000, 1), ...resampleRecords(hard, 20_000, 101)];
    const report = replayTrace(header, stream, { kind: 'guarded', activeRamps: [0, 3, 5], hindsight: false });
    console.log(
      line('long shifted, guarded', report),
      '| windows from the shift:',
      report.windows
        .slice(shiftWindow)
        .map((w) => `${(w.disagreement * 100).toFixed(1)}%`)
        .join(' '),
    );
    expect(report.windows).toHaveLength(50);
    expect(report.windows.slice(shiftWindow + 2).every((w) => w.withinBudget)).toBe(true);
    // It was in the older-rows phase, and still exits after the shift.
    expect(report.windows.slice(shiftWindow + 2).reduce((sum, w) => sum + w.savings, 0)).toBeGreaterThan(0);
  });
});

describe('replay on a synthetic stationary trace', () => {
  const { header, records } = syntheticTrace({ rows: 100_000, seed: 7 });

  it(
    'guarded keeps ≥ 99 % of 1,000-row windows within budget',
    () => {
      const report = replayTrace(header, records, { kind: 'guarded', hindsight: false });
      console.log(line('synthetic stationary, guarded', report));
      expect(report.windows).toHaveLength(100);
      expect(report.withinBudgetFraction).toBeGreaterThanOrEqual(0.99);
      expect(report.overallDisagreement).toBeLessThanOrEqual(0.006);
      expect(report.meanSavings).toBeGreaterThan(0.25);
      expect(report.trajectory).toHaveLength(100);
    },
    LONG_REPLAY_TIMEOUT_MS,
  );

  it('apparate and static run on the same trace', () => {
    const part = records.slice(0, 20_000);
    for (const tuner of ['apparate', 'static'] as const) {
      const report = replayTrace(header, part, { kind: tuner, hindsight: false });
      console.log(line(`synthetic stationary (first 20 windows), ${tuner}`, report));
      expect(report.windows).toHaveLength(20);
      expect(report.meanSavings).toBeGreaterThan(0);
    }
  });
});

describe('replay on a synthetic shifted trace', () => {
  // Half-way, rows get harder and the ramps overconfident: the same thresholds disagree more.
  const shiftAt = 10_000;
  const { header, records } = syntheticTrace({ rows: 20_000, seed: 8, regime: (i) => (i < shiftAt ? EASY : SHIFTED) });
  const shiftWindow = shiftAt / 1000;

  it('the shift breaks thresholds that held before it', () => {
    const report = replayTrace(header, records, { kind: 'static', hindsight: false });
    const before = report.windows.slice(2, shiftWindow);
    const after = report.windows.slice(shiftWindow);
    const mean = (ws: typeof before): number => ws.reduce((s, w) => s + w.disagreement, 0) / ws.length;
    expect(mean(after)).toBeGreaterThan(2 * mean(before));
    expect(after.some((w) => !w.withinBudget)).toBe(true);
  });

  it('guarded is back under budget within 2 windows of the shift', () => {
    const report = replayTrace(header, records, { kind: 'guarded' });
    console.log(
      line('shifted, guarded', report),
      '| windows after the shift:',
      report.windows
        .slice(shiftWindow, shiftWindow + 3)
        .map((w) => `${(w.disagreement * 100).toFixed(2)}%`)
        .join(' '),
    );
    expect(report.windows.slice(0, shiftWindow).every((w) => w.withinBudget)).toBe(true);
    expect(report.windows.slice(shiftWindow + 2).every((w) => w.withinBudget)).toBe(true);
    // It reacted: a tightening after the shift, and exits again afterwards.
    expect(report.events.some((e) => e.afterRow > shiftAt && e.event.type === 'tighten')).toBe(true);
    expect(report.windows.at(-1)?.savings).toBeGreaterThan(0.05);
  });

  it('apparate runs on the same trace', () => {
    const report = replayTrace(header, records, { kind: 'apparate' });
    console.log(line('shifted, apparate', report));
    expect(report.windows).toHaveLength(20);
  });
});

describe('replay mechanics', () => {
  const { header, records } = syntheticTrace({ rows: 3000, seed: 9 });

  it('with fixed thresholds, each window is exactly the window evaluation of those thresholds', () => {
    const thresholds = new Map<number, number | null>([
      [2, 0.97],
      [5, 0.95],
      [7, 0.9],
    ]);
    const report = replayTrace(header, records, {
      kind: 'static',
      thresholds,
      activeRamps: [2, 5, 7],
      hindsight: false,
    });
    report.windows.forEach((w, k) => {
      const expected = evaluateWindow(records.slice(k * 1000, (k + 1) * 1000), thresholds, {
        activeRamps: [2, 5, 7],
        rule: { policy: 'confidence', patience: 2 },
        profile: header.profile,
      });
      expect(w.disagreements).toBe(expected.disagreements);
      expect(w.savings).toBeCloseTo(expected.savings, 9);
      expect(w.exitRates[5]).toBeCloseTo(expected.exitRates.get(5) ?? 0, 12);
    });
  });

  it('rejects a ramp the trace does not have', () => {
    expect(() => replayTrace(header, records, { kind: 'guarded', activeRamps: [9] })).toThrow(/ramp 9/);
  });

  it('drop mode feeds the tuner only probes; with every ramp at "never" only probes pay for the heads', () => {
    const never = new Map<number, number | null>([
      [2, null],
      [5, null],
    ]);
    const run = (mode: 'drop' | 'release', seed = 1): ReplayReport =>
      replayTrace(header, records, {
        kind: 'static',
        thresholds: never,
        activeRamps: [2, 5],
        hindsight: false,
        feedback: { mode, settledShare: 0.1, learningShare: 0.5, seed },
      });
    const release = run('release');
    const drop = run('drop');
    expect(release.feedbackRows).toBe(3000);
    // A static tuner asks for the settled share: about 300 of 3,000 rows.
    expect(drop.feedbackRows).toBeGreaterThan(240);
    expect(drop.feedbackRows).toBeLessThan(360);
    // Release runs the heads (and the boundaries they need) on every row, drop on the probes only.
    const overhead = -release.meanSavings;
    expect(overhead).toBeGreaterThan(0);
    expect(-drop.meanSavings).toBeCloseTo((overhead * drop.feedbackRows) / 3000, 9);
    // The draws are the seed's: the same again, others with another seed.
    expect(run('drop').feedbackRows).toBe(drop.feedbackRows);
    expect(run('drop', 2).feedbackRows).not.toBe(drop.feedbackRows);
  });

  it('drop mode asks for the learning share while the guarded tuner learns, the settled share once settled', () => {
    const { header: h, records: long } = syntheticTrace({ rows: 8000, seed: 10 });
    const report = replayTrace(h, long, {
      kind: 'guarded',
      activeRamps: [2, 5],
      hindsight: false,
      settleRows: 1000,
      feedback: { mode: 'drop', settledShare: 0.1, learningShare: 0.5 },
    });
    // Learning from the start: about half the first rows are probes; far fewer at the end.
    expect(report.feedbackRows).toBeGreaterThan(0.1 * 8000);
    expect(report.feedbackRows).toBeLessThan(0.5 * 8000);
    expect(report.events.some((e) => e.event.type === 'retune')).toBe(true);
  });
});

describe('offramp replay', () => {
  async function run(args: string[]): Promise<{ out: string; error?: Error }> {
    const program = new Command('offramp')
      .exitOverride()
      .configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
    registerReplayCommand(program);
    const chunks: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = (chunk: string) => chunks.push(String(chunk)) > 0;
    try {
      await program.parseAsync(['replay', ...args], { from: 'user' });
      return { out: chunks.join('') };
    } catch (error) {
      return { out: chunks.join(''), error: error as Error };
    } finally {
      process.stdout.write = write;
    }
  }

  async function traceFile(rows: number): Promise<string> {
    const { header, records } = syntheticTrace({ rows, seed: 10 });
    const path = join(await mkdtemp(join(tmpdir(), 'offramp-replay-')), 'trace.jsonl');
    await writeFile(path, toJsonl(header, records));
    return path;
  }

  it('prints a JSON report', async () => {
    const path = await traceFile(3000);
    const { out, error } = await run(['--trace', path, '--json', '--no-hindsight']);
    expect(error).toBeUndefined();
    const report = JSON.parse(out) as ReplayReport;
    expect(report.tuner).toBe('guarded');
    expect(report.windows).toHaveLength(3);
    expect(report.meanHindsightSavings).toBeNull();
    expect(report.events.every((e) => e.event.type !== 'retune' || typeof e.event.thresholds === 'object')).toBe(true);
  });

  it('prints a table and the overall figures', async () => {
    const path = await traceFile(2000);
    const { out, error } = await run([
      '--trace',
      path,
      '--tuner',
      'static',
      '--thresholds',
      '4=0.99,6=0.95',
      '--budget',
      '2%',
      '--window',
      '500',
    ]);
    expect(error).toBeUndefined();
    expect(out).toContain('through the static tuner: budget 2.00% per 500-row window');
    expect(out).toContain('windows within budget: ');
    expect(out).toMatch(/mean savings: .*\n {2}compliant hindsight .*\n {2}per-window hindsight/);
    expect(out).toContain('4:0.990 6:0.950');
  });

  it('names a missing trace file and a file that is not a trace', async () => {
    expect((await run(['--trace', '/nonexistent/trace.jsonl'])).error?.message).toBe(
      '/nonexistent/trace.jsonl: no such trace file',
    );
    const path = join(await mkdtemp(join(tmpdir(), 'offramp-replay-')), 'bad.jsonl');
    await writeFile(path, '{"hello": 1}\n');
    expect((await run(['--trace', path])).error?.message).toMatch(/bad\.jsonl: not an offramp trace/);
  });

  it('starts the guarded tuner calibrated when the header has solo-exit curves, else at "never", and says which', async () => {
    const path = await traceFile(1000);
    const plain = await run(['--trace', path, '--no-hindsight']);
    expect(plain.error).toBeUndefined();
    expect(plain.out).toMatch(/start: never \(no solo-exit curves in the trace header; --model DIR gives them\)/);
    const forced = await run(['--trace', path, '--no-hindsight', '--start', 'calibrated']);
    expect(forced.error?.message).toMatch(/--start calibrated needs the ramps' solo-exit curves/);
    const { header, records } = syntheticTrace({ rows: 1000, seed: 10 });
    const curve = [
      { budget: 0.001, exitFraction: 0.3, threshold: 0.99 },
      { budget: 0.005, exitFraction: 0.5, threshold: 0.9 },
    ];
    const withCurves = { ...header, ramps: header.ramps.map((r) => ({ ...r, soloCurve: curve })) };
    const curved = join(await mkdtemp(join(tmpdir(), 'offramp-replay-')), 'trace.jsonl');
    await writeFile(curved, toJsonl(withCurves, records));
    const { out, error } = await run(['--trace', curved, '--no-hindsight', '--ramps', '2,5']);
    expect(error).toBeUndefined();
    // The window-safe rate for 1 % per 1,000 rows (0.62 %) over two ramps: the 0.001 point each.
    expect(out).toContain('start: calibrated: 2:0.990 5:0.990');
    expect((await run(['--trace', curved, '--tuner', 'static', '--start', 'never'])).error?.message).toMatch(
      /--start applies to --tuner guarded only/,
    );
  });

  it("reads an older trace's solo-exit curves from --model, and refuses a prepared model that is not the trace's", async () => {
    const { header, records } = await readTrace(
      fileURLToPath(new URL('./fixtures/traces/fmnist-stationary.jsonl.gz', import.meta.url)),
    );
    const old = { ...header, ramps: header.ramps.map(({ id, computeBefore }) => ({ id, computeBefore })) };
    const path = join(await mkdtemp(join(tmpdir(), 'offramp-replay-')), 'old.jsonl');
    await writeFile(path, toJsonl(old, records.slice(0, 320)));
    const args = ['--trace', path, '--no-hindsight', '--ramps', '0,3,5'];
    expect((await run(args)).out).toContain('start: never (no solo-exit curves');
    const { out, error } = await run([...args, '--model', BUNDLED_DIR]);
    expect(error).toBeUndefined();
    const fromHeader = calibratedThresholds(
      header.ramps.filter((r) => [0, 3, 5].includes(r.id)).map((r) => ({ id: r.id, soloCurve: r.soloCurve! })),
      calibratedStartRate({ budget: 0.01, confidence: 0.95, window: 1000 }),
      'confidence',
    );
    expect(out).toContain(`start: calibrated: ${[...fromHeader].map(([id, t]) => `${id}:${t!.toFixed(3)}`).join(' ')}`);
    const other = join(await mkdtemp(join(tmpdir(), 'offramp-replay-')), 'other.jsonl');
    await writeFile(other, toJsonl({ ...old, model: 'something-else' }, records.slice(0, 32)));
    expect((await run(['--trace', other, '--model', BUNDLED_DIR])).error?.message).toMatch(
      /the trace is of model 'something-else'/,
    );
  });

  it('rejects a budget outside (0, 0.5]', async () => {
    const { error } = await run(['--trace', 'x.jsonl', '--budget', '0.7']);
    expect(error?.message).toMatch(/budget in \(0, 0.5\]/);
  });
});
