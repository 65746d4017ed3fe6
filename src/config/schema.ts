/**
 * The SLO file's schema (every field, with a comment: slo.example.yaml), in the file's own
 * snake_case. Every field has a default, a bound and a description; the descriptions land in
 * slo-config.schema.json (`npm run schema`).
 *
 * Error messages are written here, next to the bound they report, so that a problem reads
 * `models[0].batching.max_batch_size: 0 is out of range (1..1024)`: the value and what is allowed.
 * Cross-field rules (e.g. a preferred batch size above max_batch_size) are refinements at the end.
 */
import { z } from 'zod';
import { EXIT_MODES, EXIT_POLICIES } from '../../tuner/exit-policy.js';
import { TUNER_KINDS, TUNER_STARTS } from '../../tuner/tuner.js';
import { CASCADE_RULES, type CascadeRule } from '../../tuner/agreement-rule.js';

// ---------------------------------------------------------------------------------------------
// Message helpers: zod calls these with the issue; `input` is the offending value.

/** A value as it appears in a message: scalars literally, containers by kind. */
export function showValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  // What is left is a scalar (number, boolean, bigint, undefined, symbol) or a function.
  const scalar = value as number | boolean | bigint | symbol | undefined;
  return String(scalar);
}

/** Message for a value of the wrong kind (or a missing required one). */
function notA(expected: string) {
  return (iss: { input?: unknown }): string =>
    iss.input === undefined ? `is required: ${expected}` : `${showValue(iss.input)} is not ${expected}`;
}

interface Bound {
  min: number;
  max: number;
  /** `min` itself is not allowed. */
  minExclusive?: boolean;
  maxExclusive?: boolean;
}

/** `1..1024` for integers, interval notation (`(0, 0.5]`) for reals. */
function rangeText(b: Bound, integer: boolean): string {
  if (integer && !b.minExclusive && !b.maxExclusive) return `${b.min}..${b.max}`;
  return `${b.minExclusive ? '(' : '['}${b.min}, ${b.max}${b.maxExclusive ? ')' : ']'}`;
}

function bounded(b: Bound, integer: boolean) {
  const range = rangeText(b, integer);
  // `0 is out of range (1..1024)`, but `0.6 is out of range (0, 0.5]`: an interval brings its own brackets.
  const shown = /^[[(]/.test(range) ? range : `(${range})`;
  const outOfRange = (iss: { input?: unknown }): string => `${showValue(iss.input)} is out of range ${shown}`;
  let n = z.number({ error: notA(integer ? `an integer in ${range}` : `a number in ${range}`) });
  if (integer) n = n.int({ error: (iss) => `${showValue(iss.input)} is not an integer ${shown}`, abort: true });
  n = b.minExclusive ? n.gt(b.min, { error: outOfRange }) : n.gte(b.min, { error: outOfRange });
  n = b.maxExclusive ? n.lt(b.max, { error: outOfRange }) : n.lte(b.max, { error: outOfRange });
  return n;
}

function int(b: Bound, value: number, doc: string) {
  return bounded(b, true).default(value).describe(doc);
}

function real(b: Bound, value: number, doc: string) {
  return bounded(b, false).default(value).describe(doc);
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T, value: T[number], doc: string) {
  return z
    .enum(values, { error: notA(`one of ${values.join(', ')}`) })
    .default(value)
    .describe(doc);
}

/** A mapping that rejects unknown keys: a typo must not be silently ignored. */
/** An optional folder path (null: the field's default behaviour); `doc` says what null means. */
function optionalFolder(doc: string) {
  return z
    .string({ error: notA('a folder path, or null') })
    .min(1, { error: notA('a folder path, or null') })
    .max(4096, { error: notA('a path (at most 4096 characters)') })
    .nullable()
    .default(null)
    .describe(doc);
}

function section<S extends z.ZodRawShape>(shape: S) {
  const allowed = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (iss) =>
      iss.code === 'unrecognized_keys' ? `unknown key; allowed keys: ${allowed}` : notA('a mapping')(iss),
  });
}

/** Letters, digits, '.', '_', '-', starting with a letter or digit: usable in a URL path as is. */
export const URL_SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function urlSafe(what: string, maxLength: number) {
  const expected = `a URL-safe ${what} (1..${maxLength} of letters, digits, '.', '_', '-', starting with a letter or digit)`;
  return z
    .string({ error: notA(expected) })
    .regex(URL_SAFE_NAME, { error: notA(expected) })
    .max(maxLength, { error: notA(expected) });
}

