/**
 * The SLO file's JSON Schema, generated from the zod schema so it never disagrees with the code.
 * Editors use it for completion and checks (`# yaml-language-server: $schema=...`);
 * slo-config.schema.json is this text, written by `npm run schema` and checked by a test.
 */
import { z } from 'zod';
import { sloConfigSchema } from './schema.js';

export const SLO_CONFIG_SCHEMA_FILE = new URL('./slo-config.schema.json', import.meta.url);

export function sloConfigJsonSchema(): Record<string, unknown> {
  // io 'input': the schema of what a user writes, where fields with defaults may be left out.
  return z.toJSONSchema(sloConfigSchema, { io: 'input', target: 'draft-2020-12' });
}

export function renderSloConfigJsonSchema(): string {
  return `${JSON.stringify(sloConfigJsonSchema(), null, 2)}\n`;
}
