/** `npm run schema`: regenerates slo-config.schema.json from the zod schema. */
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { SLO_CONFIG_SCHEMA_FILE, renderSloConfigJsonSchema } from './json-schema.js';

await writeFile(SLO_CONFIG_SCHEMA_FILE, renderSloConfigJsonSchema());
console.log(`wrote ${fileURLToPath(SLO_CONFIG_SCHEMA_FILE)}`);