// ---------------------------------------------------------------------------------------------

// The choices are the tuner's vocabulary, defined once in tuner/ (the lowest layer that needs them).
export { CASCADE_RULES, EXIT_MODES, EXIT_POLICIES, TUNER_KINDS, TUNER_STARTS, type CascadeRule };

const PORT: Bound = { min: 0, max: 65535 };
const ADMIN_TOKEN_LENGTH = { min: 16, max: 1024 };

/** How long the dashboard's ring buffer reaches back, in seconds (src/dashboard/). */
const DASHBOARD_BUFFER_SECONDS: Bound = { min: 1, max: 86400 };

const dashboardSchema = section({
  enabled: z
    .boolean({ error: notA('true or false') })
    .default(true)
    .describe('Serves the live tuning dashboard at /dashboard on the HTTP port; false: no /dashboard routes at all.'),
  buffer_seconds: int(
    DASHBOARD_BUFFER_SECONDS,
    900,
    'Seconds of snapshots (one a second) the server keeps for the dashboard, so that a page opened or reconnecting ' +
      'gets them at once; sampling runs only while a page is open.',
  ),
  max_viewers: int(
    { min: 1, max: 1024 },
    16,
    'Dashboard streams (browser tabs) open at once at most; one more is refused with OFFRAMP_DASHBOARD_FULL.',
  ),
  results_dir: optionalFolder(
    "Folder of bench results (bench/results/*.json) the dashboard's frontier panel draws measured curves from; " +
      "a relative path resolves against the config file's folder; null: bench/results in the offramp package.",
  ),
});

const serverSchema = section({
  http_port: int(
    PORT,
    8080,
    'Port of the KServe v2 HTTP/REST endpoint; 0 picks a free port. Overridden by OFFRAMP_HTTP_PORT.',
  ),
  grpc_port: int(
    PORT,
    8081,
    'Port of the KServe v2 gRPC endpoint; 0 picks a free port. Overridden by OFFRAMP_GRPC_PORT.',
  ),
  host: z
    .string({ error: notA('a host name or address') })
    .min(1, { error: notA('a host name or address') })
    .max(253, { error: notA('a host name or address (at most 253 characters)') })
    .default('0.0.0.0')
    .describe(
      'Address both endpoints listen on ("0.0.0.0": all IPv4 interfaces, "::": all interfaces, "127.0.0.1": local only).',
    ),
  max_body_bytes: int(
    { min: 1024, max: 1073741824 },
    8388608,
    'Largest request body (HTTP) or message (gRPC) accepted, in bytes; larger requests get OFFRAMP_BODY_TOO_LARGE.',
  ),
  workers: int(
    { min: 1, max: 64 },
    2,
    'Executor worker threads; each holds its own onnxruntime sessions and runs one batch at a time. ' +
      'Default 2 × 1 thread: on a CPU, two single-thread workers keep both cores busy with two batches in flight, ' +
      'where one two-thread worker leaves a core idle between operators and batches (README, Measurements); ' +
      'on more cores, raise workers towards the core count.',
  ),
  intra_op_threads: int(
    { min: 1, max: 256 },
    1,
    'onnxruntime intra-op threads per worker (workers × intra_op_threads should not exceed the cores).',
  ),
  admin_token: z
    // The token is a secret: messages give its length, never its value.
    .string({
      error: (iss) =>
        `${typeof iss.input === 'object' ? showValue(iss.input) : `a ${typeof iss.input}`} is not a string or null (quote the token)`,
    })
    .min(ADMIN_TOKEN_LENGTH.min, {
      error: (iss) =>
        `a token of ${String(iss.input as string).length} characters is too short (${ADMIN_TOKEN_LENGTH.min}..${ADMIN_TOKEN_LENGTH.max} characters)`,
    })
    .max(ADMIN_TOKEN_LENGTH.max, {
      error: (iss) =>
        `a token of ${String(iss.input as string).length} characters is too long (${ADMIN_TOKEN_LENGTH.min}..${ADMIN_TOKEN_LENGTH.max} characters)`,
    })
    .nullable()
    .default(null)
    .describe(
      `Bearer token for admin endpoints (${ADMIN_TOKEN_LENGTH.min}..${ADMIN_TOKEN_LENGTH.max} characters); ` +
        'null disables them. Overridden by OFFRAMP_ADMIN_TOKEN.',
    ),
  drain_timeout_ms: int(
    { min: 1, max: 3600000 },
    30000,
    'On SIGTERM or SIGINT, longest wait for the requests already accepted to be answered, in milliseconds; ' +
      'when it passes, the process logs what was still in flight and exits with code 1.',
  ),
  worker_timeout_ms: int(
    { min: 100, max: 3600000 },
    30000,
    'A batch that runs on an executor worker longer than this, in milliseconds, means the worker stopped answering: ' +
      'it is terminated and replaced like a crashed one. Keep it far above any real batch (the manifest profile ' +
      'gives milliseconds per batch; a worker also builds re-split chains between batches).',
  ),
  fault_injection: z
    .boolean({ error: notA('true or false') })
    .default(false)
    .describe(
      'Enables POST /v2/models/{m}/admin/faults (admin token required), which crashes or hangs an executor worker ' +
        'for tests and chaos runs. Never in production; the server logs a warning at start when it is on.',
    ),
  state_dir: optionalFolder(
    "Folder where each model's tuner state is saved (<model>.tuner.json: learned thresholds, ramp set, the rows " +
      'they were tuned on, pins and pause) while serving and at shutdown, and read at start, where the guard ' +
      "re-checks it before use; a relative path resolves against the config file's folder; null: nothing is saved.",
  ),
  dashboard: dashboardSchema.prefault({}).describe('The live tuning dashboard (/dashboard).'),
});

