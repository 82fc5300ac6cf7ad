// A video call to a brukare's video phone: ringing -> answered -> two-way audio and video, or
// declined / no answer. Drive controls (arrow keys, on-screen buttons; stop on release) work only
// while the call is up and video is arriving; the server checks that too, and each command holds
// the phone's wheels for at most 500 ms (its dead man): a held key is re-sent every 200 ms.
// "Till laddaren" sends the phone home; what it reports (bumped, an edge, docked, its battery)
// shows under the picture.
import { h, clock, setText } from './dom.js';
import { bind, bindAttr, has, t, tx } from './i18n.js';
import { MediaSession } from './signal.js';
import { OutcomeForm } from './outcome.js';

const DRIVE = {
  ArrowUp: { linear: 0.5, angular: 0, cls: 'up', glyph: '▲', key: 'drive_forward' },
  ArrowDown: { linear: -0.3, angular: 0, cls: 'down', glyph: '▼', key: 'drive_back' },
  ArrowLeft: { linear: 0, angular: 0.5, cls: 'left', glyph: '◀', key: 'drive_left' },
  ArrowRight: { linear: 0, angular: -0.5, cls: 'right', glyph: '▶', key: 'drive_right' },
};
const DRIVE_REPEAT_MS = 200; // a held key is re-sent well inside the phone's 500 ms dead man

export class CallPanel {
  constructor(panel, options) {
    this.panel = panel;
    this.o = options;
    this.session = null;
    this.local = null;
    this.held = new Set();
    this.repeat = null;
    this.ringTimer = null;
    this.#render();
  }

