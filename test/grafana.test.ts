/**
 * docs/grafana/offramp.json against the metrics it reads. The dashboard is written by hand (or
 * exported from Grafana), so nothing else keeps its PromQL in step with src/metrics.ts: every
 * metric a query reads must be one offramp exports (METRIC_TABLE, or a prom-client process metric
 * of a real `createMetrics()` registry), every label a query selects, groups or matches on must be
 * on that metric, every metric of the table must be on the dashboard, and Prometheus' own parser
 * (promtool, from Debian's `prometheus` package, which .ci/run installs) must accept every query.
 * A missing promtool fails the test rather than skipping it.
 */

import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { METRIC_TABLE, type MetricSpec } from '../src/metrics.js';
import { checkQuery, exportedSeries, promtoolCheckRules, type PromQuery } from './helpers/promql.js';

const DASHBOARD_URL = new URL('../docs/grafana/offramp.json', import.meta.url);

/** Where every query goes: the datasource variable, so that the dashboard imports into any Grafana. */
const DATASOURCE = { type: 'prometheus', uid: '${DS_PROMETHEUS}' };

/** Grafana's own interval variables, replaced by a literal duration before promtool reads a query. */
const GRAFANA_INTERVALS: Record<string, string> = { __rate_interval: '1m', __interval: '1m', __range: '1h' };

interface DatasourceRef {
  type: string;
  uid: string;
}
interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
  datasource?: DatasourceRef;
}
interface Panel {
  id: number;
  type: string;
  title?: string;
  datasource?: DatasourceRef;
  targets?: Target[];
}
interface Annotation {
  name: string;
  builtIn?: number;
  datasource?: DatasourceRef;
  expr?: string;
  titleFormat?: string;
  textFormat?: string;
}
interface Variable {
  name: string;
  type: string;
  datasource?: DatasourceRef;
  query?: string | { query: string };
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  annotations: { list: Annotation[] };
  templating: { list: Variable[] };
}

async function loadDashboard(): Promise<Dashboard> {
  return JSON.parse(await readFile(DASHBOARD_URL, 'utf8')) as Dashboard;
}

/**
 * Every query the dashboard sends Prometheus: panel targets, annotations, and the template
 * variables' `label_values(selector, label)`, which Grafana answers like `count by (label) (selector)`.
 */
function queriesOf(dashboard: Dashboard): PromQuery[] {
  const queries: PromQuery[] = [];
  for (const panel of dashboard.panels)
    for (const target of panel.targets ?? [])
      queries.push({
        where: `panel "${panel.title}" ${target.refId}`,
        expr: target.expr,
        templates: target.legendFormat ? [target.legendFormat] : [],
      });
  for (const a of dashboard.annotations.list) {
    if (a.builtIn) continue;
    queries.push({
      where: `annotation "${a.name}"`,
      expr: a.expr ?? '',
      templates: [a.titleFormat ?? '', a.textFormat ?? ''],
    });
  }
  for (const v of dashboard.templating.list) {
    if (v.type !== 'query') continue;
    const text = typeof v.query === 'string' ? v.query : (v.query?.query ?? '');
    const m = /^label_values\((.+),\s*([a-zA-Z_]\w*)\)$/.exec(text);
    queries.push({ where: `variable $${v.name}`, expr: m ? `count by (${m[2]}) (${m[1]})` : text, templates: [] });
  }
  return queries;
}

/** A query with each `$var` / `${var}` replaced by a literal; throws on a variable the dashboard does not define. */
function withLiterals(expr: string, variables: ReadonlySet<string>): string {
  return expr.replace(/\$\{(\w+)\}|\$(\w+)/g, (_whole, braced: string | undefined, bare: string | undefined) => {
    const name = (braced ?? bare)!;
    const interval = GRAFANA_INTERVALS[name];
    if (interval !== undefined) return interval;
    if (!variables.has(name)) throw new Error(`$${name} is not a variable of the dashboard`);
    return `v-${name}`;
  });
}

