/**
 * A served model's tuner state on disk (`server.state_dir`, one `<model>.tuner.json` per model):
 * what it holds, how it is written (atomically) and read back, and what a restarted server may
 * take from it (`restoreTunerState`). When it is written: tuner-state-saver.ts.
 *
 * What is saved: the prepared model's identity (a state is never applied to another model, nor
 * to the same one prepared again); the tuner kind, exit policy and mode, and the budget,
 * confidence and window it was learned under; for an online tuner its resume point — active
 * ramps, thresholds and the rows they were tuned on, compact (tuner/resume.ts); the operator's
 * pins and pause. A static or off model saves its pins only.
 *
 * At start the file is rejected whole (one log line; the model starts as configured) when it
 * cannot be read or parsed, has another format, belongs to another model or another preparation
 * of it, was saved under another tuner kind or exit policy, or names a ramp the model no longer
 * has or has disabled. Otherwise pins and pause are restored (they are the operator's intent,
 * not learned), and the learned part only if the guard, re-checking the saved thresholds on the
 * saved rows under the budget, confidence and window in force now, lets them pass
 * (tuner/resume.ts `recheckResumePoint`); if not, the tuner starts as it would without a file.
 *
 * The rows are stored as base64 columns of little-endian numbers (argmax and exit as int32,
 * scores as float64): ten thousand rows of three ramps are about 0.6 MB, and encode in a few
 * milliseconds where JSON arrays of objects would take tens.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import {
  EXIT_MODES,
  EXIT_POLICIES,
  type ExitMode,
  type ExitPolicyKind,
  type ExitRule,
} from '../../tuner/exit-policy.js';
import type { LatencyProfileData } from '../../tuner/latency-model.js';
import {
  expandResumePoint,
  recheckResumePoint,
  type CompactResumePoint,
  type CompactRows,
  type ResumeCheck,
} from '../../tuner/resume.js';
import { isOnlineTunerKind, TUNER_KINDS, type TunerResumePoint, type TunerSetting } from '../../tuner/tuner.js';
import type { CascadeConfig } from '../config/index.js';
import type { PreparedManifest } from '../model/manifest.js';
import { describeThresholds } from './tuning-log.js';

/** The format this code writes and the only one it reads. */
export const TUNER_STATE_FORMAT = 'offramp.tuner-state/1';

/**
 * Rows saved at most: enough for the guarded tuner's tuning window at the default window (10 ×
 * 1,000 rows). Judged on one window only, thresholds tested on ten rarely pass the re-check:
 * the bound on a tenth of the rows is far looser (docs/architecture.md, Tuner state across restarts).
 */
export const MAX_SAVED_ROWS = 10_000;

/** Ramp id → threshold (null = never). */
type ThresholdMap = ReadonlyMap<number, number | null>;

/** Which prepared model a state was learned on. */
export interface ModelIdentity {
  /** The manifest's name, creation time and the ONNX model's sha256: another `prepare` changes them. */
  name: string;
  createdAt: string;
  modelSha256: string;
  /** sha256 of the exits: each ramp's position and head, and a cascade's tiers (members and rule). */
  exits: string;
}

/** The tuner a state was learned by, and under which settings. */
export interface SavedTunerSettings {
  kind: TunerSetting;
  policy: ExitPolicyKind;
  mode: ExitMode;
  budget: number;
  confidence: number;
  window: number;
}

/** What LiveTuning saves of itself (live-tuning.ts `saveable`). */
export interface SavedTuning {
  tuner: SavedTunerSettings;
  /** An online tuner's resume point; null for static and off. */
  learned: CompactResumePoint | null;
  pins: ThresholdMap;
  paused: boolean;
}

/** A state file's contents. */
export interface TunerStateFile extends SavedTuning {
  format: typeof TUNER_STATE_FORMAT;
  /** ISO 8601. */
  savedAt: string;
  /** The served model's name. */
  model: string;
  identity: ModelIdentity;
}

