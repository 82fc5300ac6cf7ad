// WebRTC through the signalling WebSocket (/ws/signal): one socket per page, many sessions.
// The browser is the offerer: receive-only video for a view; camera + microphone both ways for a
// call. The server answers a request with `granted` (ICE servers, deadline) or `denied` (reason),
// relays offer/answer/candidates, and ends a session with `bye` (timeout, withdrawn, declined,
// operator, device_lost, no_answer). Nothing is recorded: frames go to a <video> element only.
import { wsUrl } from './api.js';
import { sessionId } from './dom.js';

const GATHER_WAIT_MS = 250; // send the offer with the candidates found by then; trickle the rest
const VIDEO_REPORT_MS = 300; // calls: tell the server how many frames we decoded (drive safety)
const STATS_MS = 100;

class Socket {
  constructor() {
    this.ws = null;
    this.opening = null;
    this.sessions = new Map();
    this.errors = new EventTarget();
  }

  async ensure() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) return this.ws;
    if (this.opening) return this.opening;
    this.opening = new Promise((resolve, reject) => {
      const ws = new WebSocket(wsUrl('/ws/signal'));
      ws.addEventListener('open', () => { this.ws = ws; this.opening = null; resolve(ws); });
      ws.addEventListener('error', () => { this.opening = null; reject(new Error('signalling unavailable')); });
      ws.addEventListener('message', (e) => this.#dispatch(e.data));
      ws.addEventListener('close', () => {
        if (this.ws === ws) this.ws = null;
        this.opening = null;
        for (const session of [...this.sessions.values()]) session.lost();
      });
    });
    return this.opening;
  }

  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  #dispatch(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    const session = message.session_id ? this.sessions.get(message.session_id) : null;
    if (session) session.receive(message);
    else if (message.type === 'error') {
      this.errors.dispatchEvent(new CustomEvent('error', { detail: message }));
    }
  }
}

const socket = new Socket();

/**
 * One view or call. A view names its due check (`checkId`) or, an extra look, a `reason` and a
 * `note`; without either the server denies it `no_due_check`.
 * Events (EventTarget): `state` {state}, `granted` {capS, budgetS, deadlineMs},
 * `denied` {reason}, `track` {stream}, `firstframe` {ms}, `ended` {reason}, `error` {code, message},
 * `ack` {of}. `state` is one of: requesting, granted, ringing, connecting, live, ended.
 */
export class MediaSession extends EventTarget {
  constructor({ deviceId, purpose, localStream = null, checkId = null, reason = null, note = null }) {
    super();
    this.deviceId = deviceId;
    this.purpose = purpose; // 'view' | 'call'
    this.localStream = localStream;
    // What a view is owed to: the due check it serves, or (an extra look) a reason and a note.
    this.checkId = checkId;
    this.reason = reason;
    this.note = note;
    this.id = sessionId();
    this.state = 'idle';
    this.pc = null;
    this.remote = new MediaStream();
    this.offerSent = false;
    this.pendingCandidates = [];
    this.framesDecoded = 0;
    this.firstFrameAt = null;
    this.startedAt = null;
    this.deadlineMs = null; // in performance.now() time
    this.capS = null;
    this.clockOffsetMs = null; // server deadline (epoch ms) -> performance.now()
    this.timers = [];
    this.endReason = null;
  }

