/**
 * The serving policies the bench compares, and the SLO file each is served with. Everything but
 * the tuner, the exit mode and (for `--cascade`) the cascade section with exits.max_ramps is the
 * same for all of them, and at the documented defaults (src/config/slo.example.yaml), so
 * differences come from the policy alone.
 */

import type { ExitMode } from '../../tuner/exit-policy.js';
import type { BodyFormat } from '../load/request-body.js';
import type { TunerSetting } from '../../tuner/tuner.js';
import type { CascadeRule } from '../../tuner/agreement-rule.js';

/** The cascade policies `--cascade` serves (bench/lib/cascades.ts). */
export type CascadePolicyName = 'abc-fixed' | 'abc-tuned' | 'single-small' | 'abc-ramps';
/** Computed, not served: the ramp oracle and the cascade oracle. */
export type ComputedPolicyName = 'oracle' | 'cascade-oracle';

export type PolicyName = 'vanilla' | 'static' | 'apparate' | 'guarded' | CascadePolicyName | ComputedPolicyName;

/** One tier of an SLO file's `cascade` section, as the bench writes it. */
export interface TierConfig {
  members: string[];
  rule: CascadeRule;
  theta: number | 'tuned';
}

/** The `cascade` section and exits.max_ramps a cascade policy is served with. */
export interface CascadeServing {
  tiers: TierConfig[];
  /** exits.max_ramps: 0 = the backbone answers whole (ABC); undefined = the default (ramps as guarded-drop). */
  maxRamps?: number;
}

export interface ServedPolicy {
  policy: Exclude<PolicyName, ComputedPolicyName>;
  mode: ExitMode;
  tuner: TunerSetting;
  /** What it is, for the report. */
  about: string;
  /** Tiers in front of the model, and exits.max_ramps (bench/lib/cascades.ts); absent: no cascade. */
  cascade?: CascadeServing;
}

export const SERVED_POLICIES: readonly ServedPolicy[] = [
  { policy: 'vanilla', mode: 'release', tuner: 'off', about: 'no ramps: the plain model (baseline)' },
  {
    policy: 'static',
    mode: 'release',
    tuner: 'static',
    about: 'thresholds calibrated offline by prepare on the bootstrap set',
  },
  {
    policy: 'apparate',
    mode: 'release',
    tuner: 'apparate',
    about: "online: Apparate's greedy hill-climb from live feedback",
  },
  {
    policy: 'guarded',
    mode: 'release',
    tuner: 'guarded',
    about: 'online: Clopper–Pearson-guarded thresholds; exited rows keep running',
  },
  {
    policy: 'guarded',
    mode: 'drop',
    tuner: 'guarded',
    about: 'online: guarded thresholds; exited rows leave the batch',
  },
];

/** A served policy with the wire format its load is sent in, under the label its rows carry. */
export interface ServedVariant {
  policy: ServedPolicy;
  body: BodyFormat;
  /** policyLabel(), or "vanilla (json)" for the JSON-body baseline beside binary ones. */
  label: string;
}

/**
 * What one round serves, in order: every policy with the run's body format and, when that is
 * binary, vanilla again with JSON bodies (labelled), so the wire format's cost shows on its own.
 *
 * With `cascade` (the task's cascade policies, `--cascade`): vanilla, guarded-drop (ramps alone)
 * and the cascade policies, all with the run's body format — the comparison issue 14 asks for,
 * on the same top model under the same load.
 */
export function servedVariants(body: BodyFormat, cascade?: readonly ServedPolicy[]): ServedVariant[] {
  if (cascade) {
    const ramps = SERVED_POLICIES.filter(
      (p) => p.policy === 'vanilla' || (p.policy === 'guarded' && p.mode === 'drop'),
    );
    return [...ramps, ...cascade].map((policy) => ({ policy, body, label: policyLabel(policy) }));
  }
  const variants = SERVED_POLICIES.map((policy) => ({ policy, body, label: policyLabel(policy) }));
  if (body === 'binary') {
    const vanilla = SERVED_POLICIES.find((p) => p.policy === 'vanilla')!;
    variants.splice(1, 0, { policy: vanilla, body: 'json', label: 'vanilla (json)' });
  }
  return variants;
}

/** A label as a file-name part: "vanilla (json)" → "vanilla-json". */
export function fileLabel(label: string): string {
  return label.replace(/[^a-z0-9]+/gi, '-').replace(/-+$/, '');
}

/** Computed, not served: every request exits at the earliest ramp that agrees with the final layer. */
export const ORACLE_ABOUT = 'computed: earliest ramp agreeing with the final layer (no head cost, perfect foresight)';

/** Computed, not served: every request stops at the cheapest tier whose plurality is the full model's answer. */
export const CASCADE_ORACLE_ABOUT =
  "computed: each request stops at the ABC tier when its members' plurality equals the full model's answer " +
  '(paying the tier), otherwise pays the tier and the full model (perfect foresight)';

/** Short unique name for files and legends: "vanilla", "guarded-drop". */
export function policyLabel(p: { policy: PolicyName; mode: ExitMode }): string {
  return p.policy === 'guarded' ? `guarded-${p.mode}` : p.policy;
}

/** The accuracy budget and feedback window every tuner gets (the defaults). */
export const ACCURACY = { budget: 0.01, confidence: 0.95, window: 1000 } as const;

/**
 * The SLO file for one policy, serving the prepared model in `modelDir` under `modelName` (the
 * manifest's name, so the server's metrics and logs name the model measured). JSON is valid YAML, so the object is written with JSON.stringify
 * and no YAML is built by hand. Ports come from OFFRAMP_HTTP_PORT / OFFRAMP_GRPC_PORT; workers
 * and intra-op threads stay at their defaults (1 × 2 threads: the README's figures show other
 * splits of 2 cores do not help over HTTP with the client on the same machine).
 */
export function servingConfig(modelDir: string, modelName: string, p: ServedPolicy, sloMs: number): object {
  return {
    server: { host: '127.0.0.1' },
    models: [
      {
        name: modelName,
        path: modelDir,
        slo: { latency_ms: sloMs },
        accuracy: ACCURACY,
        exits: {
          mode: p.mode,
          thresholds: null,
          ...(p.cascade?.maxRamps === undefined ? {} : { max_ramps: p.cascade.maxRamps }),
        },
        tuner: { kind: p.tuner },
        batching: { max_batch_size: 16, max_queue_delay_ms: 4 },
        ...(p.cascade ? { cascade: { tiers: p.cascade.tiers, execution: 'merged' } } : {}),
      },
    ],
  };
}
