// The dashboard page's pure parts (src/dashboard/client/, the modules without DOM): formatting,
// the snapshot timeline and its chart columns with gaps, batch-size bars, exit keys and pins,
// the budget slider's scale, the frontier's operating point, and how answers read on the page.
import { describe, expect, it } from 'vitest';
import type { DashboardModelInfo, ModelSnapshot, Snapshot } from '../src/dashboard/protocol.js';
import {
  adminRequest,
  controlsState,
  describeAdminAnswer,
  describeFailure,
  modelFromQuery,
  parseThresholdInput,
  queryWithModel,
  ROUTES,
} from '../src/dashboard/client/api.js';
import { bucketLabels, describeBatchSizes, sumBatchSizes } from '../src/dashboard/client/batch-sizes.js';
import { BUDGET_POSITIONS, budgetAt, positionOf } from '../src/dashboard/client/budget-scale.js';
import {
  describeThresholds,
  exitViews,
  pinRequestBody,
  adminIdOf,
  pinnableExits,
} from '../src/dashboard/client/exits.js';
import {
  formatCores,
  formatCount,
  formatMs,
  formatRate,
  formatShare,
  formatThreshold,
  MISSING,
  significant,
} from '../src/dashboard/client/format.js';
import { alignCurves, latencyKeyFor, operatingPoint } from '../src/dashboard/client/frontier.js';
import {
  exitShare,
  modelEvents,
  SeqWatch,
  stackColumns,
  Timeline,
  timeColumns,
} from '../src/dashboard/client/timeline.js';

function modelSnapshot(overrides: Partial<ModelSnapshot> = {}): ModelSnapshot {
  return {
    latencyMs: { p50: 10, p95: 20, p99: 30 },
    answersPerS: 10,
    errorsPerS: 0,
    queueDepth: 0,
    runningBatches: 0,
    batchSizes: [1, 2, 3],
    exitShares: { '0': 0.25, final: 0.75 },
    thresholds: { '0': 0.9 },
    pinned: [],
    paused: false,
    window: { disagreement: 0.01, rows: 10, capacity: 100, earlyFraction: 0.25 },
    guardBound: 0.02,
    savings: { estimated: 0.2, hindsight: 0.3 },
    probeShare: 1,
    events: [],
    ...overrides,
  };
}

function snapshot(
  seq: number,
  t: number,
  models: Record<string, ModelSnapshot> = { m: modelSnapshot() },
  afterGap = false,
): Snapshot {
  return { seq, t, intervalS: 1, afterGap, cpuCores: 0.5, cpuMsPerAnswer: 2, models };
}

const plainModel: DashboardModelInfo = {
  name: 'm',
  version: '1',
  policy: 'confidence',
  mode: 'release',
  tunerKind: 'guarded',
  online: true,
  slo: { latencyMs: 50, percentile: 95 },
  accuracy: { budget: 0.01, confidence: 0.95, window: 100 },
  exits: [
    { key: '0', kind: 'ramp', label: 'ramp 0' },
    { key: '1', kind: 'ramp', label: 'ramp 1' },
  ],
  batchSizeBuckets: [1, 2, 4],
};

// Two tiers first: ramp r is exit 2 + r.
const cascadeModel: DashboardModelInfo = {
  ...plainModel,
  exits: [
    { key: '0', kind: 'tier', label: 'tier 0' },
    { key: '1', kind: 'tier', label: 'tier 1' },
    { key: '2', kind: 'ramp', label: 'ramp 0' },
    { key: '3', kind: 'ramp', label: 'ramp 1' },
  ],
};

