/** The serving config: the one module that reads the SLO file (slo.example.yaml) and `process.env`. */
export {
  BUNDLED_MODELS,
  DEFAULT_CONFIG_SOURCE,
  ENV_SOURCE,
  configPathFromEnv,
  defaultServingConfig,
  formatConfigProblem,
  loadServingConfig,
  parseServingConfig,
  resolveServingConfig,
  type AccuracyConfig,
  type BatchingConfig,
  type CascadeConfig,
  type CascadeTierConfig,
  type ConfigProblem,
  type DashboardConfig,
  type Env,
  type ExitsConfig,
  type ModelConfig,
  type ParseOptions,
  type ServerConfig,
  type ServingConfig,
  type SloConfig,
  type TunerConfig,
} from './serving-config.js';
export { watchServingConfig, type WatchOptions } from './watch.js';
export {
  BATCH_DELAYS,
  CASCADE_EXECUTIONS,
  CASCADE_RULES,
  EXIT_MODES,
  EXIT_POLICIES,
  TUNER_KINDS,
  type BatchDelay,
  type CascadeExecution,
  type CascadeRule,
  type SloConfigInput,
} from './schema.js';
export { packageRoot } from './package-root.js';
export { renderSloConfigJsonSchema, sloConfigJsonSchema } from './json-schema.js';