/** Where model `name`'s state lives in `stateDir`. Model names are URL-safe, so usable as file names. */
export function tunerStatePath(stateDir: string, name: string): string {
  return join(stateDir, `${name}.tuner.json`);
}

/** The identity of the model served from `prepared` (and the cascade in front of it, if any). */
export function modelIdentity(prepared: PreparedManifest, cascade: CascadeConfig | null): ModelIdentity {
  // Not the profile (`offramp profile` re-measures it: thresholds are about agreement, not time),
  // nor anything measured at load (a cascade tier's cost).
  const exits = {
    ramps: prepared.ramps.map((r) => [r.id, r.tensor, r.head.file, r.head.kind, r.head.temperature]),
    tiers: cascade?.tiers.map((t) => [t.members, t.rule]) ?? [],
  };
  return {
    name: prepared.name,
    createdAt: prepared.createdAt,
    modelSha256: prepared.model.sha256,
    exits: createHash('sha256').update(JSON.stringify(exits)).digest('hex'),
  };
}

// ---------------------------------------------------------------------------------------------
// Encoding

interface RowsJson {
  count: number;
  ramps: number[];
  exit: string;
  final: string;
  argmax: string;
  score: string;
}

interface StateJson {
  format: string;
  savedAt: string;
  model: string;
  identity: ModelIdentity;
  tuner: SavedTunerSettings;
  learned: { activeRamps: number[]; thresholds: Record<string, number | null>; rows: RowsJson } | null;
  pins: Record<string, number | null>;
  paused: boolean;
}

function int32Base64(values: Int32Array): string {
  const bytes = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => bytes.writeInt32LE(v, i * 4));
  return bytes.toString('base64');
}

function float64Base64(values: Float64Array): string {
  const bytes = Buffer.alloc(values.length * 8);
  values.forEach((v, i) => bytes.writeDoubleLE(v, i * 8));
  return bytes.toString('base64');
}

function asRecord(thresholds: ThresholdMap): Record<string, number | null> {
  return Object.fromEntries([...thresholds].sort(([a], [b]) => a - b).map(([id, t]) => [String(id), t]));
}

/** A state as the file's text. */
export function encodeTunerState(state: TunerStateFile): string {
  const { learned } = state;
  const json: StateJson = {
    format: state.format,
    savedAt: state.savedAt,
    model: state.model,
    identity: state.identity,
    tuner: state.tuner,
    learned: learned && {
      activeRamps: learned.activeRamps,
      thresholds: asRecord(learned.thresholds),
      rows: {
        count: learned.rows.count,
        ramps: learned.rows.ramps,
        exit: int32Base64(learned.rows.exit),
        final: int32Base64(learned.rows.final),
        argmax: int32Base64(learned.rows.argmax),
        score: float64Base64(learned.rows.score),
      },
    },
    pins: asRecord(state.pins),
    paused: state.paused,
  };
  return `${JSON.stringify(json)}\n`;
}

/** Thrown by the decoder: what is wrong with the file, for the log line. */
class CorruptState extends Error {}