describe('formatting', () => {
  it('writes significant digits without exponents or trailing zeros', () => {
    expect(significant(12.345)).toBe('12.3');
    expect(significant(0.04219)).toBe('0.0422');
    expect(significant(1234.5)).toBe('1235');
    expect(significant(2)).toBe('2');
    expect(significant(0)).toBe('0');
    expect(significant(-2.5, 4)).toBe('-2.5');
  });

  it('puts units on every value and a dash for a missing one', () => {
    expect(formatMs(12.34)).toBe('12.3 ms');
    expect(formatMs(1250)).toBe('1.25 s');
    expect(formatMs(null)).toBe(MISSING);
    expect(formatRate(3.456)).toBe('3.46/s');
    expect(formatShare(0.125)).toBe('12.5 %');
    expect(formatShare(0.0042)).toBe('0.42 %');
    expect(formatShare(null)).toBe(MISSING);
    expect(formatCores(1)).toBe('1 core');
    expect(formatCores(0.426)).toBe('0.43 cores');
    expect(formatCount(1, 'batch', 'batches')).toBe('1 batch');
    expect(formatCount(3, 'request')).toBe('3 requests');
  });

  it('writes a null threshold as "never"', () => {
    expect(formatThreshold(null)).toBe('never');
    expect(formatThreshold(0.93)).toBe('0.93');
    expect(formatThreshold(-2.125)).toBe('-2.125');
  });
});

describe('Timeline', () => {
  it('keeps snapshots in time order, dropping ones it already has (a reconnect replaying the ring buffer)', () => {
    const timeline = new Timeline(60_000);
    expect(timeline.add(snapshot(1, 1000))).toBe(true);
    expect(timeline.add(snapshot(2, 2000))).toBe(true);
    expect(timeline.add(snapshot(1, 1000))).toBe(false);
    expect(timeline.add(snapshot(2, 2000))).toBe(false);
    expect(timeline.entries.map((entry) => entry.snapshot.seq)).toEqual([1, 2]);
    expect(timeline.latest?.seq).toBe(2);
  });

  it('flags a gap after a pause in sampling, a skipped seq, or a server restart', () => {
    const timeline = new Timeline(60_000);
    timeline.add(snapshot(1, 1000));
    timeline.add(snapshot(2, 2000));
    timeline.add(snapshot(3, 9000, undefined, true)); // afterGap: nobody watched
    timeline.add(snapshot(5, 10_000)); // 4 was lost
    timeline.add(snapshot(1, 11_000)); // the server restarted: seq starts again, time goes on
    expect(timeline.entries.map((entry) => entry.gapBefore)).toEqual([false, false, true, true, true]);
  });

  it('forgets snapshots older than its reach, and gives the recent ones', () => {
    const timeline = new Timeline(3000);
    for (let i = 1; i <= 6; i++) timeline.add(snapshot(i, i * 1000));
    expect(timeline.entries.map((entry) => entry.snapshot.seq)).toEqual([3, 4, 5, 6]);
    expect(timeline.recent(1500).map((entry) => entry.snapshot.seq)).toEqual([5, 6]);
    expect(new Timeline(1000).recent(1000)).toEqual([]);
  });
});

describe('SeqWatch (the stream as received)', () => {
  it('counts seqs that jump (lost snapshots) and seqs that do not rise (snapshots again)', () => {
    const watch = new SeqWatch();
    for (const seq of [7, 8, 9]) watch.see(seq);
    expect([watch.latest, watch.skips, watch.repeats]).toEqual([9, 0, 0]);
    watch.see(12); // 10 and 11 were lost
    watch.see(5); // a new stream replays the ring buffer
    watch.see(6);
    expect([watch.latest, watch.skips, watch.repeats]).toEqual([6, 1, 1]);
  });
});