  #render() {
    this.stateLabel = h('p', { class: 'call-state', role: 'status', id: 'call-state', 'data-state': 'idle' });
    this.ringLeft = h('span', { class: 'muted' });
    this.remote = h('video', { autoplay: true, playsinline: true, id: 'call-video' });
    this.self = h('video', { autoplay: true, playsinline: true, muted: true, class: 'self-view', id: 'call-self' });
    bindAttr(this.self, 'aria-label', 'call_self_view');
    this.overlay = h('div', { class: 'overlay' });
    this.status = h('p', { class: 'panel-status', role: 'status' });
    this.hangup = h('button', { type: 'button', class: 'danger', id: 'call-hangup' }, tx('call_hangup'));
    this.driveButtons = Object.entries(DRIVE).map(([key, d]) => {
      const b = h('button', { type: 'button', class: d.cls, dataset: { key }, disabled: true, 'aria-keyshortcuts': key });
      b.append(h('span', { 'aria-hidden': 'true' }, d.glyph));
      bindAttr(b, 'aria-label', d.key);
      bindAttr(b, 'title', d.key);
      const press = (e) => { e.preventDefault(); this.#press(key); };
      const release = () => this.#release(key);
      b.addEventListener('pointerdown', press);
      b.addEventListener('pointerup', release);
      b.addEventListener('pointerleave', release);
      b.addEventListener('pointercancel', release);
      b.addEventListener('keydown', (e) => {
        if ((e.key === ' ' || e.key === 'Enter') && !e.repeat) { e.preventDefault(); this.#press(key); }
      });
      b.addEventListener('keyup', (e) => { if (e.key === ' ' || e.key === 'Enter') this.#release(key); });
      b.addEventListener('blur', release);
      return b;
    });
    this.drivePad = h('div', { class: 'drive', role: 'group', id: 'drive-pad' }, this.driveButtons);
    bindAttr(this.drivePad, 'aria-label', 'drive_label');
    this.driveHint = h('p', { class: 'hint' }, tx('drive_hint'));
    this.dockButton = h('button', { type: 'button', class: 'ghost', id: 'call-dock', disabled: true }, tx('drive_dock'));
    this.dockButton.addEventListener('click', () => this.session?.dock());
    this.unit = h('p', { class: 'panel-status', role: 'status', id: 'call-unit' });
    this.unitBattery = h('span', { class: 'muted', id: 'call-battery' });
    this.panel.replaceChildren(
      h('div', { class: 'panel-head' }, h('h2', { id: 'panel-title' }, this.o.title), this.ringLeft),
      h('p', { class: 'sub muted' }, this.o.subtitle || ''),
      this.stateLabel,
      h('div', { class: 'video-box' }, this.remote, this.self, this.overlay),
      this.status,
      h('div', { class: 'panel-actions' }, this.hangup),
      this.drivePad,
      h('div', { class: 'panel-actions' }, this.dockButton, this.unitBattery),
      this.unit,
      this.driveHint);
    this.panel.dataset.mode = 'call';
    this.hangup.addEventListener('click', () => this.end());
    this.keydown = (e) => this.#key(e, true);
    this.keyup = (e) => this.#key(e, false);
    document.addEventListener('keydown', this.keydown);
    document.addEventListener('keyup', this.keyup);
    window.addEventListener('blur', this.blur = () => this.#releaseAll());
  }

  #setState(state, params) {
    this.panel.dataset.callState = state;
    this.stateLabel.dataset.state = state;
    bind(this.stateLabel, `call_${state}`, params);
    const up = state === 'connected';
    for (const b of this.driveButtons) b.disabled = !up;
    this.dockButton.disabled = !up;
    if (!up) this.#releaseAll();
  }

  async start() {
    this.#setState('preparing');
    this.hangup.focus();
    try {
      this.local = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: true });
      this.self.srcObject = this.local;
    } catch {
      this.local = null;
      bind(this.status, 'call_no_camera');
    }
    if (this.closed) { this.#stopLocal(); return; }
    // a call of a check names it: the video it delivers counts for the check's "ok"
    const session = new MediaSession({
      deviceId: this.o.deviceId, purpose: 'call', localStream: this.local, checkId: this.o.checkId || null,
    });
    this.session = session;
    session.addEventListener('state', (e) => {
      const s = e.detail.state;
      if (s === 'requesting') this.#setState('requesting');
      else if (s === 'ringing') this.#setState('ringing');
      else if (s === 'connecting') this.#setState('answered');
      else if (s === 'live') {
        this.#setState('connected');
        this.o.announce(t('call_connected'));
        this.overlay.hidden = true;
      }
    });
    session.addEventListener('granted', (e) => {
      if (e.detail.ringTimeoutS) this.#ringCountdown(e.detail.deadlineMs);
      this.o.announce(t('call_ringing'));
    });
    session.addEventListener('track', (e) => {
      if (this.remote.srcObject !== e.detail.stream) this.remote.srcObject = e.detail.stream;
    });
    session.addEventListener('denied', (e) => {
      const key = has(`reason_${e.detail.reason}`) ? `reason_${e.detail.reason}` : 'reason_unknown';
      this.panel.dataset.denied = e.detail.reason;
      this.#setState('denied');
      bind(this.status, key);
      this.o.announce(t('call_denied', { reason: t(key) }));
      this.#finished();
    });
    session.addEventListener('unit', (e) => this.#unitReport(e.detail));
    session.addEventListener('error', (e) => {
      const key = has(`drive_error_${e.detail.code}`) ? `drive_error_${e.detail.code}` : null;
      if (key) bind(this.status, key);
    });
    session.addEventListener('ended', (e) => {
      const reason = e.detail.reason;
      const state = { declined: 'declined', no_answer: 'no_answer', device_lost: 'lost', withdrawn: 'withdrawn' }[reason] || 'ended';
      this.#setState(state);
      this.o.announce(t(`call_${state}`));
      this.#finished();
    });
    this.overlay.hidden = false;
    bind(this.overlay, 'call_waiting');
    await session.start();
  }

  #unitReport({ event, batteryPct }) {
    if (batteryPct !== null) {
      this.panel.dataset.battery = String(Math.round(batteryPct));
      bind(this.unitBattery, 'unit_battery', { pct: Math.round(batteryPct) });
    }
    if (!event) return;
    this.panel.dataset.unitEvent = event;
    const key = has(`unit_${event}`) ? `unit_${event}` : 'unit_unknown';
    bind(this.unit, key);
    this.o.announce(t(key));
  }

  #ringCountdown(deadlineMs) {
    clearInterval(this.ringTimer);
    const update = () => {
      if (!this.session || this.session.state !== 'ringing') {
        setText(this.ringLeft, '');
        clearInterval(this.ringTimer);
        return;
      }
      setText(this.ringLeft, clock((deadlineMs - performance.now()) / 1000));
    };
    update();
    this.ringTimer = setInterval(update, 250);
  }

  #finished() {
    clearInterval(this.ringTimer);
    setText(this.ringLeft, '');
    this.#stopLocal();
    this.remote.srcObject = null;
    this.overlay.hidden = false;
    bind(this.overlay, `call_${this.stateLabel.dataset.state}`);
    this.hangup.hidden = true;
    const close = h('button', { type: 'button', class: this.o.document ? 'ghost' : 'primary', id: 'call-close' }, tx('call_close_panel'));
    close.addEventListener('click', () => this.o.onDone?.());
    this.hangup.after(close);
    this.drivePad.hidden = true;
    this.driveHint.hidden = true;
    this.dockButton.hidden = true;
    if (this.o.document) {
      // The call belonged to a check: document it right here (one click).
      this.form = new OutcomeForm({
        idPrefix: 'call-outcome',
        document: this.o.document,
        allowed: this.o.documentAllowed,
        onDone: (d) => this.o.onDocumented?.(d),
        announce: this.o.announce,
      });
      this.panel.append(this.form.el);
      this.form.focus();
    } else close.focus();
  }