function need(condition: boolean, what: string): asserts condition {
  if (!condition) throw new CorruptState(what);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isString = (v: unknown): v is string => typeof v === 'string';
const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isRampId = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0;

function rampList(v: unknown, what: string): number[] {
  need(Array.isArray(v) && v.every(isRampId), `${what} is not a list of ramp ids`);
  const ids = v;
  need(
    ids.every((id, i) => i === 0 || id > (ids[i - 1] as number)),
    `${what} is not in model order without repeats`,
  );
  return ids;
}

function thresholdMap(v: unknown, what: string): Map<number, number | null> {
  need(isObject(v), `${what} is not a mapping`);
  const out = new Map<number, number | null>();
  for (const [key, t] of Object.entries(v)) {
    need(/^(0|[1-9][0-9]*)$/.test(key), `${what} has a key that is not a ramp id (${JSON.stringify(key)})`);
    need(t === null || isFiniteNumber(t), `${what}.${key} is not a threshold`);
    out.set(Number(key), t);
  }
  return out;
}

function column<T extends Int32Array | Float64Array>(
  v: unknown,
  length: number,
  what: string,
  make: (n: number) => T,
): T {
  need(isString(v) && /^[A-Za-z0-9+/]*={0,2}$/.test(v), `rows.${what} is not base64`);
  const bytes = Buffer.from(v, 'base64');
  const out = make(length);
  const width = out.BYTES_PER_ELEMENT;
  need(bytes.length === length * width, `rows.${what} holds ${bytes.length} bytes, not ${length * width}`);
  for (let i = 0; i < length; i++) out[i] = width === 4 ? bytes.readInt32LE(i * 4) : bytes.readDoubleLE(i * 8);
  return out;
}

function rows(v: unknown): CompactRows {
  need(isObject(v), 'learned.rows is not a mapping');
  const count = v.count;
  need(Number.isInteger(count) && (count as number) >= 0, 'rows.count is not a row count');
  const n = count as number;
  const ramps = rampList(v.ramps, 'rows.ramps');
  const out: CompactRows = {
    ramps,
    count: n,
    exit: column(v.exit, n, 'exit', (k) => new Int32Array(k)),
    final: column(v.final, n, 'final', (k) => new Int32Array(k)),
    argmax: column(v.argmax, n * ramps.length, 'argmax', (k) => new Int32Array(k)),
    score: column(v.score, n * ramps.length, 'score', (k) => new Float64Array(k)),
  };
  // −1: the row has no reading of that ramp.
  need(
    out.argmax.every((a) => a >= -1),
    'rows.argmax holds a class below −1',
  );
  return out;
}

/**
 * A state file's text as a state. Throws an Error saying what is wrong (not JSON, another
 * format, a field missing or of the wrong kind, columns of the wrong length).
 */
export function decodeTunerState(text: string): TunerStateFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CorruptState(`not JSON (${(err as Error).message})`);
  }
  need(isObject(json), 'not a JSON object');
  need(
    json.format === TUNER_STATE_FORMAT,
    `format ${JSON.stringify(json.format)}, not ${TUNER_STATE_FORMAT} (another version of offramp wrote it)`,
  );
  need(isString(json.savedAt) && !Number.isNaN(Date.parse(json.savedAt)), 'savedAt is not a time');
  need(isString(json.model), 'model is not a name');
  const identity = json.identity;
  need(
    isObject(identity) && [identity.name, identity.createdAt, identity.modelSha256, identity.exits].every(isString),
    'identity is incomplete',
  );
  const tuner = json.tuner;
  need(isObject(tuner), 'tuner is not a mapping');
  need((TUNER_KINDS as readonly unknown[]).includes(tuner.kind), 'tuner.kind is not a tuner kind');
  need((EXIT_POLICIES as readonly unknown[]).includes(tuner.policy), 'tuner.policy is not an exit policy');
  need((EXIT_MODES as readonly unknown[]).includes(tuner.mode), 'tuner.mode is not an exit mode');
  need([tuner.budget, tuner.confidence, tuner.window].every(isFiniteNumber), 'tuner settings are not numbers');
  need(typeof json.paused === 'boolean', 'paused is not true or false');
  let learned: CompactResumePoint | null = null;
  if (json.learned !== null) {
    need(isObject(json.learned), 'learned is not a mapping or null');
    const activeRamps = rampList(json.learned.activeRamps, 'learned.activeRamps');
    const thresholds = thresholdMap(json.learned.thresholds, 'learned.thresholds');
    need(
      thresholds.size === activeRamps.length && activeRamps.every((id) => thresholds.has(id)),
      'learned.thresholds does not name exactly the active ramps',
    );
    const saved = rows(json.learned.rows);
    need(
      saved.ramps.length === activeRamps.length && saved.ramps.every((id, i) => id === activeRamps[i]),
      "learned.rows does not carry the active ramps' readings",
    );
    learned = { activeRamps, thresholds, rows: saved };
  }
  return {
    format: TUNER_STATE_FORMAT,
    savedAt: json.savedAt,
    model: json.model,
    identity: identity as unknown as ModelIdentity,
    tuner: {
      kind: tuner.kind as TunerSetting,
      policy: tuner.policy as ExitPolicyKind,
      mode: tuner.mode as ExitMode,
      budget: tuner.budget as number,
      confidence: tuner.confidence as number,
      window: tuner.window as number,
    },
    learned,
    pins: thresholdMap(json.pins, 'pins'),
    paused: json.paused,
  };
}

