/**
 * The page's one way to call the server: same-origin JSON requests whose failures come back as
 * the line the page shows (a coded error, an HTTP status, or a network error), never as a throw,
 * so every caller has to say where the failure is shown.
 */

import { describeFailure } from './api.js';

export type Outcome<T> = { ok: true; value: T } | { ok: false; aborted: boolean; message: string };

export async function requestJson<T>(path: string, init: RequestInit = {}): Promise<Outcome<T>> {
  let response: Response;
  let body: string;
  try {
    // Same origin only: the paths are absolute paths on this server, and credentials stay here.
    response = await fetch(path, { credentials: 'same-origin', cache: 'no-store', ...init });
    body = await response.text();
  } catch (error) {
    const aborted = error instanceof DOMException && error.name === 'AbortError';
    return { ok: false, aborted, message: aborted ? 'cancelled' : `network error: ${String(error)}` };
  }
  if (!response.ok) return { ok: false, aborted: false, message: describeFailure(response.status, body) };
  try {
    return { ok: true, value: JSON.parse(body) as T };
  } catch {
    return { ok: false, aborted: false, message: `HTTP ${response.status}: the answer is not JSON` };
  }
}
