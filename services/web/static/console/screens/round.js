// Tonight's round: the live queue of checks (those needing a human first, then by deadline) beside
// the viewer. A row shows the brukare's name, room, agreed time, the motion verdict, the camera's
// health and the personal instruction. Rows have a fixed height and keep their identity across
// live updates, so nothing jumps while the operator reads.
import { h, keyed, setText, hhmm, clock } from '../dom.js';
import { bind, bindAttr, has, t, tx } from '../i18n.js';
import { get, post, del } from '../api.js';
import { ViewPanel, reasonKey } from '../feed.js';
import { CallPanel } from '../call.js';
import { OutcomeForm } from '../outcome.js';
import { problems } from './devices.js';

const HUMAN = new Set(['needs_view', 'viewing', 'calling']);
const RANK = { viewing: 0, needs_view: 1, calling: 2, patrol: 3, patrol_acked: 4, probing: 5, due: 6, retry_wait: 7, planned: 8 };
const OPENABLE = new Set(['needs_view', 'viewing']);
const DOCUMENTABLE = new Set(['viewing', 'calling']);
const CALLABLE = new Set(['needs_view', 'viewing', 'calling']);
const RECIPIENT_TTL_MS = 60000;
const GATE_TTL_MS = 15000;
const RELOAD_DEBOUNCE_MS = 250;
const LEAVE_MS = 700;

/** Sort key: the human queue first, then by deadline (earliest first). */
export function compareChecks(a, b) {
  const ha = HUMAN.has(a.state) ? 0 : 1;
  const hb = HUMAN.has(b.state) ? 0 : 1;
  if (ha !== hb) return ha - hb;
  const da = a.deadline ? Date.parse(a.deadline) : Infinity;
  const db = b.deadline ? Date.parse(b.deadline) : Infinity;
  if (da !== db) return da - db;
  const ra = RANK[a.state] ?? 9;
  const rb = RANK[b.state] ?? 9;
  if (ra !== rb) return ra - rb;
  return a.check_id.localeCompare(b.check_id);
}

function activePlan(basis, now) {
  const plans = (basis?.care_plans || []).filter((p) => !p.ended_at
    && Date.parse(p.valid_from) <= now && (!p.valid_until || Date.parse(p.valid_until) > now));
  return plans[plans.length - 1] || null;
}

function boundDevice(basis, kind) {
  const b = (basis?.bindings || []).find((x) => !x.unbound_at && x.device_kind === kind);
  return b ? b.device_id : null;
}

/** The verdict cell's text: the motion check's verdict and its key numbers (from the queue's
 * `motion`: confidence, moving share, frames, seconds active in the bed zone). */
export function verdictText(check) {
  const parts = [];
  const m = check.motion && typeof check.motion === 'object' ? check.motion : null;
  const verdict = check.verdict || m?.verdict || null;
  if (verdict) parts.push(has(`verdict_${verdict}`) ? t(`verdict_${verdict}`) : verdict);
  if (m) {
    const n = m.numbers || {};
    if (typeof m.confidence === 'number') parts.push(t('verdict_confidence', { pct: Math.round(m.confidence * 100) }));
    if (typeof n.moving_peak === 'number') parts.push(t('verdict_motion', { pct: (n.moving_peak * 100).toFixed(1) }));
    if (typeof n.bed_active_s === 'number') parts.push(t('verdict_bed', { s: Math.round(n.bed_active_s) }));
    if (typeof n.frames === 'number') parts.push(t('verdict_frames', { n: Math.round(n.frames) }));
  }
  if (!parts.length && check.reason) parts.push(has(`check_reason_${check.reason}`) ? t(`check_reason_${check.reason}`) : check.reason);
  if (check.attempt > 1) parts.push(t('attempt_n', { n: check.attempt }));
  return parts.join(' · ');
}