// ---------------------------------------------------------------------------------------------
// Files

/**
 * Writes `state` to `path` atomically: into a temporary file beside it (named for this process,
 * so that replicas sharing the folder never write the same one), flushed to disk, then renamed
 * over `path`. A crash at any point leaves either the previous file or the new one, never a part
 * of one; only a stray temporary file, which `removeStaleTemporaries` clears at the next start.
 */
export async function writeTunerState(path: string, state: TunerStateFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const handle = await open(temporary, 'w', 0o644);
    try {
      await handle.writeFile(encodeTunerState(state));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (err) {
    await unlink(temporary).catch(() => undefined);
    throw err;
  }
}

/** Deletes temporary files a crashed write left beside `path` (best effort). */
export async function removeStaleTemporaries(path: string): Promise<void> {
  const prefix = `${basename(path)}.`;
  const names = await readdir(dirname(path)).catch(() => [] as string[]);
  await Promise.all(
    names
      .filter((name) => name.startsWith(prefix) && name.endsWith('.tmp'))
      .map((name) => unlink(join(dirname(path), name)).catch(() => undefined)),
  );
}

/** A state file read: its state, none there, or why it cannot be used. */
export type ReadState = { state: TunerStateFile } | { missing: true } | { problem: string };

export async function readTunerState(path: string): Promise<ReadState> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { missing: true };
    return { problem: `cannot be read (${code ?? (err as Error).message})` };
  }
  try {
    return { state: decodeTunerState(text) };
  } catch (err) {
    return { problem: `is corrupt: ${(err as Error).message}` };
  }
}

// ---------------------------------------------------------------------------------------------
// Restoring

/** Where a model's tuner state came from, for /exits (src/data-plane/types.ts RestoredReport). */
export interface RestoredState {
  from: 'file';
  savedAt: string;
  /** Rows saved with the learned state (0 without one). */
  rows: number;
  /** The guard's re-check of the saved thresholds; null when nothing learned was saved. */
  recheck: Pick<ResumeCheck, 'disagreement' | 'upperBound' | 'passed' | 'rule'> | null;
}

/** What LiveTuning starts from, out of a state file that was not rejected. */
export interface RestoredTuning {
  /** The saved ramps, thresholds and rows, when they passed the re-check (online tuners only). */
  resume?: TunerResumePoint;
  pins: ThresholdMap;
  paused: boolean;
  report: RestoredState;
}

/** What the model serving now is, for judging a saved state against it. */
export interface RestoreContext {
  identity: ModelIdentity;
  kind: TunerSetting;
  rule: ExitRule;
  profile: LatencyProfileData;
  accuracy: { budget: number; confidence: number; window: number };
  /** Every exit id the model has (ramps; for a cascade, tiers then ramps). */
  exits: readonly number[];
  disabled: ReadonlyMap<number, string>;
}

/**
 * Judges a saved state against the model serving now (see the file comment): rejected (one line
 * saying why), or what to restore, with a line for the log.
 */
