// One-click documentation of a check: OK / inte sedd / ring upp / skicka nattpatrull / tekniskt
// fel, an optional note, and for the patrol a short reason. Keys 1-5 pick an outcome.
import { h } from './dom.js';
import { bind, bindAttr, has, t, tx } from './i18n.js';

export const OUTCOMES = ['ok', 'not_seen', 'call', 'patrol', 'technical'];
export const PATROL_REASONS = ['needs_help', 'possible_fall', 'not_in_bed', 'no_contact', 'operator_patrol'];

/**
 * `options`: document(outcome, {note, reason}) -> Promise, onDone({outcome}), announce(text),
 * allowed: outcome codes that may be chosen (others are disabled with a hint), idPrefix.
 */
export class OutcomeForm {
  constructor(options) {
    this.o = options;
    this.documented = false;
    const p = options.idPrefix || 'outcome';
    this.note = h('textarea', { id: `${p}-note`, maxlength: '2000', rows: '2' });
    this.reason = h('select', { id: `${p}-patrol-reason` },
      ...PATROL_REASONS.map((r) => bind(h('option', { value: r }), `patrol_reason_${r}`)));
    this.error = h('p', { class: 'form-error', role: 'alert' });
    const allowed = new Set(options.allowed || OUTCOMES);
    this.buttons = OUTCOMES.map((code, i) => h('button', {
      type: 'button',
      class: code === 'ok' ? 'go' : code === 'patrol' ? 'danger' : '',
      dataset: { outcome: code },
      disabled: !allowed.has(code),
      'aria-keyshortcuts': String(i + 1),
      onclick: () => this.choose(code),
    }, h('span', { 'aria-hidden': 'true', class: 'key' }, `${i + 1}`), tx(`outcome_${code}`)));
    this.allowed = allowed;
    const group = h('div', { class: 'outcomes', role: 'group' }, this.buttons);
    bindAttr(group, 'aria-label', 'document_title');
    this.el = h('div', { class: 'document' },
      h('h3', {}, tx('document_title')),
      group,
      h('div', { class: 'outcome-extra' },
        h('div', { class: 'outcome-note' },
          h('label', { for: `${p}-note` }, tx('outcome_note')), this.note),
        h('div', { class: 'outcome-reason' },
          h('label', { for: `${p}-patrol-reason` }, tx('patrol_reason')), this.reason)),
      this.error);
    this.el.addEventListener('keydown', (e) => this.#key(e));
  }

  #key(e) {
    if (e.target instanceof HTMLTextAreaElement || e.target instanceof HTMLSelectElement) return;
    if (/^[1-5]$/.test(e.key) && !e.altKey && !e.ctrlKey && !e.metaKey) {
      const code = OUTCOMES[Number(e.key) - 1];
      if (!this.allowed.has(code)) return;
      e.preventDefault();
      this.choose(code);
    }
  }

  focus() {
    const first = this.buttons.find((b) => !b.disabled);
    if (first) first.focus();
  }

  disable(key) {
    for (const b of this.buttons) b.disabled = true;
    if (key) bind(this.error, key);
  }

  async choose(code) {
    if (this.documented || !this.o.document || !this.allowed.has(code)) return;
    for (const b of this.buttons) b.disabled = true;
    this.error.textContent = '';
    delete this.error.dataset.i18n;
    try {
      await this.o.document(code, {
        note: this.note.value.trim() || null,
        reason: code === 'patrol' ? this.reason.value : null,
      });
      this.documented = true;
      this.el.dataset.documented = code;
      this.o.announce?.(t('documented', { outcome: t(`outcome_${code}`) }));
      this.o.onDone?.({ outcome: code });
    } catch (err) {
      for (const b of this.buttons) b.disabled = !this.allowed.has(b.dataset.outcome);
      const key = err.code && has(`error_${err.code}`) ? `error_${err.code}` : 'error_document';
      bind(this.error, key, { message: err.message || '' });
    }
  }
}
