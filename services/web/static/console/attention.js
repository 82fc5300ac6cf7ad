// The console calls for attention: a tone (Web Audio: an oscillator, no audio file), a browser
// notification and the page title's count, when a check needs a human, when an alarm sounds or
// repeats, and when the connection to the server is lost (and, on the patrol's phone, when a new
// task arrives). Browsers start audio only after a user gesture, so the header asks once ("Slå på
// ljud") and says plainly while sound is off. Muting is the server's: at most a few minutes,
// audited (POST /api/rounds/mute); the state is read back from GET /api/rounds/mute, so a reload
// keeps it. A mute silences the tone; the title, the queue and a (silent) notification still show.
import { get, post } from './api.js';
import { bind, t } from './i18n.js';

/** Each kind's tone: [frequency Hz, start s, length s] per beep. */
const TONES = {
  needs: [[660, 0, 0.18], [880, 0.22, 0.18]],
  alarm: [[880, 0, 0.2], [660, 0.25, 0.2], [880, 0.5, 0.2], [660, 0.75, 0.2]],
  lost: [[520, 0, 0.3], [390, 0.35, 0.45]],
  task: [[740, 0, 0.2], [988, 0.25, 0.3]],
};

/** How long the header shows what called for attention, ms. */
const FLASH_MS = 10000;

export class Attention {
  /**
   * els: {bar, enable, state, mute, message} elements of the header; onTitle(prefix) sets the
   * page title.
   */
  constructor(els, onTitle) {
    this.els = els;
    this.onTitle = onTitle;
    this.audio = null; // the AudioContext, made at the first user gesture
    this.mutedUntil = null; // Date, from the server
    this.maxMinutes = 5;
    this.count = 0;
    this.lost = false;
    this.tones = []; // kinds of tones started (for tests and support; no personal data)
    this.notes = 0;
    this.muteTimer = null;
    this.flashTimer = null;
    this.offs = [];
    this.onEnable = () => this.enable();
    this.onMute = () => this.toggleMute();
    els.enable.addEventListener('click', this.onEnable);
    els.mute.addEventListener('click', this.onMute);
    // Any click or key is a user gesture: resume audio the browser suspended after a reload.
    this.onGesture = () => { if (this.audio && this.audio.state !== 'running') this.audio.resume().then(() => this.render()); };
    document.addEventListener('pointerdown', this.onGesture, true);
    document.addEventListener('keydown', this.onGesture, true);
    this.onLang = () => this.render();
    window.addEventListener('langchange', this.onLang);
    els.bar.hidden = false;
    this.render();
  }

  destroy() {
    this.els.enable.removeEventListener('click', this.onEnable);
    this.els.mute.removeEventListener('click', this.onMute);
    document.removeEventListener('pointerdown', this.onGesture, true);
    document.removeEventListener('keydown', this.onGesture, true);
    window.removeEventListener('langchange', this.onLang);
    clearTimeout(this.muteTimer);
    clearTimeout(this.flashTimer);
    for (const off of this.offs) off();
    if (this.audio) this.audio.close().catch(() => {});
    this.audio = null;
    this.els.bar.hidden = true;
    this.onTitle('');
  }

  get muted() {
    return Boolean(this.mutedUntil && this.mutedUntil.getTime() > Date.now());
  }

  /** 'off' (no user gesture yet), 'muted' or 'on'. */
  get sound() {
    if (!this.audio || this.audio.state !== 'running') return 'off';
    return this.muted ? 'muted' : 'on';
  }