describe('timeColumns', () => {
  it('reads one column per series in epoch seconds, breaking the lines at a gap', () => {
    const timeline = new Timeline(60_000);
    timeline.add(snapshot(1, 1000, { m: modelSnapshot({ answersPerS: 1 }) }));
    timeline.add(snapshot(2, 2000, { m: modelSnapshot({ answersPerS: 2 }) }));
    timeline.add(snapshot(3, 6000, { m: modelSnapshot({ answersPerS: 3 }) }, true));
    const { x, y } = timeColumns(timeline.entries, 'm', {
      answers: (m) => m.answersPerS,
      cores: (_m, s) => s.cpuCores,
    });
    expect(x).toEqual([1, 2, 4, 6]);
    expect(y.answers).toEqual([1, 2, null, 3]);
    expect(y.cores).toEqual([0.5, 0.5, null, 0.5]);
  });

  it('draws nothing for a snapshot without the model', () => {
    const timeline = new Timeline(60_000);
    timeline.add(snapshot(1, 1000, {}));
    timeline.add(snapshot(2, 2000));
    expect(timeColumns(timeline.entries, 'm', { p95: (m) => m.latencyMs?.p95 ?? null }).y.p95).toEqual([null, 20]);
  });

  it("collects the model's tuning events, oldest first", () => {
    const timeline = new Timeline(60_000);
    const event = (at: number) => ({ at, kind: 'tighten' as const, summary: `at ${at}` });
    timeline.add(snapshot(1, 1000, { m: modelSnapshot({ events: [event(900)] }) }));
    timeline.add(
      snapshot(2, 2000, {
        m: modelSnapshot({ events: [event(1500), event(1900)] }),
        other: modelSnapshot({ events: [event(1)] }),
      }),
    );
    expect(modelEvents(timeline.entries, 'm').map((e) => e.at)).toEqual([900, 1500, 1900]);
  });
});

describe('exit shares', () => {
  it('is 0 for an exit that answered nothing while others did, and null when nothing was answered', () => {
    expect(exitShare(modelSnapshot(), '0')).toBe(0.25);
    expect(exitShare(modelSnapshot(), '1')).toBe(0);
    expect(exitShare(modelSnapshot({ exitShares: {} }), '0')).toBeNull();
  });

  it('stacks columns as running sums, null from a missing value up', () => {
    expect(
      stackColumns([
        [0.2, null, 0.5],
        [0.3, 0.4, 0.5],
        [0.5, 0.6, 0],
      ]),
    ).toEqual([
      [0.2, null, 0.5],
      [0.5, null, 1],
      [1, null, 1],
    ]);
    expect(stackColumns([])).toEqual([]);
  });
});

describe('batch-size bars', () => {
  it('labels each bucket by the sizes it holds, and the last one as "more"', () => {
    expect(bucketLabels([1, 2, 4, 8, 16])).toEqual(['1', '2', '3–4', '5–8', '9–16', '>16']);
    expect(bucketLabels([4, 16])).toEqual(['1–4', '5–16', '>16']);
    expect(bucketLabels([])).toEqual(['all']);
  });

  it('sums the batches per bucket over the entries, tolerating lists of another length', () => {
    const timeline = new Timeline(60_000);
    timeline.add(snapshot(1, 1000, { m: modelSnapshot({ batchSizes: [1, 0, 2, 1] }) }));
    timeline.add(snapshot(2, 2000, { m: modelSnapshot({ batchSizes: [3, 1] }) }));
    timeline.add(snapshot(3, 3000, { m: modelSnapshot({ batchSizes: [0, 0, 0, 0, 9] }) }));
    expect(sumBatchSizes(timeline.entries, 'm', 4)).toEqual([4, 1, 2, 1]);
    expect(sumBatchSizes(timeline.entries, 'absent', 2)).toEqual([0, 0]);
  });

  it('reads as the most frequent bucket and the total', () => {
    expect(describeBatchSizes(['1', '2', '>2'], [2, 6, 2])).toBe('mostly 2 (60 %) of 10 batches');
    expect(describeBatchSizes(['1', '>1'], [0, 0])).toBe('no batches');
  });
});