  #stopLocal() {
    if (this.local) for (const track of this.local.getTracks()) track.stop();
    this.local = null;
    this.self.srcObject = null;
  }

  #key(e, down) {
    if (!DRIVE[e.key]) return;
    const target = e.target;
    if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement) return;
    if (!this.session || this.panel.dataset.callState !== 'connected') return;
    e.preventDefault();
    if (down) {
      if (!e.repeat) this.#press(e.key);
    } else this.#release(e.key);
  }

  #vector() {
    let linear = 0;
    let angular = 0;
    for (const key of this.held) {
      linear += DRIVE[key].linear;
      angular += DRIVE[key].angular;
    }
    return [Math.max(-1, Math.min(1, linear)), Math.max(-1, Math.min(1, angular))];
  }

  #sendDrive() {
    const [linear, angular] = this.#vector();
    this.session?.drive(linear, angular);
    this.panel.dataset.drive = `${linear},${angular}`;
  }

  #press(key) {
    if (this.panel.dataset.callState !== 'connected' || this.held.has(key)) return;
    this.held.add(key);
    this.driveButtons.find((b) => b.dataset.key === key).dataset.active = 'yes';
    this.#sendDrive();
    if (!this.repeat) this.repeat = setInterval(() => this.#sendDrive(), DRIVE_REPEAT_MS);
  }

  #release(key) {
    if (!this.held.has(key)) return;
    this.held.delete(key);
    this.driveButtons.find((b) => b.dataset.key === key).dataset.active = 'no';
    this.#sendDrive(); // stop (or the remaining keys' vector) at once
    if (!this.held.size) {
      clearInterval(this.repeat);
      this.repeat = null;
    }
  }

  #releaseAll() {
    const wasHeld = this.held.size > 0;
    this.held.clear();
    for (const b of this.driveButtons || []) b.dataset.active = 'no';
    clearInterval(this.repeat);
    this.repeat = null;
    if (wasHeld && this.session && this.session.state !== 'ended') this.#sendDrive();
  }

  end() {
    if (this.session) this.session.close();
    else {
      this.closed = true;
      this.#stopLocal();
    }
  }

  destroy() {
    this.closed = true;
    this.#releaseAll();
    document.removeEventListener('keydown', this.keydown);
    document.removeEventListener('keyup', this.keyup);
    window.removeEventListener('blur', this.blur);
    clearInterval(this.ringTimer);
    this.end();
    this.#stopLocal();
  }
}
