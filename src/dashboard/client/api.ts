/**
 * The page's requests: the dashboard's routes (src/dashboard/protocol.ts) and the admin endpoints
 * (src/http/admin-plugin.ts), their URLs, and how their answers read on the page. Pure (no DOM):
 * tested in Node. All URLs are same-origin paths: the page talks to nothing else.
 */

import { formatThreshold } from './format.js';

export const ROUTES = {
  info: '/dashboard/api/info',
  events: '/dashboard/events',
  whatIf: (model: string, budget: number) =>
    `/dashboard/api/what-if?model=${encodeURIComponent(model)}&budget=${encodeURIComponent(String(budget))}`,
  frontier: (model: string) => `/dashboard/api/frontier?model=${encodeURIComponent(model)}`,
} as const;

export type AdminAction = 'pause' | 'resume' | 'pin' | 'unpin';

/** Method and path of an admin call for `model` (the token goes in a header, never in the URL). */
export function adminRequest(model: string, action: AdminAction): { method: string; path: string } {
  const base = `/v2/models/${encodeURIComponent(model)}/admin`;
  switch (action) {
    case 'pause':
      return { method: 'POST', path: `${base}/tuner/pause` };
    case 'resume':
      return { method: 'POST', path: `${base}/tuner/resume` };
    case 'pin':
      return { method: 'PUT', path: `${base}/thresholds` };
    case 'unpin':
      return { method: 'DELETE', path: `${base}/thresholds` };
  }
}

/**
 * A failed answer as one line: the server's coded error (`{"error", "code"}`, docs/errors.md) as
 * "CODE: message", anything else as its HTTP status and the start of its body.
 */
export function describeFailure(status: number, body: string): string {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === 'object' && parsed !== null) {
      const { code, error } = parsed as { code?: unknown; error?: unknown };
      if (typeof code === 'string' && typeof error === 'string') return `${code}: ${error}`;
    }
  } catch {
    // Not JSON (a proxy's page, an empty body): shown as text below.
  }
  const text = body.trim().slice(0, 160);
  return text === '' ? `HTTP ${status}` : `HTTP ${status}: ${text}`;
}

/**
 * The admin endpoints' answer (TunerAdminReport in src/data-plane/types.ts, read only as far as
 * shown here, since the page's bundle imports nothing of the server but protocol.ts) as one line:
 * "tuner paused · ramp 0 0.93 (pinned) · ramp 1 never".
 */
export function describeAdminAnswer(answer: unknown): string {
  if (typeof answer !== 'object' || answer === null) return 'done';
  const report = answer as {
    tuner?: { paused?: unknown; online?: unknown; pinned?: Record<string, unknown> };
    thresholds?: Record<string, unknown>;
  };
  const parts: string[] = [];
  if (report.tuner?.online === true) parts.push(report.tuner.paused === true ? 'tuner paused' : 'tuner running');
  const pinned = report.tuner?.pinned ?? {};
  for (const [rampId, threshold] of Object.entries(report.thresholds ?? {})) {
    const value = typeof threshold === 'number' ? threshold : null;
    parts.push(`ramp ${rampId} ${formatThreshold(value)}${rampId in pinned ? ' (pinned)' : ''}`);
  }
  return parts.length === 0 ? 'done' : parts.join(' · ');
}

/**
 * The pin form's threshold: a number, or "never" (also "null" or "none") for a ramp that answers
 * nothing; undefined for anything else. Ranges are the server's to check (they depend on the policy).
 */
export function parseThresholdInput(text: string): number | null | undefined {
  const trimmed = text.trim().toLowerCase();
  if (trimmed === 'never' || trimmed === 'null' || trimmed === 'none') return null;
  if (trimmed === '') return undefined;
  const value = Number(trimmed);
  return Number.isFinite(value) ? value : undefined;
}

/** The model the page shows: `?model=` if the server has it, else the first one; undefined with none. */
export function modelFromQuery(search: string, names: readonly string[]): string | undefined {
  const asked = new URLSearchParams(search).get('model');
  return asked !== null && names.includes(asked) ? asked : names[0];
}

/** `search` with `?model=` set to `model`, other parameters kept (for history.replaceState). */
export function queryWithModel(search: string, model: string): string {
  const params = new URLSearchParams(search);
  params.set('model', model);
  return `?${params.toString()}`;
}

export interface ControlsState {
  /** Admin calls can be made (pin, unpin, what-if apply). */
  admin: boolean;
  /** Pause and resume can be made (admin, and the model has an online tuner). */
  tuner: boolean;
  /** Why something is disabled, for the page to say; '' when everything is enabled. */
  reason: string;
}

/** Which controls work: the server must have admin endpoints, the page a token, the model an online tuner for pause/resume. */
export function controlsState(adminEnabled: boolean, token: string, online: boolean): ControlsState {
  if (!adminEnabled) {
    return {
      admin: false,
      tuner: false,
      reason: 'Controls are off: the server has no admin token (server.admin_token).',
    };
  }
  if (token === '') return { admin: false, tuner: false, reason: 'Type the admin token to enable the controls.' };
  if (!online)
    return { admin: true, tuner: false, reason: 'This model has no online tuner: pause and resume do not apply.' };
  return { admin: true, tuner: true, reason: '' };
}
