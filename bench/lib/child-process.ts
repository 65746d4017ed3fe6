/**
 * Runs a bench TypeScript file as a child process (load generators must not share the server's
 * or the bench's event loop) and returns its stdout; a non-zero exit rejects with stderr's tail.
 */
import { spawn } from 'node:child_process';

export function runTsChild(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${file} exited with ${code ?? signal}: ${err.trim()}`));
    });
  });
}
