/**
 * How many connections wait in the kernel's accept queue of a listening TCP port: handshakes the
 * kernel completed that the process has not accepted yet. Closing the listener resets every one
 * of them, so the shutdown (src/server.ts) closes only once this is 0.
 *
 * Read from Linux's /proc/net/tcp and /proc/net/tcp6, where a listening socket's `rx_queue` is
 * its accept queue's length. Elsewhere (or without /proc) the answer is `undefined`: unknown.
 */
import { readFile } from 'node:fs/promises';

const TABLES = ['/proc/net/tcp', '/proc/net/tcp6'];
/** `st` of a listening socket in those tables. */
const TCP_LISTEN = '0A';

export async function acceptQueueLength(port: number): Promise<number | undefined> {
  const texts = await Promise.all(TABLES.map((path) => readFile(path, 'utf8').catch(() => undefined)));
  if (texts.every((t) => t === undefined)) return undefined;
  const portHex = port.toString(16).toUpperCase().padStart(4, '0');
  let waiting = 0;
  for (const text of texts) {
    for (const line of text?.split('\n').slice(1) ?? []) {
      // sl local_address rem_address st tx_queue:rx_queue …; local_address is ADDRESS:PORT in hex.
      const [, local, , state, queues] = line.trim().split(/\s+/);
      if (state !== TCP_LISTEN || !local?.endsWith(`:${portHex}`)) continue;
      waiting += Number.parseInt(queues?.split(':')[1] ?? '0', 16);
    }
  }
  return waiting;
}
