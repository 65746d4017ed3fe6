/**
 * The operator controls of one model: the admin token field, pause / resume the online tuner,
 * unpin every ramp, pin one ramp's threshold; and the one status line where every admin call's
 * answer (or coded error) is shown, the what-if panel's "Apply" included.
 */

import type { DashboardModelInfo, ExitKey } from '../protocol.js';
import type { AdminSession } from './admin.js';
import { controlsState, describeAdminAnswer, parseThresholdInput, type AdminAction } from './api.js';
import { el, setText } from './dom.js';
import { pinRequestBody, pinnableExits } from './exits.js';
import { panel } from './panel.js';

export class ControlsPanel {
  readonly #model: DashboardModelInfo;
  readonly #session: AdminSession;
  readonly #section: HTMLElement;
  readonly #reason: HTMLElement;
  readonly #status: HTMLElement;
  readonly #tunerButtons: HTMLButtonElement[];
  readonly #adminInputs: (HTMLButtonElement | HTMLInputElement | HTMLSelectElement)[];
  readonly #unsubscribe: () => void;

  constructor(root: HTMLElement, model: DashboardModelInfo, session: AdminSession) {
    this.#model = model;
    this.#session = session;
    const p = panel(root, 'controls', 'Controls', 'admin endpoints');
    this.#section = p.section;

    const token = el('input', {
      type: 'password',
      id: 'admin-token',
      'data-testid': 'admin-token',
      autocomplete: 'off',
      spellcheck: 'false',
      placeholder: 'server.admin_token',
    });
    // Shown again after a model switch: the token is still in memory (and stays masked).
    token.value = session.token;
    token.addEventListener('input', () => session.setToken(token.value.trim()));

    // In a form of its own, as browsers expect of a password field; submitting it (Enter) sends nothing anywhere.
    const tokenForm = el(
      'form',
      { class: 'field', autocomplete: 'off' },
      el('label', { for: 'admin-token' }, 'Admin token'),
      token,
    );
    tokenForm.addEventListener('submit', (event) => event.preventDefault());

    const pause = button('tuner-pause', 'Pause tuner', () => void this.#run('pause'));
    const resume = button('tuner-resume', 'Resume tuner', () => void this.#run('resume'));
    const unpin = button('unpin-all', 'Unpin all', () => void this.#run('unpin', undefined, 'unpin all'));

    const ramps = pinnableExits(model);
    const rampSelect = el(
      'select',
      { 'data-testid': 'pin-ramp', 'aria-label': 'ramp' },
      ...ramps.map((ramp) => el('option', { value: ramp.key }, ramp.label)),
    );
    const thresholdInput = el('input', {
      type: 'text',
      'data-testid': 'pin-threshold',
      'aria-label': 'threshold',
      inputmode: 'decimal',
      placeholder: '0.9 or never',
      size: '10',
    });
    const pinButton = button('pin-apply', 'Pin', () => {
      const threshold = parseThresholdInput(thresholdInput.value);
      if (threshold === undefined) {
        this.#show('error', 'Type a threshold: a number, or "never".');
        return;
      }
      void this.pin({ [rampSelect.value]: threshold });
    });

    this.#tunerButtons = [pause, resume];
    this.#adminInputs = [unpin, rampSelect, thresholdInput, pinButton];
    this.#reason = el('p', { class: 'hint', 'data-testid': 'control-reason' });
    this.#status = el(
      'p',
      { class: 'status', 'data-testid': 'control-status', 'data-state': 'idle' },
      'No admin call yet.',
    );

    p.charts.appendChild(
      el(
        'div',
        { class: 'controls' },
        tokenForm,
        el('div', { class: 'button-row' }, pause, resume, unpin),
        el(
          'div',
          { class: 'button-row' },
          el('span', { class: 'field-label' }, 'Pin'),
          rampSelect,
          el('span', { class: 'field-label' }, 'at'),
          thresholdInput,
          pinButton,
        ),
        this.#reason,
        this.#status,
      ),
    );
    if (ramps.length === 0) rampSelect.appendChild(el('option', { value: '' }, 'no ramps'));
    this.#unsubscribe = session.onChange(() => this.#refresh());
    this.#refresh();
  }

  /**
   * Pins these exits' thresholds (the pin form and what-if "Apply"); the answer shows in the
   * status line. Resolves to whether the server took it.
   */
  pin(thresholds: Record<ExitKey, number | null>, what = 'pin'): Promise<boolean> {
    const body = pinRequestBody(this.#model, thresholds);
    if (Object.keys(body.thresholds).length === 0) {
      this.#show('error', 'Nothing to pin: no ramp thresholds.');
      return Promise.resolve(false);
    }
    return this.#run('pin', body, what);
  }

  destroy(): void {
    this.#unsubscribe();
    this.#section.remove();
  }

  #refresh(): void {
    const state = controlsState(this.#session.enabled, this.#session.token, this.#model.online);
    for (const control of this.#tunerButtons) control.disabled = !state.tuner;
    const noRamps = pinnableExits(this.#model).length === 0;
    for (const control of this.#adminInputs)
      control.disabled = !state.admin || (noRamps && control.dataset['testid']?.startsWith('pin') === true);
    setText(this.#reason, state.reason);
  }

  async #run(action: AdminAction, body?: unknown, what: string = action): Promise<boolean> {
    this.#show('pending', `${what}…`);
    const outcome = await this.#session.call(this.#model.name, action, body);
    if (outcome.ok) this.#show('ok', `${what}: ${describeAdminAnswer(outcome.value)}`);
    else this.#show('error', `${what} failed: ${outcome.message}`);
    return outcome.ok;
  }

  #show(state: 'pending' | 'ok' | 'error', text: string): void {
    this.#status.dataset['state'] = state;
    setText(this.#status, text);
  }
}

function button(testId: string, label: string, onClick: () => void): HTMLButtonElement {
  const created = el('button', { type: 'button', 'data-testid': testId }, label);
  created.addEventListener('click', onClick);
  return created;
}