export function mount(container, ctx) {
  const checks = new Map(); // check_id -> check json
  const recipients = new Map(); // recipient_id -> {basis, at}
  const devices = new Map(); // device_id -> device json
  const gates = new Map(); // `${device}|${purpose}` -> {allowed, reason, at}
  const leaving = new Map(); // check_id -> timer
  let onDuty = false;
  let alarmed = new Set(); // checks with an open alarm: their rows call for attention
  let loaded = false;
  let alive = true;
  let panelObj = null;
  let panelCheck = null;

  const counts = h('p', { class: 'queue-counts', role: 'status', id: 'queue-counts' });
  const dutyText = h('span', { id: 'duty-state' });
  const dutyButton = h('button', { type: 'button', id: 'duty-toggle' });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const planButton = h('button', { type: 'button', class: 'ghost', id: 'plan-night', hidden: !ctx.isAdmin }, tx('round_plan_now'));
  let night = null;
  const list = h('ol', { class: 'queue', id: 'queue' });
  bindAttr(list, 'aria-label', 'round_queue_label');
  const empty = h('p', { class: 'empty', id: 'queue-empty', hidden: true }, tx('round_empty'));
  const panel = h('section', { class: 'panel', id: 'panel', hidden: true, tabindex: '-1' });
  const layout = h('div', { class: 'round no-panel' },
    h('section', { class: 'queue-col', 'aria-labelledby': 'round-title' },
      h('div', { class: 'queue-head' },
        h('h1', { id: 'round-title' }, tx('round_title')),
        counts,
        h('span', { class: 'spacer' }),
        h('span', { class: 'duty' }, dutyText, ' ', dutyButton, planButton)),
      error,
      list, empty),
    panel);
  container.append(layout);

  // ------------------------------------------------------------------ data

  async function loadQueue() {
    try {
      const data = await get('/api/rounds/queue');
      if (!alive) return;
      const seen = new Set();
      for (const c of data.checks) {
        seen.add(c.check_id);
        checks.set(c.check_id, c);
        cancelLeave(c.check_id);
      }
      for (const id of [...checks.keys()]) if (!seen.has(id)) leave(id);
      onDuty = (data.on_duty || []).includes(ctx.me.staff_id);
      night = data.night;
      alarmed = new Set((data.alarms || []).map((a) => a.check_id));
      loaded = true;
      error.textContent = '';
      delete error.dataset.i18n;
      render();
      await Promise.all([loadRecipients(), loadGates()]);
      if (alive) render();
    } catch (err) {
      if (alive && err.status !== 401) bind(error, 'error_load', { what: t('round_title') });
    }
  }

  async function loadDevices() {
    try {
      const data = await get('/api/devices?limit=5000');
      if (!alive) return;
      devices.clear();
      for (const d of data.devices) devices.set(d.id, d);
      render();
    } catch {
      // the queue still works; the device cell shows "–"
    }
  }

  async function loadRecipients(force = false) {
    const now = Date.now();
    const ids = new Set([...checks.values()].map((c) => c.recipient_id));
    await Promise.all([...ids].map(async (id) => {
      const cached = recipients.get(id);
      if (!force && cached && now - cached.at < RECIPIENT_TTL_MS) return;
      try {
        const basis = await get(`/api/recipients/${encodeURIComponent(id)}`);
        recipients.set(id, { basis, at: Date.now() });
      } catch {
        if (!cached) recipients.set(id, { basis: null, at: Date.now() });
      }
    }));
  }

  async function gate(deviceId, purpose, force = false) {
    const key = `${deviceId}|${purpose}`;
    const cached = gates.get(key);
    if (!force && cached && Date.now() - cached.at < GATE_TTL_MS) return cached;
    try {
      const d = await get(`/api/gate?device_id=${encodeURIComponent(deviceId)}&purpose=${purpose}`);
      const value = { allowed: d.allowed, reason: d.reason, at: Date.now() };
      gates.set(key, value);
      return value;
    } catch {
      return cached || null;
    }
  }

  async function loadGates(force = false) {
    const work = [];
    for (const c of checks.values()) {
      if (OPENABLE.has(c.state) && c.device_id) work.push(gate(c.device_id, 'camera_check', force));
      if (CALLABLE.has(c.state)) {
        const phone = boundDevice(recipients.get(c.recipient_id)?.basis, 'video_phone');
        if (phone) work.push(gate(phone, 'video_call', force));
      }
    }
    await Promise.all(work);
  }

  function leave(id) {
    if (leaving.has(id) || !checks.has(id)) return;
    const row = list.querySelector(`[data-key="${CSS.escape(id)}"]`);
    if (row) row.dataset.leaving = 'yes';
    leaving.set(id, setTimeout(() => {
      leaving.delete(id);
      checks.delete(id);
      render();
    }, LEAVE_MS));
  }

  function cancelLeave(id) {
    const timer = leaving.get(id);
    if (timer) {
      clearTimeout(timer);
      leaving.delete(id);
    }
  }

  // ------------------------------------------------------------------ rendering

  function renderDuty() {
    // never offer a toggle before the server said where we stand, nor to a role without duty
    dutyButton.hidden = !loaded || !ctx.may('keep_watch');
    if (!loaded) return;
    bind(dutyText, onDuty ? 'duty_on' : 'duty_off');
    dutyText.dataset.state = onDuty ? 'on' : 'off';
    bind(dutyButton, onDuty ? 'duty_end' : 'duty_start');
    dutyButton.dataset.action = onDuty ? 'end' : 'start';
    dutyButton.className = onDuty ? 'ghost' : 'primary';
  }

  function render() {
    renderDuty();
    const all = [...checks.values()].sort(compareChecks);
    keyed(list, all, (c) => c.check_id, (c, row) => renderRow(c, row));
    empty.hidden = all.length > 0;
    const human = all.filter((c) => HUMAN.has(c.state)).length;
    const patrol = all.filter((c) => c.state === 'patrol' || c.state === 'patrol_acked').length;
    bind(counts, 'round_counts', { human, patrol, waiting: all.length - human - patrol });
  }

  function renderRow(c, row) {
    if (!row) {
      const time = h('div', { class: 'time' }, h('span', { class: 'agreed' }), h('small', { class: 'due' }));
      const who = h('div', { class: 'who-cell' },
        h('div', { class: 'name' }), h('div', { class: 'sub room' }), h('div', { class: 'instruction' }));
      const verdict = h('div', { class: 'verdict' },
        h('span', { class: 'badge state' }), h('div', { class: 'sub numbers' }));
      const device = h('div', { class: 'device' }, h('span', { class: 'badge health' }), h('div', { class: 'sub device-id mono' }));
      const openButton = h('button', { type: 'button', class: 'primary open', dataset: { action: 'open' } }, tx('feed_open'));
      const callButton = h('button', { type: 'button', class: 'call', dataset: { action: 'call' } }, tx('call_start'));
      const docButton = h('button', { type: 'button', class: 'doc', dataset: { action: 'document' } }, tx('document_short'));
      const deny = h('span', { class: 'deny', role: 'note' });
      const actions = h('div', { class: 'actions' }, openButton, callButton, docButton, deny);
      row = h('li', { class: 'check' }, time, who, verdict, device, actions);
      openButton.addEventListener('click', (e) => openView(row.dataset.key, e.timeStamp));
      callButton.addEventListener('click', () => openCall(row.dataset.key));
      docButton.addEventListener('click', () => openDocument(row.dataset.key));
    }
    const [time, who, verdict, device, actions] = row.children;
    const basis = recipients.get(c.recipient_id)?.basis || null;
    const name = basis?.recipient?.display_name || c.recipient_id;
    const room = basis?.recipient?.home || '';
    const plan = activePlan(basis, Date.now());
    setText(time.querySelector('.agreed'), c.agreed);
    const due = time.querySelector('.due');
    const left = c.deadline ? (Date.parse(c.deadline) - Date.now()) / 1000 : null;
    if (left === null) setText(due, '');
    else if (left >= 0) setText(due, t('due_in', { t: clock(left) }));
    else setText(due, t('overdue_by', { t: clock(-left) }));
    row.dataset.overdue = left !== null && left < 0 ? 'yes' : 'no';
    setText(who.querySelector('.name'), name);
    setText(who.querySelector('.room'), room);
    const instruction = who.querySelector('.instruction');
    setText(instruction, plan?.instruction || '');
    instruction.title = plan?.instruction || '';
    const stateBadge = verdict.querySelector('.state');
    bind(stateBadge, `state_${c.state}`);
    stateBadge.dataset.tone = HUMAN.has(c.state) ? 'warn' : c.state.startsWith('patrol') ? 'bad' : 'info';
    const numbers = verdict.querySelector('.numbers');
    setText(numbers, verdictText(c));
    numbers.title = numbers.textContent;

    const d = c.device_id ? devices.get(c.device_id) : null;
    const healthBadge = device.querySelector('.health');
    if (!c.device_id) {
      bind(healthBadge, 'device_none');
      healthBadge.dataset.tone = 'bad';
    } else if (!d) {
      bind(healthBadge, 'presence_unknown');
      healthBadge.dataset.tone = 'info';
    } else {
      const picture = { camera_dark: 'dark', camera_frozen: 'frozen', camera_covered: 'covered', camera_no_signal: 'no_signal' }[c.reason] || null;
      const codes = problems(d, picture);
      bind(healthBadge, codes.length ? `problem_${codes[0]}` : 'device_ok');
      healthBadge.dataset.tone = codes.length ? 'bad' : 'ok';
    }
    setText(device.querySelector('.device-id'), c.device_id || '');

    const [openButton, callButton, docButton, deny] = actions.children;
    const phone = boundDevice(basis, 'video_phone');
    // A role without the permission (a case officer: no live view) is not offered the button.
    openButton.hidden = !OPENABLE.has(c.state) || !ctx.may('live_view');
    callButton.hidden = !(CALLABLE.has(c.state) && phone) || !ctx.may('call');
    docButton.hidden = !DOCUMENTABLE.has(c.state) || !ctx.may('document_checks');
    let denyKey = null;
    if (OPENABLE.has(c.state)) {
      const g = c.device_id ? gates.get(`${c.device_id}|camera_check`) : null;
      if (!c.device_id) denyKey = 'reason_no_device';
      else if (d && d.presence !== 'online') denyKey = 'reason_device_offline';
      else if (g && !g.allowed) denyKey = reasonKey(g.reason);
      else if (c.state === 'viewing' && c.holder && c.holder !== ctx.me.staff_id) denyKey = 'reason_busy';
      else if (!onDuty) denyKey = 'reason_not_on_duty';
    }
    let callDeny = null;
    if (CALLABLE.has(c.state) && phone) {
      const g = gates.get(`${phone}|video_call`);
      const p = devices.get(phone);
      if (p && p.presence !== 'online') callDeny = 'reason_device_offline';
      else if (g && !g.allowed) callDeny = reasonKey(g.reason);
      else if (!onDuty) callDeny = 'reason_not_on_duty';
    }
    callButton.disabled = Boolean(callDeny);
    if (!denyKey && callDeny && c.state === 'calling') denyKey = callDeny;
    openButton.disabled = Boolean(denyKey);
    if (denyKey) {
      bind(deny, denyKey);
      deny.id = `deny-${c.check_id}`;
      openButton.setAttribute('aria-describedby', deny.id);
      callButton.setAttribute('aria-describedby', deny.id);
      deny.hidden = false;
    } else {
      deny.textContent = '';
      delete deny.dataset.i18n;
      openButton.removeAttribute('aria-describedby');
      callButton.removeAttribute('aria-describedby');
      deny.hidden = true;
    }
    bindAttr(openButton, 'aria-label', 'feed_open_for', { name });
    row.dataset.state = c.state;
    row.dataset.needs = HUMAN.has(c.state) ? 'human' : c.state.startsWith('patrol') ? 'patrol' : 'wait';
    row.dataset.alarm = alarmed.has(c.check_id) ? 'yes' : 'no';
    row.dataset.selected = panelCheck === c.check_id ? 'yes' : 'no';
    row.dataset.recipient = c.recipient_id;
    return row;
  }

  // ------------------------------------------------------------------ panel

  function closePanel() {
    if (panelObj) panelObj.destroy();
    panelObj = null;
    panelCheck = null;
    panel.hidden = true;
    clearPanel();
    layout.classList.add('no-panel');
    render();
  }

  function clearPanel() {
    for (const key of Object.keys(panel.dataset)) delete panel.dataset[key];
    panel.replaceChildren();
  }

  function showPanel(checkId) {
    if (panelObj) panelObj.destroy();
    panelObj = null;
    clearPanel(); // a new view starts with none of the last one's state
    panelCheck = checkId;
    panel.hidden = false;
    layout.classList.remove('no-panel');
    render();
  }

  function describe(c) {
    const basis = recipients.get(c.recipient_id)?.basis || null;
    const plan = activePlan(basis, Date.now());
    return {
      title: basis?.recipient?.display_name || c.recipient_id,
      subtitle: [basis?.recipient?.home, t('agreed_at', { t: c.agreed })].filter(Boolean).join(' · '),
      instruction: plan?.instruction || '',
      phone: boundDevice(basis, 'video_phone'),
    };
  }

  function documenter(checkId) {
    return async (outcome, { note, reason }) => {
      const body = { outcome };
      if (note) body.note = note;
      if (reason) body.reason = reason;
      const updated = await post(`/api/checks/${encodeURIComponent(checkId)}/outcome`, body);
      checks.set(checkId, updated);
      if (updated.category !== 'open') leave(checkId);
      render();
      return updated;
    };
  }

  function afterDocument(checkId, outcome) {
    if (outcome === 'call') {
      const c = checks.get(checkId);
      if (c && describe(c).phone) {
        openCall(checkId);
        return;
      }
    }
    setTimeout(() => {
      if (panelCheck === checkId) closePanel();
      focusQueue();
    }, 400);
    scheduleReload();
  }

  function focusQueue() {
    const next = list.querySelector('.check[data-needs="human"] button:not([hidden]):not(:disabled)');
    if (next) next.focus();
  }

  async function openView(checkId, clickedAt) {
    const c = checks.get(checkId);
    if (!c || !c.device_id) return;
    const clicked = typeof clickedAt === 'number' ? clickedAt : performance.now();
    showPanel(checkId);
    const info = describe(c);
    // The view names its check: the server grants it only while the check is due (queued, or
    // viewing held by me: a re-open continues its budget) and moves it to viewing itself.
    panelObj = new ViewPanel(panel, {
      deviceId: c.device_id,
      checkId,
      clickedAt: clicked,
      title: info.title,
      subtitle: info.subtitle,
      instruction: info.instruction,
      document: documenter(checkId),
      onDone: ({ outcome }) => afterDocument(checkId, outcome),
      announce: ctx.announce,
    });
    panelObj.start();
  }

  async function openCall(checkId) {
    const c = checks.get(checkId);
    if (!c) return;
    const info = describe(c);
    if (!info.phone) return;
    showPanel(checkId);
    if (c.state !== 'calling') {
      // "Ring upp" is itself an outcome of the look: the check moves to calling first.
      try {
        const updated = await post(`/api/checks/${encodeURIComponent(checkId)}/outcome`, { outcome: 'call' });
        checks.set(checkId, updated);
        render();
      } catch (err) {
        panel.replaceChildren(h('h2', {}, info.title), bind(h('p', { class: 'form-error', role: 'alert' }),
          err.code && has(`error_${err.code}`) ? `error_${err.code}` : 'error_generic'));
        return;
      }
      if (panelCheck !== checkId) return;
    }
    panelObj = new CallPanel(panel, {
      deviceId: info.phone,
      checkId,
      title: info.title,
      subtitle: info.subtitle,
      announce: ctx.announce,
      document: documenter(checkId),
      documentAllowed: ['ok', 'not_seen', 'patrol', 'technical'],
      onDocumented: ({ outcome }) => afterDocument(checkId, outcome),
      onDone: () => { closePanel(); focusQueue(); },
    });
    panelObj.start();
  }

  function openDocument(checkId) {
    const c = checks.get(checkId);
    if (!c) return;
    const info = describe(c);
    showPanel(checkId);
    const form = new OutcomeForm({
      idPrefix: 'doc',
      document: documenter(checkId),
      allowed: c.state === 'calling' ? ['ok', 'not_seen', 'patrol', 'technical'] : undefined,
      onDone: ({ outcome }) => afterDocument(checkId, outcome),
      announce: ctx.announce,
    });
    const close = h('button', { type: 'button', class: 'ghost', id: 'panel-close' }, tx('call_close_panel'));
    close.addEventListener('click', () => { closePanel(); focusQueue(); });
    panel.replaceChildren(
      h('div', { class: 'panel-head' }, h('h2', { id: 'panel-title' }, info.title), close),
      h('p', { class: 'sub muted' }, info.subtitle),
      info.instruction ? h('p', { class: 'instruction' }, info.instruction) : null,
      form.el);
    panel.dataset.mode = 'document';
    panelObj = { destroy() {} };
    form.focus();
  }

  // ------------------------------------------------------------------ events

  dutyButton.addEventListener('click', async () => {
    const start = dutyButton.dataset.action === 'start'; // what the operator saw, not a toggle
    dutyButton.disabled = true;
    try {
      if (start) await post('/api/rounds/duty');
      else await del('/api/rounds/duty');
      onDuty = start;
      ctx.announce(t(onDuty ? 'duty_on' : 'duty_off'));
    } catch (err) {
      if (err.code === 'not_on_duty') onDuty = false;
      else bind(error, 'error_generic');
    } finally {
      dutyButton.disabled = false;
      render();
      scheduleReload();
    }
  });

  planButton.addEventListener('click', async () => {
    if (!night) return;
    planButton.disabled = true;
    try {
      const plan = await post(`/api/nights/${night}/plan`);
      ctx.announce(t('round_planned', { n: plan.checks }));
      scheduleReload();
    } catch (err) {
      bind(error, err.code && has(`error_${err.code}`) ? `error_${err.code}` : 'error_generic');
    } finally {
      planButton.disabled = false;
    }
  });

  let pending = null;
  function scheduleReload() {
    if (pending) return;
    pending = setTimeout(() => { pending = null; if (alive) loadQueue(); }, RELOAD_DEBOUNCE_MS);
  }

  const offs = [
    ctx.live.on('check.changed', (e) => {
      const c = checks.get(e.check_id);
      if (c) {
        c.state = e.state;
        c.deadline = e.deadline;
        c.reason = e.reason;
        if (e.verdict !== undefined) c.verdict = e.verdict;
        if (e.category && e.category !== 'open') leave(e.check_id);
        render();
      }
      if (e.state === 'needs_view' && e.from !== 'needs_view') ctx.announce(t('announce_needs_view'));
      scheduleReload();
    }),
    ctx.live.on('check.alarm', (e) => {
      ctx.alert(t('announce_alarm', { state: t(`state_${e.state}`) }));
      alarmed.add(e.check_id);
      render();
      scheduleReload();
    }),
    ctx.live.on('consent.changed', () => {
      gates.clear();
      for (const r of recipients.values()) r.at = 0;
      scheduleReload();
    }),
    ctx.live.on('device.presence', (e) => {
      const d = devices.get(e.device_id);
      if (d) {
        d.presence = e.presence;
        render();
      } else loadDevices();
    }),
    ctx.live.on('resync', () => { loadDevices(); loadQueue(); }),
  ];

  const keys = (e) => {
    if (e.key === 'Escape' && panelObj && panel.dataset.mode === 'document' && !panel.contains(document.activeElement)) closePanel();
  };
  document.addEventListener('keydown', keys);

  loadDevices();
  loadQueue();
  const refresh = setInterval(() => { if (alive) loadQueue(); }, 20000);
  const tick = setInterval(() => {
    if (!alive || !checks.size) return;
    // The agreed window closing changes the gate's answer: ask again as soon as it has passed.
    const now = Date.now();
    const stale = [...checks.values()].filter((c) => OPENABLE.has(c.state) && c.device_id
      && Date.parse(c.window_end) <= now
      && (gates.get(`${c.device_id}|camera_check`)?.at ?? 0) < Date.parse(c.window_end) + 1000);
    if (stale.length) {
      for (const c of stale) gates.set(`${c.device_id}|camera_check`, { ...(gates.get(`${c.device_id}|camera_check`) || { allowed: true }), at: now });
      Promise.all(stale.map((c) => gate(c.device_id, 'camera_check', true))).then(() => alive && render());
    }
    render();
  }, 1000);
  const gateRefresh = setInterval(() => { if (alive) loadGates(true).then(() => alive && render()); }, GATE_TTL_MS);

  // Exposed for tests: the queue's order and the panel's state (ids only).
  window.homecareRound = {
    order: () => [...list.children].map((r) => r.dataset.key),
    check: (id) => checks.get(id) || null,
  };

  return () => {
    alive = false;
    clearInterval(refresh);
    clearInterval(tick);
    clearInterval(gateRefresh);
    clearTimeout(pending);
    for (const timer of leaving.values()) clearTimeout(timer);
    document.removeEventListener('keydown', keys);
    for (const off of offs) off();
    if (panelObj) panelObj.destroy();
    delete window.homecareRound;
  };
}
