/** `npm run metrics-doc`: regenerates docs/metrics.md from the metric table (src/metrics.ts). */
import { writeFile } from 'node:fs/promises';
import { metricsDocFile, renderMetricsDoc } from './metrics-doc.js';

const file = metricsDocFile();
await writeFile(file, renderMetricsDoc());
console.log(`wrote ${file}`);