const sloSchema = section({
  latency_ms: real(
    { min: 0, max: 60000, minExclusive: true },
    50,
    'Latency objective in milliseconds, from arrival to answer; the batcher never waits past what it allows.',
  ),
  percentile: real(
    { min: 0, max: 100, minExclusive: true, maxExclusive: true },
    95,
    'Percentile of requests that must meet latency_ms (95: p95).',
  ),
});

const accuracySchema = section({
  budget: real(
    { min: 0, max: 0.5, minExclusive: true },
    0.01,
    'Largest allowed disagreement with the full model over the window (0.01: at most 1% of answers differ).',
  ),
  confidence: real(
    { min: 0.5, max: 1, maxExclusive: true },
    0.95,
    'Probability (1 − δ) with which the guarded tuner keeps the budget, from an upper confidence bound on the disagreement.',
  ),
  window: int({ min: 50, max: 100000 }, 1000, 'Number of most recent requests over which disagreement is measured.'),
});

const thresholdsSchema = z
  .record(
    z.string().regex(/^(0|[1-9][0-9]{0,3})$/, {
      error: (iss) => `${showValue(iss.input)} is not a ramp id (an integer 0..9999)`,
    }),
    bounded({ min: -1000, max: 1 }, false),
    { error: notA('a mapping from ramp id to threshold, or null') },
  )
  .nullable()
  .default(null)
  .describe(
    'Static exit thresholds, ramp id → threshold on the policy score ' +
      '(confidence, margin: 0..1; entropy: ≤ 0, the score is −H). ' +
      'A ramp not listed never exits until the tuner sets it; null: all start at "never".',
  );

const exitsSchema = section({
  policy: oneOf(
    EXIT_POLICIES,
    'confidence',
    'Exit score: confidence (max p), entropy (−H(p)), margin (p1 − p2), or patience (the last `patience` ramps agree on the class).',
  ),
  mode: oneOf(
    EXIT_MODES,
    'drop',
    'drop: exited rows leave the batch and save compute (probes still run to the end and feed the tuner); ' +
      'release: an exited request is answered early but its row runs to the end (every request gives feedback, ' +
      'except while the guarded tuner is idle: then drop_feedback_fraction of rows run the heads). ' +
      'Default drop: on a CPU the batch does not run for free, so only drop turns exits into capacity ' +
      '(README, Measurements); choose release to get feedback from every request.',
  ),
  max_ramps: int({ min: 0, max: 16 }, 3, 'Most ramps active at once (0: no early exits).'),
  ramp_budget: real(
    { min: 0, max: 0.5 },
    0.1,
    'Largest total cost of active ramps, as a fraction of full-model latency at batch size 1 (the tuner drops the least useful ramps to stay within it).',
  ),
  patience: int(
    { min: 1, max: 16 },
    2,
    'For the patience policy: how many consecutive ramps must agree before a request exits.',
  ),
  drop_feedback_fraction: real(
    { min: 0, max: 1 },
    0.1,
    'In drop mode: share of rows drawn as probes at the start of each batch; ' +
      'a probe runs to the end whatever its exits (it is still answered early), ' +
      'and the online tuner learns only from probes, an unbiased sample of traffic. ' +
      'With an online tuner this is the settled share, once the tuner has settled, and the share while it is idle ' +
      '(no setting of its ramps saves 1 % on current traffic: every ramp at "never", heads run on probes only, either mode).',
  ),
  learning_feedback_fraction: real(
    { min: 0, max: 1 },
    0.5,
    'In drop mode with an online tuner: share of rows drawn as probes while the tuner learns ' +
      '(from the start, a tightening or a ramp-set change until it has tested a setting on enough rows, and while it ' +
      'holds its ramps after a window at risk); ' +
      'never below drop_feedback_fraction.',
  ),
  thresholds: thresholdsSchema,
});