  /** Start audio (call from a click) and ask once for notifications. */
  async enable() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!this.audio && Ctx) this.audio = new Ctx();
    if (this.audio && this.audio.state !== 'running') await this.audio.resume();
    this.render();
    if ('Notification' in window && Notification.permission === 'default') {
      try {
        await Notification.requestPermission();
      } catch {
        // an old browser's callback form; notifications simply stay off
      }
    }
  }

  async loadMute() {
    try {
      this.#setMute(await get('/api/rounds/mute'));
    } catch {
      // the sound stays as it was; the next answer tells
    }
  }

  async toggleMute() {
    const minutes = this.muted ? 0 : this.maxMinutes;
    this.els.mute.disabled = true;
    try {
      this.#setMute(await post('/api/rounds/mute', { minutes }));
    } catch {
      // shown by the unchanged state
    } finally {
      this.els.mute.disabled = false;
    }
  }

  #setMute(data) {
    this.mutedUntil = data.muted_until ? new Date(data.muted_until) : null;
    if (data.max_minutes) this.maxMinutes = data.max_minutes;
    clearTimeout(this.muteTimer);
    if (this.muted) this.muteTimer = setTimeout(() => this.render(), this.mutedUntil.getTime() - Date.now() + 50);
    this.render();
  }

  /** How many things wait for a person now (the title's count). */
  setCount(n) {
    this.count = n;
    this.render();
  }

  /** The connection to the server: lost once calls for attention, until it is back. */
  setConnected(connected) {
    if (!connected && !this.lost) {
      this.lost = true;
      this.call('lost', t('attention_lost'));
    } else if (connected && this.lost) {
      this.lost = false;
    }
    this.render();
  }

  /** Call for attention: a tone (unless sound is off or muted) and a notification. */
  call(kind, text) {
    this.#tone(kind);
    this.#notify(kind, text);
    // What called, in the header for a while (screen readers get the screens' own alerts).
    const { bar, message } = this.els;
    bar.dataset.flash = kind;
    if (message) {
      message.textContent = text;
      message.hidden = false;
    }
    clearTimeout(this.flashTimer);
    this.flashTimer = setTimeout(() => {
      delete bar.dataset.flash;
      if (message) message.hidden = true;
    }, FLASH_MS);
  }

  #tone(kind) {
    const a = this.audio;
    if (!a || a.state !== 'running' || this.muted) return;
    const start = a.currentTime + 0.02;
    for (const [freq, at, length] of TONES[kind] || TONES.needs) {
      const osc = a.createOscillator();
      const gain = a.createGain();
      osc.type = 'sine';
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, start + at);
      gain.gain.exponentialRampToValueAtTime(0.3, start + at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + at + length);
      osc.connect(gain).connect(a.destination);
      osc.start(start + at);
      osc.stop(start + at + length + 0.02);
    }
    this.tones.push(kind);
  }

  #notify(kind, text) {
    if (!('Notification' in window) || Notification.permission !== 'granted') return;
    try {
      const note = new Notification(t('app_name'), {
        body: text,
        tag: `homecare-${kind}`,
        renotify: true,
        silent: this.muted,
        requireInteraction: kind === 'alarm' || kind === 'lost',
      });
      note.onclick = () => { window.focus(); note.close(); };
      this.notes += 1;
    } catch {
      // a browser that only notifies from a service worker: the tone and title still tell
    }
  }

  render() {
    const { enable, state, mute, bar } = this.els;
    const sound = this.sound;
    bar.dataset.sound = sound;
    enable.hidden = sound !== 'off';
    mute.hidden = sound === 'off';
    if (sound === 'off') bind(state, 'sound_off');
    else if (sound === 'muted') {
      const until = this.mutedUntil.toLocaleTimeString('sv-SE', { hour: '2-digit', minute: '2-digit' });
      bind(state, 'sound_muted_until', { t: until });
    } else bind(state, 'sound_on');
    bind(mute, this.muted ? 'sound_unmute' : 'sound_mute', { n: this.maxMinutes });
    mute.setAttribute('aria-pressed', this.muted ? 'true' : 'false');
    const prefix = this.lost ? '⚠ ' : '';
    this.onTitle(this.count > 0 ? `${prefix}(${this.count}) ` : prefix);
  }
}
