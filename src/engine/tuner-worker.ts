/**
 * The online tuner's own thread. A guarded re-tune searches thousands of rows and must not
 * stall the serving thread's event loop, so the tuner lives
 * here: feedback comes in as messages, and its thresholds, ramp set and estimates go back; asked,
 * it answers its resume point (what a state file saves, tuner-state-file.ts).
 * Messages: tuner-thread.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createTuner } from '../../tuner/create-tuner.js';
import type { OnlineTunerOptions } from '../../tuner/tuner.js';
import { compactResumePoint, type CompactResumePoint } from '../../tuner/resume.js';
import type { FromTuner, ToTuner } from './tuner-thread.js';

if (!parentPort) throw new Error('the tuner worker must run in a worker thread');
const port = parentPort;
const tuner = createTuner(workerData as OnlineTunerOptions);

/** Batches between state messages when nothing changed: keeps the estimates fresh at little cost. */
const QUIET_EVERY = 8;
let quiet = 0;
/** The tuner's feedback demand when the last state went out: a change is sent at once (it sets the probe share). */
let demand = tuner.feedbackDemand;

function post(message: FromTuner): void {
  port.postMessage(message);
}

port.on('message', (message: ToTuner) => {
  if (message.type === 'resume-point') {
    answerResumePoint(message.id, message.maxRows);
    return;
  }
  try {
    // A withdrawal is always answered: the re-tune it caused must reach the serving thread.
    const events = message.type === 'withdraw' ? tuner.withdrawRamp(message.ramp) : tuner.observe(message.records);
    if (message.type === 'observe' && events.length === 0 && tuner.feedbackDemand === demand && ++quiet < QUIET_EVERY)
      return;
    quiet = 0;
    demand = tuner.feedbackDemand;
    post({
      type: 'state',
      events,
      thresholds: [...tuner.thresholds],
      activeRamps: [...tuner.activeRamps],
      estimates: tuner.estimates,
    });
  } catch (err) {
    // A tuner bug must not take the model down: report it; the plan in force stays.
    post({ type: 'error', message: (err as Error).stack ?? String(err) });
  }
});

/**
 * The tuner's resume point, its rows compact (tuner/resume.ts): built here, off the serving
 * thread, and handed over without a copy (the columns' buffers are transferred).
 */
function answerResumePoint(id: number, maxRows: number): void {
  let point: CompactResumePoint | null = null;
  try {
    point = compactResumePoint(tuner.resumePoint(maxRows));
  } catch (err) {
    post({ type: 'error', message: (err as Error).stack ?? String(err) });
  }
  const { rows } = point ?? {};
  port.postMessage(
    { type: 'resume-point', id, point } satisfies FromTuner,
    // Columns made by compactRows, each on an ArrayBuffer of its own.
    rows ? [rows.exit, rows.final, rows.argmax, rows.score].map((column) => column.buffer as ArrayBuffer) : [],
  );
}
