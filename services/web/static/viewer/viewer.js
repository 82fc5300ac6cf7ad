// The reference viewer: one live view of one camera through /ws/signal (see services/signalling/service.py).
// The browser offers receive-only video and trickles its candidates after the offer; the server
// answers `granted` (ICE servers, deadline) or `denied` (reason), relays the camera's answer and
// ends the view with `bye` (timeout at the care plan's cap, withdrawn, operator, device_lost).
// The page then closes the picture by itself. Nothing is recorded: frames go to <video> only.
// Förläng asks for more time with a reason code (`request` with `extend`); the server audits it,
// answers `granted` with the new deadline, or an `error` (extension_limit, ...) that is shown.
// Every view is owed to a check: the page names the due check (Kontroll, `check_id`) or, for an
// extra look, a reason code and a note; with neither the server answers `denied no_due_check`.
// Query: ?device=cam-0001&check=20261206.2200.r-0001 opens at once; ?lang=en for English.

const TEXT = {
  sv: {
    title: 'Tittvy', device: 'Enhet', open: 'Öppna bild', close: 'Stäng',
    check: 'Kontroll', lookReason: 'Extra titt: skäl', lookNote: 'Anteckning', none: '–',
    lookReasons: { alarm: 'Larm', concern_reported: 'Oro anmäld', follow_up: 'Uppföljning' },
    note: 'Inget spelas in. Bilden stängs av sig själv när den avtalade tiden är slut.',
    connecting: 'Ansluter …', asking: 'Frågar om tillstånd …', live: 'Bild visas',
    left: (s) => `${s} s kvar`, denied: 'Nekad', closed: 'Bilden är stängd', lost: 'Anslutningen bröts',
    login: 'Ingen anslutning: logga in i konsolen (/) först',
    why: 'Skäl att förlänga', choose: 'Välj skäl …', extend: 'Förläng',
    extended: (why, n) => `Förlängd (${n}): ${why}`,
    extendReasons: {
      unclear_image: 'Otydlig bild', awaiting_movement: 'Väntar på rörelse',
      possible_distress: 'Kan behöva hjälp', assisting_by_call: 'Hjälper via samtal',
    },
    errors: {
      extension_limit: 'Bilden kan inte förlängas fler gånger', not_extendable: 'Går inte att förlänga (en extra titt förlängs aldrig)',
    },
    reasons: {
      timeout: 'den avtalade tiden är slut', withdrawn: 'samtycket eller planen gäller inte längre',
      operator: 'du stängde', device_lost: 'kameran tappade anslutningen', declined: 'avvisad',
      no_answer: 'inget svar', no_consent: 'samtycke saknas', outside_window: 'utanför avtalad tid',
      device_offline: 'kameran är inte ansluten', device_not_bound: 'kameran är inte kopplad till någon brukare',
      paused: 'uppehåll pågår', busy: 'kameran används redan', forbidden: 'din roll får inte titta',
      no_due_check: 'ingen kontroll att titta för just nu (ange kontroll, eller skäl och anteckning)',
      not_on_duty: 'du är inte i tjänst', budget_spent: 'kontrollens tid att titta är slut',
    },
  },
  en: {
    title: 'Live view', device: 'Device', open: 'Open picture', close: 'Close',
    check: 'Check', lookReason: 'Extra look: reason', lookNote: 'Note', none: '–',
    lookReasons: { alarm: 'Alarm', concern_reported: 'Concern reported', follow_up: 'Follow-up' },
    note: 'Nothing is recorded. The picture closes by itself when the agreed time is up.',
    connecting: 'Connecting …', asking: 'Asking for permission …', live: 'Live',
    left: (s) => `${s} s left`, denied: 'Denied', closed: 'The picture is closed', lost: 'Connection lost',
    login: 'No connection: log in to the console (/) first',
    why: 'Reason to extend', choose: 'Choose a reason …', extend: 'Extend',
    extended: (why, n) => `Extended (${n}): ${why}`,
    extendReasons: {
      unclear_image: 'Unclear picture', awaiting_movement: 'Waiting for movement',
      possible_distress: 'May need help', assisting_by_call: 'Helping by call',
    },
    errors: {
      extension_limit: 'The view cannot be extended any more', not_extendable: 'Cannot be extended (an extra look never is)',
    },
    reasons: {
      timeout: 'the agreed time is up', withdrawn: 'consent or plan no longer in force',
      operator: 'you closed it', device_lost: 'the camera lost its connection', declined: 'declined',
      no_answer: 'no answer', no_consent: 'no consent', outside_window: 'outside the agreed time',
      device_offline: 'the camera is offline', device_not_bound: 'the camera is not bound to anyone',
      paused: 'a pause is in force', busy: 'the camera is in use', forbidden: 'your role may not view',
      no_due_check: 'no check is due for a look now (name the check, or a reason and a note)',
      not_on_duty: 'you are not on duty', budget_spent: "the check's viewing time is used up",
    },
  },
};
const params = new URLSearchParams(location.search);
const lang = params.get('lang') === 'en' ? 'en' : 'sv';
const t = TEXT[lang];
const $ = (id) => document.getElementById(id);
document.documentElement.lang = lang;
for (const el of document.querySelectorAll('[data-t]')) el.textContent = t[el.dataset.t];
for (const el of document.querySelectorAll('[data-r]')) el.textContent = t.extendReasons[el.dataset.r];
for (const el of document.querySelectorAll('[data-l]')) el.textContent = t.lookReasons[el.dataset.l];

