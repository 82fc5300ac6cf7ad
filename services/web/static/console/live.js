// Live events from the server over WebSockets, with reconnect and a status the header shows.
// Subscribers get every message's JSON object; after a reconnect (or a server "resync") they get
// {type: "resync"} and should reload their lists from the API.
import { wsUrl } from './api.js';

export class Live extends EventTarget {
  constructor(paths) {
    super();
    this.paths = paths; // e.g. ['/ws/console']
    this.sockets = new Map();
    this.state = 'connecting';
    this.stopped = false;
    this.backoff = new Map();
  }

  start() {
    this.stopped = false;
    for (const path of this.paths) this.#open(path);
  }

  stop() {
    this.stopped = true;
    for (const ws of this.sockets.values()) ws.close(1000, 'bye');
    this.sockets.clear();
  }

  /** Add another event source (e.g. the rounds' WebSocket once it is known). */
  add(path) {
    if (this.paths.includes(path)) return;
    this.paths.push(path);
    if (!this.stopped) this.#open(path);
  }

  on(type, fn) {
    const handler = (e) => fn(e.detail);
    this.addEventListener(type, handler);
    return () => this.removeEventListener(type, handler);
  }

  #emit(message) {
    this.dispatchEvent(new CustomEvent(message.type || 'message', { detail: message }));
    this.dispatchEvent(new CustomEvent('*', { detail: message }));
  }

  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: state }));
  }

  #updateState() {
    const open = [...this.sockets.values()].filter((ws) => ws.readyState === WebSocket.OPEN).length;
    this.#setState(open === this.paths.length ? 'live' : open > 0 ? 'partial' : 'offline');
  }

  #open(path) {
    const ws = new WebSocket(wsUrl(path));
    this.sockets.set(path, ws);
    let wasOpen = false;
    ws.addEventListener('open', () => {
      wasOpen = true;
      const reconnected = this.backoff.has(path);
      this.backoff.delete(path);
      this.#updateState();
      if (reconnected) this.#emit({ type: 'resync', source: path });
    });
    ws.addEventListener('message', (e) => {
      let message;
      try {
        message = JSON.parse(e.data);
      } catch {
        return;
      }
      if (message && typeof message === 'object') this.#emit({ ...message, source: path });
    });
    ws.addEventListener('close', (e) => {
      if (this.sockets.get(path) === ws) this.sockets.delete(path);
      this.#updateState();
      if (this.stopped) return;
      if (e.code === 4401 || e.code === 1008) this.#emit({ type: 'unauthorized' });
      const delay = Math.min((this.backoff.get(path) || 500) * (wasOpen ? 1 : 2), 10000);
      this.backoff.set(path, delay);
      setTimeout(() => {
        if (!this.stopped && !this.sockets.has(path)) this.#open(path);
      }, delay * (0.8 + Math.random() * 0.4));
    });
  }
}
