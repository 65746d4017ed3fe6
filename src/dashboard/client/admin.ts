/**
 * The admin token and the calls made with it. The token lives only in this object, in memory:
 * never in localStorage, a cookie or a URL; it leaves the page only as the `Authorization` header
 * of an admin call to this same server, and it is gone when the tab closes.
 */

import { adminRequest, type AdminAction } from './api.js';
import { requestJson, type Outcome } from './http.js';

export class AdminSession {
  #token = '';
  readonly #listeners = new Set<() => void>();

  /** `enabled`: the server has admin endpoints (DashboardInfo.adminEnabled). */
  constructor(readonly enabled: boolean) {}

  get token(): string {
    return this.#token;
  }

  setToken(token: string): void {
    if (token === this.#token) return;
    this.#token = token;
    for (const listener of this.#listeners) listener();
  }

  /** Calls `listener` whenever the token changes; returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  call(model: string, action: AdminAction, body?: unknown): Promise<Outcome<unknown>> {
    const { method, path } = adminRequest(model, action);
    const headers: Record<string, string> = { Authorization: `Bearer ${this.#token}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    return requestJson<unknown>(path, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  }
}