describe('exits', () => {
  it('lists the exits in answering order, the full model last', () => {
    expect(exitViews(plainModel).map((view) => view.key)).toEqual(['0', '1', 'final']);
    expect(pinnableExits(cascadeModel).map((view) => view.key)).toEqual(['0', '1', '2', '3']);
  });

  it('maps exit keys to the ids the admin endpoints take: the exit ids, tiers first', () => {
    expect(adminIdOf(plainModel, '1')).toBe(1);
    // A cascade's exits view numbers tiers and ramps as exits (src/model/cascade.ts): sent as they are.
    expect(adminIdOf(cascadeModel, '2')).toBe(2);
    expect(adminIdOf(cascadeModel, '3')).toBe(3);
    expect(adminIdOf(cascadeModel, '0')).toBe(0); // a tier's θ
    expect(adminIdOf(cascadeModel, 'final')).toBeUndefined();
    expect(adminIdOf(cascadeModel, '9')).toBeUndefined();
  });

  it('pins tiers and ramps by exit id, never "final"', () => {
    expect(pinRequestBody(cascadeModel, { '0': 0.5, '2': 0.9, '3': null, final: 1 })).toEqual({
      thresholds: { '0': 0.5, '2': 0.9, '3': null },
    });
  });

  it('describes thresholds in exit order, marking pins', () => {
    expect(describeThresholds(plainModel, { '1': null, '0': 0.93 }, ['1'])).toBe('ramp 0 0.93 · ramp 1 never (pinned)');
    expect(describeThresholds(plainModel, {})).toBe('none');
  });
});

describe('budget slider scale', () => {
  it('runs from 0.1 % to 10 % in twentieths of a decade, rounded to two digits', () => {
    expect(BUDGET_POSITIONS).toBe(40);
    expect(budgetAt(0)).toBe(0.001);
    expect(budgetAt(20)).toBe(0.01);
    expect(budgetAt(40)).toBe(0.1);
    expect(budgetAt(1)).toBe(0.0011);
    expect(budgetAt(-5)).toBe(0.001);
    expect(budgetAt(99)).toBe(0.1);
  });

  it('places a budget at its nearest position', () => {
    expect(positionOf(0.01)).toBe(20);
    expect(positionOf(0.05)).toBe(34);
    expect(positionOf(0.5)).toBe(40);
    expect(positionOf(0)).toBe(0);
    for (let position = 0; position <= BUDGET_POSITIONS; position++)
      expect(positionOf(budgetAt(position))).toBe(position);
  });
});

describe('frontier', () => {
  it("judges the SLO's percentile by the nearest snapshot percentile at or above it", () => {
    expect(latencyKeyFor(50)).toBe('p50');
    expect(latencyKeyFor(90)).toBe('p95');
    expect(latencyKeyFor(95)).toBe('p95');
    expect(latencyKeyFor(99.9)).toBe('p99');
  });

  it('places the operating point at the mean answer rate and the answer-weighted latency', () => {
    const timeline = new Timeline(60_000);
    timeline.add(snapshot(1, 1000, { m: modelSnapshot({ answersPerS: 10, latencyMs: { p50: 1, p95: 10, p99: 20 } }) }));
    timeline.add(snapshot(2, 2000, { m: modelSnapshot({ answersPerS: 30, latencyMs: { p50: 1, p95: 20, p99: 20 } }) }));
    timeline.add(snapshot(3, 3000, { m: modelSnapshot({ answersPerS: 0, latencyMs: null }) }));
    const point = operatingPoint(timeline.entries, 'm', 95);
    expect(point?.throughputRps).toBeCloseTo(40 / 3);
    expect(point?.latencyMs).toBeCloseTo(17.5);
    expect(point?.latencyKey).toBe('p95');
    expect(operatingPoint(timeline.recent(0), 'm', 95)).toBeNull(); // only the idle last second
  });

  it('aligns curves on the union of their throughputs, null where a curve has no point', () => {
    const aligned = alignCurves([
      {
        label: 'a',
        points: [
          { throughputRps: 10, latencyMs: 1 },
          { throughputRps: 30, latencyMs: 3 },
        ],
      },
      {
        label: 'b',
        points: [
          { throughputRps: 20, latencyMs: 2 },
          { throughputRps: 10, latencyMs: 5 },
        ],
      },
    ]);
    expect(aligned.x).toEqual([10, 20, 30]);
    expect(aligned.y).toEqual([
      [1, null, 3],
      [5, 2, null],
    ]);
  });
});