  #emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #set(state) {
    if (this.state === state) return;
    this.state = state;
    this.#emit('state', { state });
  }

  /** Ask the server; resolves once the request is sent. Outcome arrives as events. */
  async start() {
    this.startedAt = performance.now();
    window.homecareSignal.last = this;
    this.#set('requesting');
    socket.sessions.set(this.id, this);
    try {
      await socket.ensure();
    } catch {
      this.#finish('unavailable');
      return;
    }
    if (this.state === 'ended') return;
    const request = { type: 'request', session_id: this.id, device_id: this.deviceId, purpose: this.purpose };
    if (this.checkId) request.check_id = this.checkId;
    else if (this.reason) Object.assign(request, { reason: this.reason, note: this.note });
    socket.send(request);
  }

  extend(reason) {
    socket.send({ type: 'request', session_id: this.id, extend: reason });
  }

  drive(linear, angular) {
    return socket.send({ type: 'drive', session_id: this.id, linear, angular });
  }

  /** Send the video phone back to its charger (it drives there by itself). */
  dock() {
    return socket.send({ type: 'dock', session_id: this.id });
  }

  /** End the session from this side (`bye operator`). Safe to call twice. */
  close() {
    if (this.state === 'ended') return;
    socket.send({ type: 'bye', session_id: this.id, reason: 'operator' });
    this.#finish('operator');
  }

  lost() {
    if (this.state !== 'ended') this.#finish('signalling_lost');
  }

  receive(message) {
    switch (message.type) {
      case 'granted':
        this.#granted(message);
        break;
      case 'denied':
        this.#emit('denied', { reason: message.reason });
        this.#finish(`denied:${message.reason}`, { quiet: true });
        break;
      case 'answer':
        this.#answer(message.sdp);
        break;
      case 'candidate':
        this.#candidate(message);
        break;
      case 'bye':
        this.#finish(message.reason);
        break;
      case 'error':
        this.#emit('error', { code: message.code, message: message.message });
        break;
      case 'ack':
        this.#emit('ack', { of: message.of });
        break;
      case 'unit': // the rolling phone: bumped, cliff, docked, low_battery and its battery
        this.#emit('unit', { event: message.event || null, batteryPct: message.battery_pct ?? null });
        break;
      default:
        break;
    }
  }

  #granted(message) {
    const now = performance.now();
    const deadlineEpochMs = message.deadline * 1000;
    if (this.clockOffsetMs === null) {
      // The first grant starts now with `budget_s` left (a re-opened check's view: what its
      // earlier views left; else the cap): map the server's deadline onto this page's clock.
      const leftS = typeof message.budget_s === 'number' ? message.budget_s : message.cap_s;
      this.clockOffsetMs = now + leftS * 1000 - deadlineEpochMs;
    }
    this.capS = message.cap_s;
    this.deadlineMs = deadlineEpochMs + this.clockOffsetMs;
    const first = !this.pc;
    this.#emit('granted', {
      capS: message.cap_s,
      budgetS: typeof message.budget_s === 'number' ? message.budget_s : null,
      deadlineMs: this.deadlineMs,
      ringTimeoutS: message.ring_timeout_s,
      extended: !first,
    });
    if (first) {
      this.#set(this.purpose === 'call' ? 'ringing' : 'granted');
      this.#connect(message.ice_servers || []).catch((e) => {
        this.#emit('error', { code: 'webrtc_failed', message: String(e) });
        this.close();
      });
    }
  }

  async #connect(iceServers) {
    const pc = new RTCPeerConnection({ iceServers });
    this.pc = pc;
    pc.addEventListener('track', (e) => {
      if (!this.remote.getTracks().includes(e.track)) this.remote.addTrack(e.track);
      this.#emit('track', { stream: this.remote });
    });
    pc.addEventListener('icecandidate', (e) => {
      if (!this.offerSent) return; // in the offer's SDP already
      const c = e.candidate;
      socket.send({
        type: 'candidate',
        session_id: this.id,
        candidate: c ? c.candidate : '',
        sdp_mid: c ? c.sdpMid : null,
        sdp_mline_index: c ? c.sdpMLineIndex : null,
      });
    });
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'failed' && this.state !== 'ended') {
        this.#emit('error', { code: 'ice_failed', message: 'no media path' });
      }
    });
    if (this.purpose === 'call' && this.localStream) {
      for (const track of this.localStream.getTracks()) pc.addTrack(track, this.localStream);
      if (!this.localStream.getVideoTracks().length) pc.addTransceiver('video', { direction: 'recvonly' });
      if (!this.localStream.getAudioTracks().length) pc.addTransceiver('audio', { direction: 'recvonly' });
    } else {
      pc.addTransceiver('video', { direction: 'recvonly' });
      if (this.purpose === 'call') pc.addTransceiver('audio', { direction: 'recvonly' });
    }
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await this.#gathered(pc, GATHER_WAIT_MS);
    if (this.state === 'ended' || this.pc !== pc) return;
    this.offerSent = true;
    socket.send({ type: 'offer', session_id: this.id, sdp: pc.localDescription.sdp });
    if (pc.iceGatheringState === 'complete') {
      socket.send({ type: 'candidate', session_id: this.id, candidate: '', sdp_mid: null, sdp_mline_index: null });
    }
    if (this.purpose !== 'call') this.#set('connecting');
    this.#watchStats(pc);
  }

  #gathered(pc, waitMs) {
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        pc.removeEventListener('icegatheringstatechange', check);
        clearTimeout(timer);
        resolve();
      };
      const check = () => { if (pc.iceGatheringState === 'complete') done(); };
      const timer = setTimeout(done, waitMs);
      pc.addEventListener('icegatheringstatechange', check);
    });
  }

  async #answer(sdp) {
    if (!this.pc) return;
    if (this.purpose === 'call') this.#set('connecting');
    try {
      await this.pc.setRemoteDescription({ type: 'answer', sdp });
      for (const c of this.pendingCandidates.splice(0)) await this.#addCandidate(c);
    } catch (e) {
      this.#emit('error', { code: 'bad_answer', message: String(e) });
    }
  }

  async #candidate(message) {
    if (!this.pc || !this.pc.remoteDescription) {
      this.pendingCandidates.push(message);
      return;
    }
    await this.#addCandidate(message);
  }

  async #addCandidate(message) {
    try {
      if (!message.candidate) await this.pc.addIceCandidate(null);
      else {
        await this.pc.addIceCandidate({
          candidate: message.candidate,
          sdpMid: message.sdp_mid,
          sdpMLineIndex: message.sdp_mline_index,
        });
      }
    } catch {
      // a candidate that does not apply any more (e.g. after ICE completed) changes nothing
    }
  }

  #watchStats(pc) {
    let lastReport = 0;
    const poll = async () => {
      if (this.pc !== pc || this.state === 'ended') return;
      let frames = 0;
      try {
        const stats = await pc.getStats();
        stats.forEach((r) => {
          if (r.type === 'inbound-rtp' && r.kind === 'video') frames += r.framesDecoded || 0;
        });
      } catch {
        return;
      }
      this.framesDecoded = frames;
      if (frames > 0 && this.firstFrameAt === null) {
        this.firstFrameAt = performance.now();
        this.#set('live');
        this.#emit('firstframe', { ms: this.firstFrameAt - this.startedAt });
      }
      const now = performance.now();
      // the first decoded frame of any purpose at once (the backend's click -> first frame
      // histogram on /metrics); calls then every VIDEO_REPORT_MS (drive safety)
      const due = lastReport === 0
        || (this.purpose === 'call' && now - lastReport >= VIDEO_REPORT_MS);
      if (frames > 0 && due) {
        lastReport = now;
        socket.send({ type: 'video', session_id: this.id, frames });
      }
    };
    this.timers.push(setInterval(poll, STATS_MS));
  }

  #finish(reason, { quiet = false } = {}) {
    if (this.state === 'ended') return;
    this.endReason = reason;
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    socket.sessions.delete(this.id);
    if (this.pc) {
      this.pc.close();
      this.pc = null;
    }
    for (const track of this.remote.getTracks()) track.stop();
    this.#set('ended');
    if (!quiet) this.#emit('ended', { reason });
  }
}

/** Server errors not tied to a session (e.g. rate_limited). */
export function onSignalError(fn) {
  const handler = (e) => fn(e.detail);
  socket.errors.addEventListener('error', handler);
  return () => socket.errors.removeEventListener('error', handler);
}

// Exposed for tests: the sessions of this page (for getStats from Playwright) and timings.
window.homecareSignal = {
  get sessions() { return [...socket.sessions.values()]; },
  last: null, // the MediaSession started last (tests read its pc.getStats())
};
