import { readFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { metricsDocFile, renderMetricsDoc } from '../src/metrics-doc.js';
import { METRIC_TABLE, createMetrics, type MetricKey, type MetricSpec, type Metrics } from '../src/metrics.js';

const entries = Object.entries(METRIC_TABLE) as [MetricKey, MetricSpec][];

const open: Metrics[] = [];
afterEach(() => {
  for (const m of open.splice(0)) m.close();
});

function metrics(): Metrics {
  const m = createMetrics({ processMetrics: false });
  open.push(m);
  return m;
}

/** A value for every label of a spec, e.g. `model="m",ramp="v-ramp"`. */
function sampleLabels(spec: MetricSpec): Record<string, string> {
  const values: Record<string, string> = { outcome: 'ok', code: 'OFFRAMP_INTERNAL', stat: 'max' };
  return Object.fromEntries(spec.labels.map((l) => [l, values[l] ?? `v-${l}`]));
}

describe('metric table', () => {
  it('docs/metrics.md is what the table renders (run `npm run metrics-doc` after a change)', async () => {
    const committed = await readFile(metricsDocFile(), 'utf8');
    expect(committed).toBe(renderMetricsDoc());
  });

  it('has unique offramp_ names; counters, and only counters, end in _total; histograms, and only they, have ascending buckets', () => {
    const names = entries.map(([, s]) => s.name);
    expect(new Set(names).size).toBe(names.length);
    for (const [key, spec] of entries) {
      expect(spec.name, key).toMatch(/^offramp_[a-z][a-z0-9_]*$/);
      expect(spec.name.endsWith('_total'), key).toBe(spec.type === 'counter');
      expect(spec.buckets !== undefined, key).toBe(spec.type === 'histogram');
      if (spec.buckets)
        expect(
          [...spec.buckets].sort((a, b) => a - b),
          key,
        ).toEqual(spec.buckets);
      expect(new Set(spec.labels).size, key).toBe(spec.labels.length);
      expect(spec.help.length, key).toBeGreaterThan(10);
    }
  });

  it('registers every entry, in table order, with its type and help, and nothing else', async () => {
    const m = metrics();
    const registered = await m.registry.getMetricsAsJSON();
    expect(registered.map((r) => ({ name: r.name, type: r.type, help: r.help }))).toEqual(
      entries.map(([, s]) => ({ name: s.name, type: s.type, help: s.help })),
    );
  });

  it("exports each field of Metrics under its entry's name with exactly its labels (and buckets)", async () => {
    const m = metrics();
    for (const [key, spec] of entries) {
      if (key === 'eventLoopLag') continue; // set by its own collect hook at each scrape
      const labels = sampleLabels(spec);
      // Runtime loop over every field: the per-field label types cannot be checked here.
      const field = m[key] as unknown as {
        observe?: (l: object, v: number) => void;
        inc?: (l: object, v?: number) => void;
        set?: (l: object, v: number) => void;
      };
      if (spec.type === 'histogram')
        field.observe!(labels, 0); // ≤ every bucket: each counts it
      else if (spec.type === 'counter') field.inc!(labels, 1);
      else field.set!(labels, 1);
    }
    const text = await m.registry.metrics();
    for (const [key, spec] of entries) {
      if (key === 'eventLoopLag') continue;
      const labelText = Object.entries(sampleLabels(spec))
        .map(([l, v]) => `${l}="${v}"`)
        .join(',');
      if (spec.type === 'histogram') {
        expect(text, key).toContain(`${spec.name}_count{${labelText}} 1`);
        for (const le of [...spec.buckets!.map(String), '+Inf'])
          expect(text, key).toContain(`${spec.name}_bucket{le="${le}",${labelText}} 1`);
        expect(text.match(new RegExp(`^${spec.name}_bucket\\{`, 'gm'))?.length, key).toBe(spec.buckets!.length + 1);
      } else {
        expect(text, key).toContain(`\n${spec.name}{${labelText}} 1\n`);
      }
    }
  });

  it("types each update with its metric's label set", () => {
    const m = metrics();
    m.requestsTotal.inc({ model: 'm', outcome: 'ok' });
    m.inferenceFailures.inc({ model: 'm', code: 'OFFRAMP_QUEUE_FULL' });
    m.rampThreshold.set({ model: 'm', ramp: '0' }, 0.9);
    // @ts-expect-error `outcome` is missing
    m.requestsTotal.inc({ model: 'm' });
    // @ts-expect-error not an outcome
    m.requestsTotal.inc({ model: 'm', outcome: 'exploded' });
    // @ts-expect-error not an error code
    m.inferenceFailures.inc({ model: 'm', code: 'OFFRAMP_NO_SUCH_CODE' });
    /* eslint-disable @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return -- a deliberate type error */
    // @ts-expect-error a counter has no set
    expect(() => m.tunerRetunes.set({ model: 'm' }, 1)).toThrow(TypeError);
    /* eslint-enable @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return */
    // @ts-expect-error `ramp` is missing
    m.rampPinned.set({ model: 'm' }, 1);
  });
});
