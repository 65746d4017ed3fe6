/**
 * docs/deploy/kubernetes/ against the official schemas of its kinds, and against offramp itself.
 *
 * Schemas: every YAML document under the folder must be of a kind this test knows. Core kinds
 * are validated by `kubernetes-models` (the Kubernetes OpenAPI schemas, compiled); KServe's
 * ServingRuntime and InferenceService against the openAPIV3Schema of KServe's own CRDs, stored in
 * test/fixtures/kserve-crds/ (PROVENANCE.md there says from where), with a JSON Schema validator
 * (ajv) that, like `kubectl apply`'s strict field validation, rejects a field the schema does not
 * list. kubernetes-models does not (its schemas allow unknown fields): a misspelt field of a core
 * kind passes there, and is caught only if a check below reads it.
 *
 * Consistency, which no schema sees: each offramp container's SLO file is found through its
 * `--config` argument, volume mount and ConfigMap and parsed by offramp's own parser; the
 * container's ports and probes must match that file, its grace period must cover its preStop
 * sleep and the file's drain timeout, its CPU request the file's workers × threads; each
 * InferenceService must have its SLO file serving one model of its name from /mnt/models; the
 * Service must select the pods and target their ports; each HPA must target a workload of these
 * files, on metrics that the Prometheus adapter rules produce from metrics offramp exports, and
 * each target must have a disruption budget. The adapter's PromQL is checked like the Grafana
 * dashboard's (test/helpers/promql.ts), promtool included (a missing promtool fails the test).
 */

