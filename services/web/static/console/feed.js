// The live view of one check: request -> video with a countdown to the care plan's cap -> closes
// itself at the cap -> one click documents the outcome (with an optional note).
import { h, clock, setText } from './dom.js';
import { bind, bindAttr, has, t, tx } from './i18n.js';
import { MediaSession } from './signal.js';
import { OutcomeForm } from './outcome.js';

export const EXTEND_REASONS = ['unclear_image', 'awaiting_movement', 'possible_distress', 'assisting_by_call'];
const LOCAL_GRACE_MS = 750; // close on our own if the server's bye is late

/** Translation key of a gate/signalling reason code. */
export function reasonKey(code) {
  return has(`reason_${code}`) ? `reason_${code}` : 'reason_unknown';
}

/**
 * Render a view panel into `panel`. `options`: deviceId, title, subtitle, instruction,
 * document(outcome, {note, reason}) -> Promise (the outcome API), onDone() (panel may close),
 * announce(text), checkId (the due check the view serves: the server grants what is left of its
 * budget, shared by every re-open).
 */
export class ViewPanel {
  constructor(panel, options) {
    this.panel = panel;
    this.o = options;
    this.session = null;
    this.tick = null;
    this.ended = null;
    this.documented = false;
    this.firstFrameMs = null;
    this.#render();
  }