describe('Grafana dashboard (docs/grafana/offramp.json)', () => {
  it('parses, and every panel, annotation and variable queries the datasource variable', async () => {
    const dashboard = await loadDashboard();
    expect(dashboard.uid).toBe('offramp');
    expect(typeof dashboard.schemaVersion).toBe('number');
    const datasourceVariable = dashboard.templating.list.find((v) => v.name === 'DS_PROMETHEUS');
    expect(datasourceVariable).toMatchObject({ type: 'datasource', query: 'prometheus' });

    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of dashboard.panels) {
      const where = `panel ${panel.id} "${panel.title}"`;
      expect(panel.title?.trim(), where).toBeTruthy();
      if (panel.type === 'row') continue; // a row only heads the panels below it: it has no query
      expect(panel.datasource, where).toEqual(DATASOURCE);
      expect(panel.targets?.length, where).toBeGreaterThan(0);
      const refIds = panel.targets!.map((t) => t.refId);
      expect(new Set(refIds).size, where).toBe(refIds.length);
      for (const target of panel.targets!) {
        expect(target.expr.trim(), `${where} ${target.refId}`).toBeTruthy();
        if (target.datasource) expect(target.datasource, `${where} ${target.refId}`).toEqual(DATASOURCE);
      }
    }
    for (const a of dashboard.annotations.list.filter((x) => !x.builtIn))
      expect(a.datasource, `annotation "${a.name}"`).toEqual(DATASOURCE);
    for (const v of dashboard.templating.list.filter((x) => x.type === 'query'))
      expect(v.datasource, `variable $${v.name}`).toEqual(DATASOURCE);
  });

  it('reads only metrics offramp exports, with their labels and values, and shows every metric of the table', async () => {
    const dashboard = await loadDashboard();
    const variables = new Set(dashboard.templating.list.map((v) => v.name));
    const series = await exportedSeries();
    const read = new Set<string>();
    const problems = queriesOf(dashboard).flatMap((q) => checkQuery(q, withLiterals(q.expr, variables), series, read));
    expect(problems).toEqual([]);

    const readBase = new Set([...read].map((name) => name.replace(/_(bucket|sum|count)$/, '')));
    const notShown = (Object.values(METRIC_TABLE) as MetricSpec[])
      .map((s) => s.name)
      .filter((name) => !read.has(name) && !readBase.has(name));
    expect(notShown, 'metrics of METRIC_TABLE no panel or annotation reads').toEqual([]);
  });

  it('catches a query that drifted from the table (the check above is not vacuous)', async () => {
    const series = await exportedSeries();
    const drifted = (expr: string): string[] =>
      checkQuery({ where: 'q', expr, templates: [] }, expr, series, new Set());
    expect(drifted('rate(offramp_requests_sum[1m])')).toEqual([
      'q: offramp_requests_sum is not a metric offramp exports',
    ]);
    expect(drifted('offramp_ramp_threshold{exit="0"}')).toEqual(['q: offramp_ramp_threshold has no label exit']);
    expect(drifted('sum by (le) (rate(offramp_queue_wait_seconds_sum[1m]))')).toEqual([
      'q: by (le) but offramp_queue_wait_seconds_sum has no label le',
    ]);
    expect(drifted('offramp_requests_total{outcome="error"}')).toHaveLength(1);
    expect(checkQuery({ where: 'q', expr: 'up', templates: ['{{ramp}}'] }, 'up', series, new Set())).toEqual([
      'q: up is not a metric offramp exports',
      'q: {{ramp}} is a label of none of its metrics',
    ]);
  });

  it('promtool parses every query (as a recording rule), and rejects a broken one', async () => {
    const dashboard = await loadDashboard();
    const variables = new Set(dashboard.templating.list.map((v) => v.name));
    const queries = queriesOf(dashboard);
    const all = await promtoolCheckRules(
      queries.map((q) => withLiterals(q.expr, variables)),
      'offramp_dashboard:query',
    );
    expect(all.output).toContain(`${queries.length} rules found`);
    expect(all.status, all.output).toBe(0);
    const broken = await promtoolCheckRules(
      ['sum by (le) (rate(offramp_batch_size_bucket[1m])'],
      'offramp_dashboard:query',
    );
    expect(broken.status).not.toBe(0);
  });
});