// Tests read frames through pc.getStats() (tests/e2e/browser.py).
window.homecareSignal = { last: null };
let view = null;

function status(state, text) {
  $('status').dataset.state = state;
  $('status').textContent = text;
}

function reason(code) {
  return t.reasons[code] || code;
}

function sessionId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return 's-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

class View {
  constructor(deviceId, owed) {
    this.deviceId = deviceId;
    this.owed = owed; // {check_id} or {reason, note}: what the look is owed to
    this.sessionId = sessionId();
    this.pc = null;
    this.t0 = performance.now();
    this.firstFrameMs = null; // request -> first frame on screen (bench/signalling.py reads it)
    this.offerSent = false;
    this.opened = false;
    this.pending = [];
    this.timer = null;
    this.ended = false;
    this.extensions = 0;
    this.asked = null; // the reason of an extension awaiting its `granted`
    window.homecareSignal.last = this;
    $('notice').textContent = '';
    status('connecting', t.connecting);
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    this.ws = new WebSocket(`${scheme}//${location.host}/ws/signal`);
    this.ws.addEventListener('open', () => {
      this.opened = true;
      status('asking', t.asking);
      this.send({ type: 'request', session_id: this.sessionId, device_id: deviceId, purpose: 'view', ...this.owed });
    });
    this.ws.addEventListener('message', (e) => this.receive(JSON.parse(e.data)));
    this.ws.addEventListener('close', () => {
      if (!this.ended) this.end('closed', this.opened ? t.lost : t.login);
    });
  }

  send(message) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  async receive(m) {
    if (m.session_id && m.session_id !== this.sessionId) return;
    switch (m.type) {
      case 'granted': return this.granted(m);
      case 'denied': return this.end('denied', `${t.denied}: ${reason(m.reason)}`);
      case 'answer': return this.pc && this.pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
      case 'candidate':
        if (!this.pc) return undefined;
        return this.pc.addIceCandidate(m.candidate
          ? { candidate: m.candidate, sdpMid: m.sdp_mid, sdpMLineIndex: m.sdp_mline_index }
          : null).catch(() => {});
      case 'bye': return this.end('closed', `${t.closed}: ${reason(m.reason)}`, m.reason);
      case 'error':
        this.asked = null;
        $('notice').textContent = (t.errors && t.errors[m.code]) || `${m.code}: ${m.message}`;
        return undefined;
      default: return undefined;
    }
  }