const tunerSchema = section({
  kind: oneOf(
    TUNER_KINDS,
    'guarded',
    "guarded: thresholds that keep the budget with the given confidence; apparate: Apparate's greedy hill-climb; " +
      'static: exits.thresholds, or when null the thresholds prepare calibrated offline on the bootstrap set; ' +
      'off: no early exits.',
  ),
  interval_batches: int(
    { min: 1, max: 100000 },
    30,
    'Every this many batches, the ramp set is revisited: ramps that do not pay off are dropped, new positions tried.',
  ),
  start: oneOf(
    TUNER_STARTS,
    'calibrated',
    "Guarded tuner's starting thresholds: calibrated — prepare's offline calibration at the window-safe rate " +
      '(stricter than the budget), checked by the guard from the first row and replaced at its first tested re-tune; ' +
      'never — every ramp at "never" until the guard has enough rows. Ignored by the other kinds.',
  ),
});

/**
 * When the batcher waits for a fuller batch. work-conserving: never while a worker is idle; a
 * batch grows only while every worker is busy and goes when one frees. fixed: Triton's rule, up
 * to max_queue_delay_ms after the oldest arrival whatever the workers are doing.
 */
export const BATCH_DELAYS = ['work-conserving', 'fixed'] as const;
export type BatchDelay = (typeof BATCH_DELAYS)[number];

const batchingSchema = section({
  max_batch_size: int({ min: 1, max: 1024 }, 16, 'Most requests run together in one batch.'),
  delay: oneOf(
    BATCH_DELAYS,
    'work-conserving',
    'When to wait for a fuller batch. work-conserving: never while a worker is idle (what is queued goes at once); ' +
      'while every worker is busy the batch grows and goes when one frees. ' +
      'fixed: up to max_queue_delay_ms after the oldest arrival even on an idle worker (Triton). ' +
      'Either way never past the most urgent SLO deadline.',
  ),
  max_queue_delay_ms: real(
    { min: 0, max: 10000 },
    4,
    'With delay: fixed, longest a request waits for a fuller batch, in milliseconds (never past its SLO deadline); ' +
      'unused with delay: work-conserving.',
  ),
  max_queue_size: int(
    { min: 1, max: 1000000 },
    256,
    'Most requests waiting; more are rejected with OFFRAMP_QUEUE_FULL. Before that bound, a request the queued work ' +
      'would answer past its deadline is refused at once with OFFRAMP_OVERLOADED.',
  ),
  preferred_batch_sizes: z
    .array(bounded({ min: 1, max: 1024 }, true), { error: notA('a list of batch sizes') })
    .max(64, {
      error: (iss) => `a list of ${Array.isArray(iss.input) ? iss.input.length : '?'} sizes is too long (at most 64)`,
    })
    .default([])
    .describe('Batch sizes to form when possible (each ≤ max_batch_size); []: any size.'),
});

/**
 * Agreement-based cascade (ABC) tiers in front of the served model: each tier's members vote,
 * the tier answers when they agree enough, otherwise the row goes on (src/model/cascade.ts).
 */
/** merged: a tier's members merged into one ONNX graph, one call; separate: a session per member, called in turn. */
export const CASCADE_EXECUTIONS = ['merged', 'separate'] as const;
export type CascadeExecution = (typeof CASCADE_EXECUTIONS)[number];