describe('requests and answers', () => {
  it('builds same-origin URLs, encoding model names', () => {
    expect(ROUTES.whatIf('a b/c', 0.02)).toBe('/dashboard/api/what-if?model=a%20b%2Fc&budget=0.02');
    expect(ROUTES.frontier('m')).toBe('/dashboard/api/frontier?model=m');
    expect(adminRequest('a/b', 'pause')).toEqual({ method: 'POST', path: '/v2/models/a%2Fb/admin/tuner/pause' });
    expect(adminRequest('m', 'resume')).toEqual({ method: 'POST', path: '/v2/models/m/admin/tuner/resume' });
    expect(adminRequest('m', 'pin')).toEqual({ method: 'PUT', path: '/v2/models/m/admin/thresholds' });
    expect(adminRequest('m', 'unpin')).toEqual({ method: 'DELETE', path: '/v2/models/m/admin/thresholds' });
  });

  it('shows a coded error as code and message, anything else as status and text', () => {
    expect(describeFailure(401, '{"error":"admin token is missing or wrong","code":"OFFRAMP_UNAUTHORIZED"}')).toBe(
      'OFFRAMP_UNAUTHORIZED: admin token is missing or wrong',
    );
    expect(describeFailure(502, '<html>Bad gateway</html>')).toBe('HTTP 502: <html>Bad gateway</html>');
    expect(describeFailure(500, '')).toBe('HTTP 500');
    expect(describeFailure(400, '{"message":"other"}')).toBe('HTTP 400: {"message":"other"}');
  });

  it("summarizes the admin endpoints' answer", () => {
    const answer = {
      model: 'm',
      version: '1',
      tuner: { kind: 'guarded', online: true, paused: true, pinned: { '1': null } },
      thresholds: { '0': 0.9, '1': null },
    };
    expect(describeAdminAnswer(answer)).toBe('tuner paused · ramp 0 0.9 · ramp 1 never (pinned)');
    expect(describeAdminAnswer(null)).toBe('done');
  });

  it('reads the pin form\'s threshold: a number or "never"', () => {
    expect(parseThresholdInput(' 0.9 ')).toBe(0.9);
    expect(parseThresholdInput('-3.5')).toBe(-3.5);
    expect(parseThresholdInput('Never')).toBeNull();
    expect(parseThresholdInput('')).toBeUndefined();
    expect(parseThresholdInput('high')).toBeUndefined();
  });

  it('keeps the picked model in the query, defaulting to the first', () => {
    expect(modelFromQuery('?model=b', ['a', 'b'])).toBe('b');
    expect(modelFromQuery('?model=zz', ['a', 'b'])).toBe('a');
    expect(modelFromQuery('', [])).toBeUndefined();
    expect(queryWithModel('?x=1&model=a', 'b c')).toBe('?x=1&model=b+c');
  });

  it('enables the controls only with admin endpoints, a token, and (for pause/resume) an online tuner', () => {
    expect(controlsState(false, 'token', true)).toMatchObject({ admin: false, tuner: false });
    expect(controlsState(true, '', true)).toMatchObject({ admin: false, tuner: false });
    expect(controlsState(true, 'token', false)).toMatchObject({ admin: true, tuner: false });
    expect(controlsState(true, 'token', true)).toEqual({ admin: true, tuner: true, reason: '' });
    expect(controlsState(true, '', true).reason).not.toBe('');
  });
});