  async granted(m) {
    this.deadline = m.deadline;
    if (this.pc) { // an extension re-sends `granted` with a new deadline
      if (this.asked) {
        this.extensions += 1;
        $('notice').textContent = t.extended(t.extendReasons[this.asked], this.extensions);
        this.asked = null;
      }
      return this.tick();
    }
    const iceServers = (m.ice_servers || []).map((s) => ({
      urls: s.urls, username: s.username || undefined, credential: s.credential || undefined,
    }));
    const pc = this.pc = new RTCPeerConnection({ iceServers });
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addEventListener('track', (e) => {
      const video = $('video');
      const mark = () => {
        if (this.firstFrameMs !== null) return;
        this.firstFrameMs = performance.now() - this.t0;
        // tell the backend (its click -> first frame histogram on /metrics)
        this.send({ type: 'video', session_id: this.sessionId, frames: 1 });
      };
      video.addEventListener('loadeddata', mark, { once: true });
      if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(mark);
      video.srcObject = e.streams[0] || new MediaStream([e.track]);
      status('live', t.live);
    });
    pc.addEventListener('icecandidate', (e) => {
      const c = e.candidate;
      const message = c
        ? { type: 'candidate', session_id: this.sessionId, candidate: c.candidate,
            sdp_mid: c.sdpMid, sdp_mline_index: c.sdpMLineIndex }
        : { type: 'candidate', session_id: this.sessionId, candidate: '' };
      if (this.offerSent) this.send(message); else this.pending.push(message);
    });
    await pc.setLocalDescription(await pc.createOffer());
    this.send({ type: 'offer', session_id: this.sessionId, sdp: pc.localDescription.sdp });
    this.offerSent = true;
    for (const message of this.pending.splice(0)) this.send(message);
    this.timer = setInterval(() => this.tick(), 250);
    this.tick();
    $('close').disabled = false;
    $('reason').disabled = false;
    extendable();
  }

  tick() {
    const left = Math.max(0, Math.ceil(this.deadline - Date.now() / 1000));
    $('left').textContent = t.left(left);
  }

  extend(reason) {
    this.asked = reason;
    this.send({ type: 'request', session_id: this.sessionId, extend: reason });
  }

  hangUp() {
    this.send({ type: 'bye', session_id: this.sessionId, reason: 'operator' });
  }

  end(state, text, code) {
    this.ended = true;
    this.reason = code || state;
    clearInterval(this.timer);
    if (this.pc) this.pc.close();
    this.ws.close();
    if (view !== this) return; // a newer view (Öppna bild again) owns the page now
    $('video').srcObject = null;
    $('left').textContent = '';
    $('close').disabled = true;
    $('reason').disabled = true;
    extendable();
    status(state, text);
  }
}

// What the look is owed to, from the form: the check, else an extra look's reason and note.
function owed() {
  const check = $('check').value.trim();
  if (check) return { check_id: check };
  const reason = $('look-reason').value;
  const note = $('look-note').value.trim();
  return reason && note ? { reason, note } : {};
}

$('ask').addEventListener('submit', (e) => {
  e.preventDefault();
  if (view && !view.ended) view.hangUp();
  view = new View($('device').value.trim(), owed());
});
$('close').addEventListener('click', () => { if (view && !view.ended) view.hangUp(); });
// Förläng needs a live view and a reason code.
function extendable() {
  $('extend').disabled = !(view && !view.ended && view.pc && $('reason').value);
}
$('reason').addEventListener('change', extendable);
$('more').addEventListener('submit', (e) => {
  e.preventDefault();
  if (view && !view.ended && $('reason').value) view.extend($('reason').value);
});
const preset = params.get('device');
if (params.get('check')) $('check').value = params.get('check');
if (preset) {
  $('device').value = preset;
  view = new View(preset, owed());
}
