/**
 * Builds the tuner an options object names. Kept apart from the interface (tuner.ts), which the
 * implementations import for their types: the interface never imports what implements it.
 */
import { ApparateTuner } from './apparate-tuner.js';
import { GuardedTuner } from './guarded-tuner.js';
import { StaticTuner } from './static-tuner.js';
import type { Tuner, TunerOptions } from './tuner.js';

/** The tuner `options.kind` names. Throws a RangeError for a budget or confidence outside (0, 1) or a window that is not a positive integer. */
export function createTuner(options: TunerOptions): Tuner {
  switch (options.kind) {
    case 'guarded':
      return new GuardedTuner(options);
    case 'apparate':
      return new ApparateTuner(options);
    case 'static':
      return new StaticTuner(options);
  }
}