  #render() {
    const o = this.o;
    this.countdown = h('div', { class: 'countdown', role: 'timer', 'aria-live': 'off' }, '–:––');
    this.meterFill = h('div');
    this.meter = h('div', { class: 'meter', 'aria-hidden': 'true' }, this.meterFill);
    this.video = h('video', { autoplay: true, playsinline: true, muted: true, id: 'feed-video' });
    this.overlay = h('div', { class: 'overlay', role: 'status' });
    this.status = h('p', { class: 'panel-status', role: 'status' });
    this.closeButton = h('button', { type: 'button', class: 'danger', id: 'feed-close' }, tx('feed_close'));
    this.extendSelect = h('select', { id: 'feed-extend-reason' },
      ...EXTEND_REASONS.map((r) => bind(h('option', { value: r }), `extend_${r}`)));
    bindAttr(this.extendSelect, 'aria-label', 'feed_extend_reason');
    this.extendButton = h('button', { type: 'button', id: 'feed-extend' }, tx('feed_extend'));
    this.live = h('div', { class: 'panel-actions' }, this.closeButton, this.extendSelect, this.extendButton);
    this.form = new OutcomeForm({
      idPrefix: 'feed-outcome',
      document: this.o.document,
      onDone: (d) => { this.documented = true; this.o.onDone?.(d); },
      announce: this.o.announce,
    });
    this.outcomes = this.form.el;
    this.outcomes.hidden = true;
    this.panel.replaceChildren(
      h('div', { class: 'panel-head' },
        h('h2', { id: 'panel-title' }, o.title),
        this.countdown),
      h('p', { class: 'sub muted' }, o.subtitle || ''),
      o.instruction ? h('p', { class: 'instruction' }, o.instruction) : null,
      this.meter,
      h('div', { class: 'video-box' }, this.video, this.overlay),
      this.status,
      this.live,
      this.outcomes);
    this.panel.setAttribute('aria-labelledby', 'panel-title');
    this.panel.dataset.mode = 'view';
    this.closeButton.addEventListener('click', () => this.session && this.session.close());
    this.extendButton.addEventListener('click', () => {
      if (this.session) this.session.extend(this.extendSelect.value);
    });
    this.keys = (e) => this.#key(e);
    this.panel.addEventListener('keydown', this.keys);
  }

  #key(e) {
    if (e.target instanceof HTMLTextAreaElement || e.target instanceof HTMLSelectElement) return;
    if (e.key === 'Escape' && this.session && this.session.state !== 'ended') {
      e.preventDefault();
      this.session.close();
    }
  }

  /** Open the feed (call right after the operator's click). */
  start() {
    const session = new MediaSession({ deviceId: this.o.deviceId, purpose: 'view', checkId: this.o.checkId });
    this.session = session;
    this.#overlay('feed_requesting');
    session.addEventListener('granted', (e) => {
      this.capS = e.detail.capS;
      this.deadlineMs = e.detail.deadlineMs;
      if (e.detail.extended) this.o.announce(t('feed_extended', { s: Math.round(this.capS) }));
      else if (e.detail.budgetS !== null && e.detail.budgetS < this.capS - 0.5) {
        // a re-opened check: its budget goes on from what the earlier views left
        const left = Math.max(0, Math.floor(e.detail.budgetS));
        this.panel.dataset.budgetS = String(left);
        bind(this.status, 'feed_budget_left', { s: left, cap: Math.round(this.capS) });
        this.o.announce(t('feed_budget_left', { s: left, cap: Math.round(this.capS) }));
      }
      this.#overlay('feed_connecting');
      this.#startTick();
    });
    session.addEventListener('track', (e) => {
      if (this.video.srcObject !== e.detail.stream) {
        this.video.srcObject = e.detail.stream;
        if (this.video.requestVideoFrameCallback && !this.paintWatch) {
          // Click -> the first frame painted in the <video> (what the operator sees).
          this.paintWatch = true;
          this.video.requestVideoFrameCallback((now) => {
            this.panel.dataset.firstPaintMs = String(Math.round(now - (this.o.clickedAt ?? session.startedAt)));
          });
        }
      }
    });
    session.addEventListener('firstframe', (e) => {
      // Click -> first decoded frame, measured on this page's clock (the operator's wait).
      const from = this.o.clickedAt ?? session.startedAt;
      this.firstFrameMs = session.firstFrameAt - from;
      this.panel.dataset.firstFrameMs = String(Math.round(this.firstFrameMs));
      this.overlay.hidden = true;
      bind(this.status, 'feed_live');
    });
    session.addEventListener('denied', (e) => {
      this.#stopTick();
      this.panel.dataset.denied = e.detail.reason;
      this.#overlay(reasonKey(e.detail.reason));
      bind(this.status, 'feed_denied', { reason: t(reasonKey(e.detail.reason)) });
      this.o.announce(t('feed_denied', { reason: t(reasonKey(e.detail.reason)) }));
      this.#showOutcomes();
    });
    session.addEventListener('error', (e) => {
      if (e.detail.code === 'extension_limit') bind(this.status, 'feed_extension_limit');
      else if (e.detail.code === 'ice_failed') bind(this.status, 'feed_no_media');
      else if (e.detail.code === 'indicator_not_acked') this.trouble = e.detail.code; // bye follows
    });
    session.addEventListener('ended', (e) => this.#ended(e.detail.reason));
    session.start();
    this.closeButton.focus();
  }

  #overlay(key, params) {
    this.overlay.hidden = false;
    bind(this.overlay, key, params);
  }

  #startTick() {
    this.#stopTick();
    const update = () => {
      const left = Math.max(0, (this.deadlineMs - performance.now()) / 1000);
      setText(this.countdown, clock(left));
      this.countdown.setAttribute('aria-label', t('feed_seconds_left', { s: Math.ceil(left) }));
      const low = left <= 10 ? 'yes' : 'no';
      this.countdown.dataset.low = low;
      this.meter.dataset.low = low;
      this.meterFill.style.width = `${Math.min(100, (left / this.capS) * 100)}%`;
      if (left <= 10 && !this.warned) {
        this.warned = true;
        this.o.announce(t('feed_ten_seconds'));
      }
      if (left > 10) this.warned = false;
      if (performance.now() > this.deadlineMs + LOCAL_GRACE_MS && this.session.state !== 'ended') {
        this.session.close(); // the cap holds even if the server's bye is late
      }
    };
    update();
    this.tick = setInterval(update, 200);
  }

  #stopTick() {
    if (this.tick) clearInterval(this.tick);
    this.tick = null;
  }

  #ended(reason) {
    this.#stopTick();
    this.ended = reason;
    this.panel.dataset.ended = reason;
    this.video.srcObject = null;
    setText(this.countdown, '0:00');
    this.meterFill.style.width = '0%';
    const why = this.trouble || reason; // the camera's own failure says more than device_lost
    const key = has(`bye_${why}`) ? `bye_${why}` : 'bye_other';
    this.#overlay(key, { s: Math.round(this.capS || 0) });
    bind(this.status, key, { s: Math.round(this.capS || 0) });
    this.o.announce(t(key, { s: Math.round(this.capS || 0) }));
    this.#showOutcomes();
  }

  #showOutcomes() {
    this.live.hidden = true;
    this.outcomes.hidden = false;
    this.panel.dataset.mode = 'document';
    if (!this.o.document) this.form.disable('document_unavailable');
    this.form.focus();
  }

  /** Leave the panel: ends a running view. */
  destroy() {
    this.#stopTick();
    this.panel.removeEventListener('keydown', this.keys);
    if (this.session) this.session.close();
  }
}
