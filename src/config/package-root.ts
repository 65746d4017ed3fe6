/**
 * The offramp package's root folder, found from this module's own location, so that bundled
 * files (models/fmnist-resnet) resolve the same from src/ under tsx and from dist/src/ once built.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

export function packageRoot(): string {
  if (cached !== undefined) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && isOfframpManifest(manifest)) return (cached = dir);
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no offramp package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

function isOfframpManifest(path: string): boolean {
  try {
    return (JSON.parse(readFileSync(path, 'utf8')) as { name?: unknown }).name === 'offramp';
  } catch {
    return false;
  }
}