const memberPath = z
  .string({ error: notA('a path to an ONNX file or a prepared model directory') })
  .min(1, { error: notA('a path to an ONNX file or a prepared model directory') })
  .max(4096, { error: notA('a path (at most 4096 characters)') });

const tierSchema = section({
  members: z
    .array(memberPath, { error: notA('a list of member model paths') })
    .min(1, { error: 'is empty: a tier needs at least one member (ABC uses 3)' })
    .max(16, {
      error: (iss) => `a list of ${Array.isArray(iss.input) ? iss.input.length : '?'} members is too long (at most 16)`,
    })
    .describe(
      "The tier's member models: ONNX classifiers (or prepared model directories) reading the served model's inputs " +
        "and giving its classes, in its order; relative paths resolve against the config file's folder. " +
        'ABC uses 3 members of similar cost and different architectures: agreement of different models is the signal.',
    ),
  rule: oneOf(
    CASCADE_RULES,
    'vote',
    "When the tier answers. vote: the plurality's share of the members' votes (argmax) ≥ theta (ABC's rule); " +
      "score: the members' mean probability of the plurality class ≥ theta.",
  ),
  theta: z
    .union(
      [
        bounded({ min: 0, max: 1, minExclusive: true }, false),
        z.literal('tuned', { error: notA('a number in (0, 1] or "tuned"') }),
      ],
      { error: notA('a number in (0, 1] or "tuned"') },
    )
    .optional()
    .describe(
      "The threshold on the rule's score. A number is fixed (ABC: 1 = all agree, 2/3 relaxed) and needs tuner.kind " +
        'static; "tuned": the online tuner (guarded or apparate) chooses it under the accuracy budget like a ramp ' +
        'threshold. Left out: tuned under an online tuner, 1 otherwise.',
    ),
});

const cascadeSchema = section({
  tiers: z
    .array(tierSchema, { error: notA('a list of tiers') })
    .min(1, { error: 'is empty: list at least one tier (the served model is the last tier)' })
    .max(8, { error: 'has more than 8 tiers' })
    .describe('Tiers in the order a request meets them, cheapest first; the served model (path) always answers last.'),
  execution: oneOf(
    CASCADE_EXECUTIONS,
    'merged',
    "How a tier's members run: merged — one ONNX graph holding every member, one call that shares the input " +
      '(the least CPU per tier: bench/cascade-execution.ts); separate — one session per member, called in turn.',
  ),
});