import { readFile, readdir } from 'node:fs/promises';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { ConfigMap, type IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service, type IService } from 'kubernetes-models/v1/Service';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import { Deployment, type IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import {
  HorizontalPodAutoscaler,
  type IHorizontalPodAutoscaler,
} from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { PodDisruptionBudget, type IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { parseServingConfig, type ServingConfig } from '../src/config/index.js';
import { METRIC_TABLE, type MetricSpec } from '../src/metrics.js';
import { PROMETHEUS_TARGET_LABELS, checkQuery, exportedSeries, promtoolCheckRules } from './helpers/promql.js';

const MANIFESTS_DIR = fileURLToPath(new URL('../docs/deploy/kubernetes/', import.meta.url));
const KSERVE_SCHEMAS_DIR = new URL('./fixtures/kserve-crds/', import.meta.url);

/** The paths offramp's health endpoints answer on (src/http/health-plugin.ts). */
const LIVE_PATH = '/v2/health/live';
const READY_PATH = '/v2/health/ready';
/**
 * Seconds the grace period must leave after the preStop sleep and the whole drain: time for
 * offramp to log what was still in flight and exit by itself when its drain timeout passes,
 * so that the kubelet's SIGKILL is never what ends it.
 */
const GRACE_MARGIN_SECONDS = 5;
/** Where KServe's storage initializer puts an InferenceService's storageUri (constants.DefaultModelLocalMountPath). */
const KSERVE_MODEL_DIR = '/mnt/models';
/** The placeholder KServe replaces with the InferenceService's name in a runtime's container spec. */
const KSERVE_NAME_PLACEHOLDER = '{{.Name}}';
/** The runtime container KServe merges an InferenceService's predictor into. */
const KSERVE_CONTAINER = 'kserve-container';
/** The labels KServe gives an InferenceService's predictor pods (constants.InferenceServicePodLabelKey, KServiceComponentLabel). */
const kservePredictorLabels = (isvc: string): Record<string, string> => ({
  'serving.kserve.io/inferenceservice': isvc,
  component: 'predictor',
});
/** The Deployment KServe makes for an InferenceService's predictor in Standard mode (constants.PredictorServiceName). */
const kservePredictorDeployment = (isvc: string): string => `${isvc}-predictor`;
/** The ConfigMap with the Prometheus adapter's config file (docs/deploy/kubernetes/prometheus-adapter/rules.yaml). */
const ADAPTER_CONFIG_KEY = 'config.yaml';
const ADAPTER_CONFIG_MAP = 'prometheus-adapter';

/** One YAML document of the folder. */
interface Manifest {
  /** Relative to docs/deploy/kubernetes/, with the document's 1-based index and kind/name. */
  where: string;
  object: KubeObject;
}
interface KubeObject {
  apiVersion?: unknown;
  kind?: unknown;
  metadata?: {
    name?: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

async function loadManifests(): Promise<{ manifests: Manifest[]; problems: string[] }> {
  const manifests: Manifest[] = [];
  const problems: string[] = [];
  const files = (await readdir(MANIFESTS_DIR, { recursive: true })).filter((f) => /\.ya?ml$/.test(f)).sort();
  for (const file of files) {
    const docs = parseAllDocuments(await readFile(MANIFESTS_DIR + file, 'utf8'));
    if (!Array.isArray(docs)) {
      problems.push(`${file}: no YAML document`);
      continue;
    }
    docs.forEach((doc, i) => {
      const at = `${file}#${i + 1}`;
      if (doc.errors.length > 0) problems.push(`${at}: ${doc.errors[0]!.message}`);
      const object: unknown = doc.toJS();
      if (typeof object !== 'object' || object === null || Array.isArray(object)) {
        problems.push(`${at}: not a Kubernetes object`);
        return;
      }
      const o = object as KubeObject;
      manifests.push({ where: `${at} ${String(o.kind)}/${o.metadata?.name ?? '?'}`, object: o });
    });
  }
  return { manifests, problems };
}

// ---------------------------------------------------------------------------------------------
// Schemas

/** Problems of one object against its kind's schema (empty when valid). */
type SchemaCheck = (object: unknown) => string[];

/** A kubernetes-models class: its constructor takes the object, `validate()` throws when it is invalid. */
type CoreModel = new (data: never) => { validate(): void };

/** The core kinds the manifests may use, by `apiVersion kind`. */
const CORE_KINDS: Readonly<Record<string, CoreModel>> = {
  'v1 ConfigMap': ConfigMap,
  'v1 Service': Service,
  'apps/v1 Deployment': Deployment,
  'autoscaling/v2 HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1 PodDisruptionBudget': PodDisruptionBudget,
};

/** KServe's kinds, by `apiVersion kind`: the file of test/fixtures/kserve-crds/ with the CRD version's openAPIV3Schema. */
const KSERVE_KINDS: Readonly<Record<string, string>> = {
  'serving.kserve.io/v1alpha1 ServingRuntime': 'servingruntimes.serving.kserve.io.v1alpha1.json',
  'serving.kserve.io/v1beta1 InferenceService': 'inferenceservices.serving.kserve.io.v1beta1.json',
};

/**
 * The Kubernetes extensions KServe's schemas carry. They annotate the schema for the API server
 * (list and map semantics, int-or-string, which the schema also spells out as anyOf); validation
 * here ignores them. A keyword not listed (a CEL rule, x-kubernetes-validations, in a newer CRD)
 * makes compilation fail instead of being skipped silently.
 */
const KUBERNETES_SCHEMA_EXTENSIONS = [
  'x-kubernetes-int-or-string',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
];

/**
 * The same schema with `additionalProperties: false` on every object that lists its properties
 * and neither allows other ones nor preserves unknown fields. The API server itself prunes an
 * unknown field, and `kubectl apply` (strict field validation) rejects it: either way a misspelt
 * field would be lost, so here it is an error.
 */
function rejectingUnknownFields(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(rejectingUnknownFields);
  if (typeof schema !== 'object' || schema === null) return schema;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema))
    // Under `properties` the keys are field names, each mapping to a schema.
    out[key] =
      key === 'properties'
        ? Object.fromEntries(Object.entries(value as object).map(([k, v]) => [k, rejectingUnknownFields(v)]))
        : rejectingUnknownFields(value);
  if ('properties' in out && !('additionalProperties' in out) && out['x-kubernetes-preserve-unknown-fields'] !== true)
    out.additionalProperties = false;
  return out;
}

/** Names of custom resources: DNS-1035 labels, which KServe requires of InferenceServices (and is stricter than DNS-1123). */
const DNS_1035_LABEL = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;

async function kserveCheck(ajv: Ajv, file: string): Promise<SchemaCheck> {
  const schema = JSON.parse(await readFile(new URL(file, KSERVE_SCHEMAS_DIR), 'utf8')) as unknown;
  const validate: ValidateFunction = ajv.compile(rejectingUnknownFields(schema) as object);
  return (object) => {
    const problems: string[] = [];
    // The CRD's schema says only `metadata: object`; the API server checks the name.
    const name = (object as KubeObject).metadata?.name;
    if (typeof name !== 'string' || !DNS_1035_LABEL.test(name))
      problems.push(`metadata.name ${JSON.stringify(name)} is not a DNS-1035 label`);
    if (!validate(object)) problems.push(...(validate.errors ?? []).map(describeSchemaError));
    return problems;
  };
}

function describeSchemaError(e: ErrorObject): string {
  const where = e.instancePath === '' ? '(root)' : e.instancePath;
  const extra = e.keyword === 'additionalProperties' ? ` (${String(e.params.additionalProperty)})` : '';
  return `${where} ${e.message ?? e.keyword}${extra}`;
}

/** The schema check of every kind this test knows, by `apiVersion kind`. */
async function compileSchemaChecks(): Promise<Map<string, SchemaCheck>> {
  const checks = new Map<string, SchemaCheck>();
  for (const [key, Model] of Object.entries(CORE_KINDS))
    checks.set(key, (object) => {
      try {
        new Model(object as never).validate();
        return [];
      } catch (error) {
        return [(error as Error).message];
      }
    });
  const ajv = new Ajv({
    allErrors: true,
    // The CRDs set `pattern` on int-or-string quantities, beside anyOf [integer, string] rather
    // than under a `type: string`: valid JSON Schema, which strict typing would only warn about.
    strictTypes: false,
    // The InferenceService schema is 0.6 MB (a pod spec per predictor framework): unoptimised, its
    // validator compiles in about 6 s instead of 14 s here, and it runs on a handful of documents.
    code: { optimize: false },
    keywords: KUBERNETES_SCHEMA_EXTENSIONS,
    // The formats the CRDs use, as the API server reads them.
    formats: {
      int32: { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 },
      int64: { type: 'number', validate: (n: number) => Number.isSafeInteger(n) },
      'date-time': { type: 'string', validate: (s: string) => !Number.isNaN(Date.parse(s)) },
    },
  });
  for (const [key, file] of Object.entries(KSERVE_KINDS)) checks.set(key, await kserveCheck(ajv, file));
  return checks;
}

let compiledChecks: Promise<Map<string, SchemaCheck>> | undefined;
/** The checks, compiled once for every test of this file. */
const schemaChecks = (): Promise<Map<string, SchemaCheck>> => (compiledChecks ??= compileSchemaChecks());

function schemaProblems(manifests: readonly Manifest[], checks: ReadonlyMap<string, SchemaCheck>): string[] {
  return manifests.flatMap(({ where, object }) => {
    const check = checks.get(`${String(object.apiVersion)} ${String(object.kind)}`);
    if (!check) return [`${where}: ${String(object.apiVersion)} ${String(object.kind)} is not a kind this test knows`];
    return check(object).map((p) => `${where}: ${p}`);
  });
}

// ---------------------------------------------------------------------------------------------
// Consistency

interface ServingRuntimeObject extends KubeObject {
  spec: {
    supportedModelFormats: { name: string; version?: string }[];
    containers: IContainer[];
    volumes?: IVolume[];
  };
}
interface InferenceServiceObject extends KubeObject {
  spec: {
    predictor: {
      terminationGracePeriodSeconds?: number;
      volumes?: IVolume[];
      model: Partial<IContainer> & {
        runtime?: string;
        modelFormat: { name: string; version?: string };
        storageUri?: string;
        protocolVersion?: string;
      };
    };
  };
}

const ofKind = <T extends KubeObject>(manifests: readonly Manifest[], kind: string): { where: string; object: T }[] =>
  manifests.filter((m) => m.object.kind === kind) as { where: string; object: T }[];

/** A pod that runs offramp, from a Deployment or from an InferenceService on a ServingRuntime. */
interface OfframpPod {
  where: string;
  /** The Deployment that runs it, which an HPA scales. */
  deployment: string;
  labels: Readonly<Record<string, string>>;
  graceSeconds: number | undefined;
  container: IContainer;
  volumes: readonly IVolume[];
  /** For an InferenceService: its name, which must be the one model its SLO file serves. */
  inferenceService?: string;
}

function offrampPods(manifests: readonly Manifest[]): { pods: OfframpPod[]; problems: string[] } {
  const pods: OfframpPod[] = [];
  const problems: string[] = [];
  for (const { where, object } of ofKind<IDeployment & KubeObject>(manifests, 'Deployment')) {
    const template = object.spec?.template;
    for (const container of template?.spec?.containers ?? [])
      pods.push({
        where: `${where} container ${container.name}`,
        deployment: object.metadata?.name ?? '',
        labels: template?.metadata?.labels ?? {},
        graceSeconds: template?.spec?.terminationGracePeriodSeconds,
        container,
        volumes: template?.spec?.volumes ?? [],
      });
  }
  const runtimes = ofKind<ServingRuntimeObject>(manifests, 'ServingRuntime');
  for (const { where, object } of ofKind<InferenceServiceObject>(manifests, 'InferenceService')) {
    const name = object.metadata?.name ?? '';
    const { predictor } = object.spec;
    const {
      runtime: runtimeName,
      modelFormat,
      storageUri: _uri,
      protocolVersion: _protocol,
      ...overrides
    } = predictor.model;
    const runtime = runtimes.find((r) => r.object.metadata?.name === runtimeName);
    if (!runtime) {
      problems.push(`${where}: runtime ${String(runtimeName)} is not a ServingRuntime of these files`);
      continue;
    }
    if (
      !runtime.object.spec.supportedModelFormats.some(
        (f) => f.name === modelFormat.name && f.version === modelFormat.version,
      )
    )
      problems.push(
        `${where}: model format ${modelFormat.name} ${String(modelFormat.version)} is not one ${runtimeName} supports`,
      );
    const runtimeContainer = runtime.object.spec.containers.find((c) => c.name === KSERVE_CONTAINER);
    if (!runtimeContainer) {
      problems.push(`${runtime.where}: no container named ${KSERVE_CONTAINER}`);
      continue;
    }
    // KServe merges the predictor's container fields over the runtime's, then fills in the
    // placeholders (ReplacePlaceholders: the container as JSON through Go's text/template).
    const merged = JSON.stringify({ ...runtimeContainer, ...overrides }).replaceAll(KSERVE_NAME_PLACEHOLDER, name);
    pods.push({
      where: `${where} (on ${runtime.where})`,
      deployment: kservePredictorDeployment(name),
      labels: kservePredictorLabels(name),
      graceSeconds: predictor.terminationGracePeriodSeconds,
      container: JSON.parse(merged) as IContainer,
      volumes: [...(runtime.object.spec.volumes ?? []), ...(predictor.volumes ?? [])],
      inferenceService: name,
    });
  }
  return { pods, problems };
}

/** The SLO file a pod's offramp reads: its `--config` path, through the volume mounted there, in a ConfigMap of these files. */
function sloFileOf(pod: OfframpPod, manifests: readonly Manifest[]): { config?: ServingConfig; problems: string[] } {
  const argv = [...(pod.container.command ?? []), ...(pod.container.args ?? [])];
  const flag = argv.indexOf('--config');
  const literalEnv = Object.fromEntries(
    (pod.container.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value]),
  );
  const path =
    flag >= 0 ? argv[flag + 1] : (argv.find((a) => a.startsWith('--config='))?.slice(9) ?? literalEnv.OFFRAMP_CONFIG);
  if (!path) return { problems: ['no --config argument nor OFFRAMP_CONFIG: offramp would serve its built-in default'] };
  // Mounted as a folder, never with subPath: a subPath mount does not follow the ConfigMap's
  // edits, so offramp's reload would never see them.
  const mount = pod.container.volumeMounts?.find((m) => m.mountPath === posix.dirname(path));
  if (!mount) return { problems: [`no volume mounted at ${posix.dirname(path)} for --config ${path}`] };
  if (mount.subPath !== undefined) return { problems: [`the config volume ${mount.name} is mounted with subPath`] };
  const configMapName = pod.volumes.find((v) => v.name === mount.name)?.configMap?.name;
  const configMap = ofKind<IConfigMap & KubeObject>(manifests, 'ConfigMap').find(
    (c) => c.object.metadata?.name === configMapName,
  );
  const key = posix.basename(path);
  const text = configMap?.object.data?.[key];
  if (!configMap || text === undefined)
    return { problems: [`--config ${path}: no ConfigMap ${String(configMapName)} with key ${key} in these files`] };
  try {
    // Only the literal environment: a process.env of this machine must not leak into the check.
    return { config: parseServingConfig(text, `${configMap.where} ${key}`, { env: literalEnv }), problems: [] };
  } catch (error) {
    return { problems: [(error as Error).message] };
  }
}

/** The container port a probe or a Service's targetPort names (a port name or number). */
function containerPort(container: IContainer, port: number | string | undefined): number | undefined {
  if (typeof port === 'number') return port;
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

/** Seconds a preStop hook waits: the kubelet's sleep action or `sleep N`; undefined without one. */
function preStopSeconds(container: IContainer): number | undefined {
  const preStop = container.lifecycle?.preStop;
  if (preStop?.sleep) return preStop.sleep.seconds;
  const command = preStop?.exec?.command ?? [];
  return command.length === 2 && command[0] === 'sleep' ? Number(command[1]) : undefined;
}

/** A CPU quantity in cores: "2500m" is 2.5, "3" is 3. */
function cores(quantity: string | number | undefined): number | undefined {
  if (quantity === undefined) return undefined;
  const text = String(quantity);
  return text.endsWith('m') ? Number(text.slice(0, -1)) / 1000 : Number(text);
}

/** Every problem of one offramp pod against its SLO file. */
function podProblems(pod: OfframpPod, manifests: readonly Manifest[]): string[] {
  const { config, problems } = sloFileOf(pod, manifests);
  if (!config) return problems.map((p) => `${pod.where}: ${p}`);
  const { server } = config;
  const c = pod.container;
  const found: string[] = [];
  for (const [name, want] of [
    ['http', server.httpPort],
    ['grpc', server.grpcPort],
  ] as const) {
    const port = containerPort(c, name);
    if (port !== want) found.push(`containerPort ${name} is ${String(port)}, the SLO file says ${want}`);
  }
  const probe = (what: string, p: IProbe | undefined, path: string, required: boolean): void => {
    if (!p) {
      if (required) found.push(`no ${what}`);
      return;
    }
    if (p.httpGet?.path !== path) found.push(`${what} gets ${String(p.httpGet?.path)}, not ${path}`);
    const port = containerPort(c, p.httpGet?.port);
    if (port !== server.httpPort)
      found.push(`${what} probes port ${String(port)}, not the HTTP port ${server.httpPort}`);
  };
  probe('livenessProbe', c.livenessProbe, LIVE_PATH, true);
  probe('readinessProbe', c.readinessProbe, READY_PATH, true);
  probe('startupProbe', c.startupProbe, LIVE_PATH, false);

  const sleep = preStopSeconds(c);
  const drainSeconds = server.drainTimeoutMs / 1000;
  if (sleep === undefined || !(sleep > 0))
    found.push('no preStop sleep: balancers would still send requests to a draining pod');
  else if (pod.graceSeconds === undefined || pod.graceSeconds < sleep + drainSeconds + GRACE_MARGIN_SECONDS)
    found.push(
      `terminationGracePeriodSeconds ${String(pod.graceSeconds)} < preStop ${sleep} s + drain ${drainSeconds} s + ` +
        `margin ${GRACE_MARGIN_SECONDS} s`,
    );

  const threads = server.workers * server.intraOpThreads;
  const request = cores(c.resources?.requests?.cpu);
  const limit = cores(c.resources?.limits?.cpu);
  if (request === undefined || request < threads)
    found.push(`CPU request ${String(c.resources?.requests?.cpu)} < workers × intra_op_threads = ${threads} cores`);
  if (limit !== undefined && request !== undefined && limit < request) found.push('CPU limit below the request');

  if (pod.inferenceService !== undefined) {
    const models = config.models.map((m) => `${m.name} at ${m.path}`);
    const want = `${pod.inferenceService} at ${KSERVE_MODEL_DIR}`;
    if (models.length !== 1 || models[0] !== want)
      found.push(`its SLO file serves ${models.join(', ') || 'nothing'}; KServe needs exactly ${want}`);
  }
  return found.map((p) => `${pod.where}: ${p}`);
}

function inferenceServiceProblems(manifests: readonly Manifest[]): string[] {
  return ofKind<InferenceServiceObject>(manifests, 'InferenceService').flatMap(({ where, object }) => {
    const annotations = object.metadata?.annotations ?? {};
    const problems: string[] = [];
    // Two ports (HTTP and gRPC) need a Deployment: a Knative service has one port.
    if (annotations['serving.kserve.io/deploymentMode'] !== 'Standard') problems.push('deploymentMode is not Standard');
    // KServe's own HPA scales on CPU only; ours (autoscaling.yaml) must be the only one.
    if (annotations['serving.kserve.io/autoscalerClass'] !== 'external')
      problems.push('autoscalerClass is not external');
    if (!object.spec.predictor.model.storageUri) problems.push('no storageUri: nothing at /mnt/models');
    return problems.map((p) => `${where}: ${p}`);
  });
}

const selects = (selector: Readonly<Record<string, string>> | undefined, labels: Readonly<Record<string, string>>) =>
  selector !== undefined &&
  Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([k, v]) => labels[k] === v);

function serviceProblems(manifests: readonly Manifest[], pods: readonly OfframpPod[]): string[] {
  return ofKind<IService & KubeObject>(manifests, 'Service').flatMap(({ where, object }) => {
    const selected = pods.filter((p) => selects(object.spec?.selector, p.labels));
    if (selected.length === 0) return [`${where}: selects no offramp pod of these files`];
    return selected.flatMap((pod) =>
      (object.spec?.ports ?? [])
        .filter((port) => containerPort(pod.container, port.targetPort ?? port.port) === undefined)
        .map(
          (port) =>
            `${where}: port ${String(port.name)} targets ${String(port.targetPort)}, not a port of ${pod.where}`,
        ),
    );
  });
}

/** A rule of the Prometheus adapter's config (docs/config.md of kubernetes-sigs/prometheus-adapter). */
interface AdapterRule {
  seriesQuery: string;
  resources?: { overrides?: Record<string, { resource: string }> };
  name?: { matches?: string; as?: string };
  metricsQuery: string;
}

function adapterRules(manifests: readonly Manifest[]): { where: string; rules: AdapterRule[] }[] {
  return ofKind<IConfigMap & KubeObject>(manifests, 'ConfigMap')
    .filter((c) => c.object.metadata?.name === ADAPTER_CONFIG_MAP)
    .map(({ where, object }) => ({
      where,
      rules: (parseYaml(object.data?.[ADAPTER_CONFIG_KEY] ?? '') as { rules?: AdapterRule[] } | null)?.rules ?? [],
    }));
}

/** The series a rule discovers: the metric name its seriesQuery selects. */
const seriesOf = (rule: AdapterRule): string => /^\s*([a-zA-Z_:][\w:]*)/.exec(rule.seriesQuery)?.[1] ?? '';

/** The custom metric a rule exposes: its `name.as`, or the series name itself. */
const exposedName = (rule: AdapterRule): string => rule.name?.as ?? seriesOf(rule);

/**
 * A rule's metricsQuery as the adapter sends it for two pods of one namespace (its docs: Series
 * is the series name, LabelMatchers the pod and namespace matchers, GroupBy the pod label).
 */
const adapterQuery = (rule: AdapterRule): string =>
  rule.metricsQuery
    .replaceAll('<<.Series>>', seriesOf(rule))
    .replaceAll('<<.LabelMatchers>>', 'pod=~"offramp-a|offramp-b",namespace="default"')
    .replaceAll('<<.GroupBy>>', 'pod');

/** The labels the adapter maps to pods: Prometheus must attach them when it scrapes (README.md, Autoscaling). */
const POD_LABELS = ['namespace', 'pod'];

async function adapterProblems(manifests: readonly Manifest[]): Promise<string[]> {
  const series = await exportedSeries();
  const offrampSeries = new Set(
    (Object.values(METRIC_TABLE) as MetricSpec[]).flatMap((s) =>
      s.type === 'histogram' ? [`${s.name}_bucket`, `${s.name}_sum`, `${s.name}_count`] : [s.name],
    ),
  );
  const problems: string[] = [];
  const configs = adapterRules(manifests);
  if (configs.length === 0) problems.push(`no ConfigMap ${ADAPTER_CONFIG_MAP} with the adapter's rules`);
  for (const { where, rules } of configs)
    rules.forEach((rule, i) => {
      const at = `${where} rule ${i + 1}`;
      const name = seriesOf(rule);
      if (!offrampSeries.has(name)) problems.push(`${at}: discovers ${name}, not a metric of METRIC_TABLE`);
      if (rule.name?.matches !== undefined && !new RegExp(rule.name.matches).test(name))
        problems.push(`${at}: name.matches ${rule.name.matches} does not match ${name}`);
      for (const label of POD_LABELS)
        if (rule.resources?.overrides?.[label]?.resource !== label)
          problems.push(`${at}: label ${label} is not mapped to ${label}`);
      const query = { where: at, expr: rule.metricsQuery, templates: [] };
      problems.push(
        ...checkQuery(query, adapterQuery(rule), series, new Set(), [...PROMETHEUS_TARGET_LABELS, ...POD_LABELS]),
      );
    });
  return problems;
}

function autoscalingProblems(manifests: readonly Manifest[], pods: readonly OfframpPod[]): string[] {
  const exposed = new Set(adapterRules(manifests).flatMap((c) => c.rules.map(exposedName)));
  const budgets = ofKind<IPodDisruptionBudget & KubeObject>(manifests, 'PodDisruptionBudget');
  const inferenceServices = ofKind<InferenceServiceObject>(manifests, 'InferenceService');
  const problems: string[] = [];
  const hpas = ofKind<IHorizontalPodAutoscaler & KubeObject>(manifests, 'HorizontalPodAutoscaler');
  for (const { where, object } of hpas) {
    const { scaleTargetRef, metrics = [], minReplicas } = object.spec;
    const targets = pods.filter((p) => scaleTargetRef.kind === 'Deployment' && p.deployment === scaleTargetRef.name);
    if (targets.length === 0)
      problems.push(
        `${where}: scales ${scaleTargetRef.kind}/${scaleTargetRef.name}, no offramp workload of these files`,
      );
    if (metrics.length === 0) problems.push(`${where}: no metric`);
    for (const metric of metrics) {
      if (metric.type !== 'Pods' || !metric.pods)
        problems.push(`${where}: a ${metric.type} metric, not a pods metric from /metrics`);
      else if (!exposed.has(metric.pods.metric.name))
        problems.push(`${where}: ${metric.pods.metric.name} is not a metric the adapter rules expose`);
    }
    if ((minReplicas ?? 1) < 2)
      problems.push(`${where}: minReplicas below 2: a rollout or an eviction could leave no ready pod`);
    for (const pod of targets) {
      if (!budgets.some((b) => selects(b.object.spec?.selector?.matchLabels, pod.labels)))
        problems.push(`${where}: no PodDisruptionBudget covers ${pod.where}`);
      const isvc = inferenceServices.find((i) => i.object.metadata?.name === pod.inferenceService);
      if (isvc && isvc.object.metadata?.annotations?.['serving.kserve.io/autoscalerClass'] !== 'external')
        problems.push(`${where}: ${isvc.where} has an HPA of KServe's own too`);
    }
  }
  for (const pod of pods)
    if (!hpas.some((h) => h.object.spec?.scaleTargetRef.name === pod.deployment))
      problems.push(`${pod.where}: no HorizontalPodAutoscaler scales ${pod.deployment}`);
  return problems;
}

/** Every consistency problem of the manifests (the schemas aside). */
async function consistencyProblems(manifests: readonly Manifest[]): Promise<string[]> {
  const { pods, problems } = offrampPods(manifests);
  return [
    ...problems,
    ...pods.flatMap((pod) => podProblems(pod, manifests)),
    ...inferenceServiceProblems(manifests),
    ...serviceProblems(manifests, pods),
    ...autoscalingProblems(manifests, pods),
    ...(await adapterProblems(manifests)),
  ];
}

// ---------------------------------------------------------------------------------------------

/** An edit of one document (of `kind`, and `name` when given) and a problem it must cause. */
interface Drift {
  kind: string;
  name?: string;
  edit: (object: KubeObject) => void;
  problem: string;
}

function drift<T>(kind: string, edit: (object: T) => void, problem: string, name?: string): Drift {
  return { kind, edit: (object) => edit(object as unknown as T), problem, ...(name === undefined ? {} : { name }) };
}

/** A deep copy of the manifests with the drift's edit applied. */
function drifted(manifests: readonly Manifest[], { kind, name, edit }: Drift): Manifest[] {
  const copy = structuredClone(manifests) as Manifest[];
  const target = copy.find((m) => m.object.kind === kind && (name === undefined || m.object.metadata?.name === name));
  if (!target) throw new Error(`no ${kind} ${name ?? ''} to edit`);
  edit(target.object);
  return copy;
}

const firstContainer = (d: IDeployment): IContainer => d.spec!.template.spec!.containers[0]!;
/** An edit of the plain Deployment's SLO file (plain/configmap.yaml). */
const plainSlo = (from: string, to: string) => (c: IConfigMap) => {
  c.data!['slo.yaml'] = c.data!['slo.yaml']!.replace(from, to);
};

describe('Kubernetes and KServe manifests (docs/deploy/kubernetes/)', () => {
  it('every YAML document is of a known kind and valid against its official schema', async () => {
    const { manifests, problems } = await loadManifests();
    expect(problems).toEqual([]);
    const kinds = new Set(manifests.map((m) => m.object.kind));
    // The brief of the folder: KServe and plain Kubernetes, autoscaled, with a disruption budget.
    for (const kind of [
      'ServingRuntime',
      'InferenceService',
      'Deployment',
      'Service',
      'ConfigMap',
      'HorizontalPodAutoscaler',
      'PodDisruptionBudget',
    ])
      expect(kinds, kind).toContain(kind);
    expect(
      ofKind(manifests, 'InferenceService')
        .map((m) => m.object.metadata?.name)
        .sort(),
    ).toEqual(['fmnist-resnet', 'spam-bert']);
    expect(schemaProblems(manifests, await schemaChecks())).toEqual([]);
  });

  it('the schema checks reject an unknown kind, a wrong type and a misspelt field (they are not vacuous)', async () => {
    const { manifests } = await loadManifests();
    const checks = await schemaChecks();
    const drifts = [
      drift<KubeObject>('Service', (o) => (o.kind = 'Ingress'), 'v1 Ingress is not a kind this test knows'),
      drift<IDeployment>(
        'Deployment',
        (d) => (firstContainer(d).ports![0]!.containerPort = '8080' as never),
        '/spec/template/spec/containers/0/ports/0/containerPort must be integer',
      ),
      drift<InferenceServiceObject>(
        'InferenceService',
        (i) => (i.spec.predictor.model.modelFormat = { version: '1' } as never),
        "/spec/predictor/model/modelFormat must have required property 'name'",
      ),
      drift<InferenceServiceObject>(
        'InferenceService',
        (i) => ((i.spec.predictor as Record<string, unknown>).terminationGracePeriod = 45),
        '/spec/predictor must NOT have additional properties (terminationGracePeriod)',
      ),
      drift<ServingRuntimeObject>(
        'ServingRuntime',
        (r) => (r.spec.containers[0]!.ports![0]!.containerPort = 2 ** 31),
        '/spec/containers/0/ports/0/containerPort must match format "int32"',
      ),
      drift<KubeObject>('ServingRuntime', (r) => (r.metadata!.name = 'Offramp_Runtime'), 'is not a DNS-1035 label'),
    ];
    for (const d of drifts)
      expect(schemaProblems(drifted(manifests, d), checks).join('\n'), d.problem).toContain(d.problem);
  });

  it('ports, probes, preStop, grace period and CPU agree with each SLO file; each InferenceService has its own', async () => {
    const { manifests } = await loadManifests();
    const { pods } = offrampPods(manifests);
    expect(pods.map((p) => p.deployment).sort()).toEqual(['fmnist-resnet-predictor', 'offramp', 'spam-bert-predictor']);
    expect(await consistencyProblems(manifests)).toEqual([]);
  });

  it('the consistency checks catch a drift between the files (they are not vacuous)', async () => {
    const { manifests } = await loadManifests();
    const drifts = [
      drift<IDeployment>(
        'Deployment',
        (d) => (d.spec!.template.spec!.terminationGracePeriodSeconds = 40),
        'terminationGracePeriodSeconds 40 < preStop 10 s + drain 30 s + margin 5 s',
      ),
      drift<IConfigMap>(
        'ConfigMap',
        plainSlo('drain_timeout_ms: 30000', 'drain_timeout_ms: 60000'),
        'terminationGracePeriodSeconds 45 < preStop 10 s + drain 60 s + margin 5 s',
        'offramp-config',
      ),
      drift<IConfigMap>(
        'ConfigMap',
        plainSlo('http_port: 8080', 'http_port: 9090'),
        'containerPort http is 8080, the SLO file says 9090',
        'offramp-config',
      ),
      drift<IConfigMap>(
        'ConfigMap',
        plainSlo('workers: 2', 'workers: 4'),
        'CPU request 2500m < workers × intra_op_threads = 4 cores',
        'offramp-config',
      ),
      drift<IDeployment>(
        'Deployment',
        (d) => (firstContainer(d).readinessProbe!.httpGet!.path = '/healthz'),
        'readinessProbe gets /healthz, not /v2/health/ready',
      ),
      drift<IDeployment>('Deployment', (d) => delete firstContainer(d).lifecycle, 'no preStop sleep'),
      drift<IService>(
        'Service',
        (s) => (s.spec!.ports![1]!.targetPort = 'grpc-web'),
        'targets grpc-web, not a port of',
      ),
      drift<KubeObject>(
        'InferenceService',
        (i) => (i.metadata!.name = 'mnist'),
        'no ConfigMap offramp-kserve-config with key mnist.yaml',
      ),
      drift<KubeObject>(
        'InferenceService',
        (i) => delete i.metadata!.annotations!['serving.kserve.io/autoscalerClass'],
        'autoscalerClass is not external',
      ),
      drift<IConfigMap>(
        'ConfigMap',
        (c) => (c.data!['spam-bert.yaml'] = c.data!['spam-bert.yaml']!.replace('name: spam-bert', 'name: spam')),
        'its SLO file serves spam at /mnt/models; KServe needs exactly spam-bert at /mnt/models',
        'offramp-kserve-config',
      ),
      drift<IHorizontalPodAutoscaler>(
        'HorizontalPodAutoscaler',
        (h) => (h.spec.metrics![0]!.pods!.metric.name = 'offramp_queue_depth'),
        'offramp_queue_depth is not a metric the adapter rules expose',
      ),
      drift<IPodDisruptionBudget>(
        'PodDisruptionBudget',
        (b) => (b.spec!.selector!.matchLabels = { app: 'other' }),
        'no PodDisruptionBudget covers',
      ),
      drift<IConfigMap>(
        'ConfigMap',
        (c) =>
          (c.data![ADAPTER_CONFIG_KEY] = c.data![ADAPTER_CONFIG_KEY]!.replaceAll(
            'offramp_slo_latency_seconds',
            'offramp_slo_seconds',
          )),
        'offramp_slo_seconds is not a metric offramp exports',
        ADAPTER_CONFIG_MAP,
      ),
    ];
    for (const d of drifts)
      expect((await consistencyProblems(drifted(manifests, d))).join('\n'), d.problem).toContain(d.problem);
  });

  it('the adapter rules read offramp metrics with their labels, and promtool parses their queries', async () => {
    const { manifests } = await loadManifests();
    const rules = adapterRules(manifests).flatMap((c) => c.rules);
    expect(rules.map(exposedName).sort()).toEqual([
      'offramp_queue_wait_p95_slo_ratio',
      'offramp_rejected_requests_ratio',
    ]);
    const run = await promtoolCheckRules(rules.map(adapterQuery), 'offramp_adapter:rule');
    expect(run.output).toContain(`${rules.length} rules found`);
    expect(run.status, run.output).toBe(0);
  });
});