export function restoreTunerState(
  state: TunerStateFile,
  context: RestoreContext,
): { rejected: string } | { restored: RestoredTuning; line: string } {
  const { identity, kind, rule } = context;
  const saved = state.identity;
  if (
    saved.createdAt !== identity.createdAt ||
    saved.modelSha256 !== identity.modelSha256 ||
    saved.name !== identity.name
  )
    return {
      rejected: `it was saved for ${saved.name} prepared ${saved.createdAt}, not ${identity.name} prepared ${identity.createdAt}`,
    };
  if (saved.exits !== identity.exits)
    return { rejected: "the model's ramps or cascade tiers are not those it was saved with" };
  if (state.tuner.kind !== kind)
    return { rejected: `it was saved by tuner ${state.tuner.kind}; the model now has tuner ${kind}` };
  if (state.tuner.policy !== rule.policy)
    return { rejected: `it was saved under the ${state.tuner.policy} policy; the model now has ${rule.policy}` };
  const named = [...(state.learned?.activeRamps ?? []), ...state.pins.keys()];
  for (const id of named) {
    if (!context.exits.includes(id)) return { rejected: `it names ramp ${id}, which the model no longer has` };
    const disabled = context.disabled.get(id);
    if (disabled !== undefined) return { rejected: `it names ramp ${id}, which is disabled (${disabled})` };
  }

  const learned = state.learned;
  let resume: TunerResumePoint | undefined;
  let recheck: RestoredState['recheck'] = null;
  let why = 'nothing learned was saved';
  if (learned && isOnlineTunerKind(kind)) {
    const point = expandResumePoint(learned, Date.parse(state.savedAt));
    const check = recheckResumePoint(point, { kind, rule, profile: context.profile, ...context.accuracy });
    recheck = {
      disagreement: check.disagreement,
      upperBound: check.upperBound,
      passed: check.passed,
      rule: check.rule,
    };
    // A ramp set over a lowered exits.max_ramps or ramp_budget is the tuner's to trim: its first
    // ramp-set check drops the least useful ramps (tuner/ramp-utility.ts).
    if (check.passed) {
      resume = point;
      why = `the guard's re-check passed (${describeCheck(check)}): ${describeThresholds(learned.thresholds)}`;
    } else {
      why = `the guard's re-check failed (${describeCheck(check)}); the tuner starts as configured`;
    }
  }
  const pins = state.pins;
  const restored: RestoredTuning = {
    ...(resume ? { resume } : {}),
    pins,
    paused: state.paused && isOnlineTunerKind(kind),
    report: { from: 'file', savedAt: state.savedAt, rows: learned?.rows.count ?? 0, recheck },
  };
  const operator = `pins ${pins.size > 0 ? describeThresholds(pins) : 'none'}${restored.paused ? '; paused' : ''}`;
  return {
    restored,
    line: `tuner state of ${state.savedAt} (${learned?.rows.count ?? 0} rows, learned at budget ${state.tuner.budget}): ${why}; ${operator}`,
  };
}

function percent(x: number | null): string {
  return x === null ? '-' : `${(x * 100).toFixed(2)} %`;
}

function describeCheck(check: ResumeCheck): string {
  const bound = check.rule === 'guarded' ? `, upper bound ${percent(check.upperBound)}` : '';
  return `${check.rule} rule on ${check.rows} rows: disagreement ${percent(check.disagreement)}${bound}`;
}

/**
 * Reads model state file `path` at start and judges it (`restoreTunerState`): what to restore,
 * if anything, and the one line to log. Clears what a crashed write left beside it first.
 * `rejected`: there was a file and it was not used (the model starts as configured).
 */
export async function loadTunerState(
  path: string,
  context: RestoreContext,
): Promise<{ restored?: RestoredTuning; rejected?: true; line: string }> {
  await removeStaleTemporaries(path);
  const read = await readTunerState(path);
  if ('missing' in read) return { line: `no saved tuner state at ${path}: starting as configured` };
  const rejected = (why: string) => ({
    rejected: true as const,
    line: `tuner state ${path} not used: ${why}; starting as configured (the next save replaces it)`,
  });
  if ('problem' in read) return rejected(`it ${read.problem}`);
  const outcome = restoreTunerState(read.state, context);
  if ('rejected' in outcome) return rejected(outcome.rejected);
  return { restored: outcome.restored, line: `restored from ${path} the ${outcome.line}` };
}