export const modelSchema = section({
  name: urlSafe('model name', 128).describe('Model name in URLs (/v2/models/{name}) and gRPC requests; unique.'),
  path: z
    .string({ error: notA('a path to a prepared model directory') })
    .min(1, { error: notA('a path to a prepared model directory') })
    .max(4096, { error: notA('a path (at most 4096 characters)') })
    .describe(
      "Prepared model directory (from `offramp prepare`); a relative path resolves against the config file's folder.",
    ),
  version: urlSafe('version', 64)
    .default('1')
    .describe('Version served (/v2/models/{name}/versions/{version}); a string, so quote numbers: "1".'),
  slo: sloSchema.prefault({}).describe('Latency objective.'),
  accuracy: accuracySchema.prefault({}).describe('Accuracy budget: agreement with the full model.'),
  exits: exitsSchema.prefault({}).describe('Early-exit policy and ramps.'),
  tuner: tunerSchema.prefault({}).describe('Online threshold and ramp tuning.'),
  batching: batchingSchema.prefault({}).describe('Dynamic batching (Triton semantics).'),
  cascade: cascadeSchema
    .nullable()
    .default(null)
    .describe(
      'Agreement-based cascade tiers in front of the model (null: none). The model at `path`, with its ramps, ' +
        'answers what every tier passes on.',
    ),
}).superRefine((m, ctx) => {
  const problem = (path: (string | number)[], input: unknown, message: string) =>
    ctx.addIssue({ code: 'custom', path, input, message: `${showValue(input)} ${message}` });
  // Refinements also run when a sibling field failed; only compare values that parsed as numbers.
  const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

  const max = m.batching.max_batch_size;
  m.batching.preferred_batch_sizes.forEach((size, i) => {
    if (num(size) && num(max) && size > max)
      problem(['batching', 'preferred_batch_sizes', i], size, `is larger than batching.max_batch_size (${max})`);
    if (m.batching.preferred_batch_sizes.indexOf(size) !== i)
      problem(['batching', 'preferred_batch_sizes', i], size, 'is listed twice');
  });
  if (
    num(m.batching.max_queue_delay_ms) &&
    num(m.slo.latency_ms) &&
    m.batching.max_queue_delay_ms >= m.slo.latency_ms
  ) {
    problem(
      ['batching', 'max_queue_delay_ms'],
      m.batching.max_queue_delay_ms,
      `must be below slo.latency_ms (${m.slo.latency_ms})`,
    );
  }
  const { policy, thresholds, patience, max_ramps: maxRamps } = m.exits;
  if (m.cascade) {
    // A tier's score is its rule's (vote share or mean probability); patience has no meaning across tiers.
    if (policy === 'patience')
      problem(
        ['exits', 'policy'],
        policy,
        'cannot serve a cascade (its tiers answer by their own rule): choose another policy',
      );
    const online = m.tuner.kind === 'guarded' || m.tuner.kind === 'apparate';
    m.cascade.tiers.forEach((tier, i) => {
      if (tier.theta === 'tuned' && !online)
        problem(
          ['cascade', 'tiers', i, 'theta'],
          tier.theta,
          `needs an online tuner (tuner.kind guarded or apparate, not ${m.tuner.kind})`,
        );
      // An online tuner keeps the budget over every exit it knows; a fixed θ beside it would
      // answer rows the tuner does not count.
      if (typeof tier.theta === 'number' && online)
        problem(
          ['cascade', 'tiers', i, 'theta'],
          tier.theta,
          `is fixed, but tuner.kind ${m.tuner.kind} tunes every exit under the budget: use theta: tuned, or tuner.kind: static`,
        );
    });
  }
  if (policy === 'patience' && num(patience) && num(maxRamps) && patience > maxRamps) {
    problem(['exits', 'patience'], patience, `exceeds exits.max_ramps (${maxRamps}): no request could ever exit`);
  }
  for (const [ramp, t] of Object.entries(thresholds ?? {})) {
    if (!num(t)) continue;
    if (policy === 'patience')
      problem(
        ['exits', 'thresholds', ramp],
        t,
        'is a threshold, but the patience policy uses none (remove exits.thresholds)',
      );
    else if ((policy === 'confidence' || policy === 'margin') && t < 0)
      problem(['exits', 'thresholds', ramp], t, `is out of range for the ${policy} policy ([0, 1])`);
    else if (policy === 'entropy' && t > 0)
      problem(['exits', 'thresholds', ramp], t, 'is out of range for the entropy policy (≤ 0: the score is −H)');
  }
});

export const sloConfigSchema = section({
  server: serverSchema.prefault({}).describe('Network endpoints and worker threads.'),
  models: z
    .array(modelSchema, { error: notA('a list of models') })
    .min(1, { error: 'is empty: list at least one model (or leave models out to serve the bundled models)' })
    .max(256, { error: 'has more than 256 models' })
    .optional()
    .describe('Models served. Left out: the bundled models, fmnist-resnet and spam-bert (models/ in the package).'),
})
  .superRefine((c, ctx) => {
    const seen = new Map<string, number>();
    (c.models ?? []).forEach((m, i) => {
      const first = seen.get(m.name);
      if (first === undefined) seen.set(m.name, i);
      else
        ctx.addIssue({
          code: 'custom',
          path: ['models', i, 'name'],
          input: m.name,
          message: `${showValue(m.name)} is already the name of models[${first}]; model names must be unique`,
        });
    });
    const { http_port: http, grpc_port: grpc } = c.server;
    if (http === grpc && http !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['server', 'grpc_port'],
        input: grpc,
        message: `${grpc} is also server.http_port; the two endpoints need different ports`,
      });
    }
  })
  .meta({
    title: 'offramp serving config (SLO file)',
    description:
      'Models to serve, with their latency objective, accuracy budget, early-exit policy and batching. See src/config/slo.example.yaml.',
  });

/** The file as written (fields may be left out). */
export type SloConfigInput = z.input<typeof sloConfigSchema>;
/** The file with every default filled in, still snake_case. */
export type SloConfigFile = z.output<typeof sloConfigSchema>;
export type ModelFile = z.output<typeof modelSchema>;
