// The patrol's phone: only its own tasks and the unassigned ones (GET /api/patrol/tasks), each
// with the home's address, the door-code reference, the plan's instruction and why the patrol
// goes; large buttons: Kvittera (take the task), Framme (at the door), then what the patrol found.
// Made for a slow connection in a car: the last list is kept in localStorage and shown at once
// (also when the server cannot be reached), and every report goes through an outbox that is
// kept too and retried with backoff until the server confirms it (the routes are idempotent: a
// retried report changes nothing). No camera, no brukare records.
import { h, keyed, setText, hhmm, clock } from '../dom.js';
import { bind, has, t, tx } from '../i18n.js';
import { get, post } from '../api.js';
import { outbox, saveOutbox, savedTasks, saveTasks } from '../patrolstore.js';

const OUTCOMES = ['found_well', 'helped', 'taken_to_hospital', 'not_home'];
const REFRESH_MS = 15000;
const MAX_BACKOFF_MS = 15000;

function reasonText(code) {
  if (!code) return '';
  return has(`check_reason_${code}`) ? t(`check_reason_${code}`) : code;
}

/** May a failed report be sent again? (no answer, the server busy or failing) */
function retryable(err) {
  return err.status === 0 || err.status === 429 || err.status >= 500;
}

export function mount(container, ctx) {
  let alive = true;
  let tasks = [];
  let savedAt = null;
  let source = 'none'; // 'server' | 'saved'
  let known = null; // check ids seen, to call attention to a new one
  let sending = false;
  let retryTimer = null;
  let backoff = 1000;
  const reported = new Map(); // check_id -> outcome the server confirmed (until the list drops it)

  const status = h('p', { class: 'patrol-status', id: 'patrol-status', role: 'status' });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const list = h('ul', { class: 'tasks', id: 'task-list' });
  const empty = h('p', { class: 'empty', id: 'tasks-empty', hidden: true }, tx('patrol_phone_none'));
  container.append(h('section', { class: 'screen patrol-phone' },
    h('h1', { id: 'patrol-title' }, tx('patrol_phone_title')),
    status, error, list, empty));
  list.setAttribute('aria-labelledby', 'patrol-title');

  // ------------------------------------------------------------------ what the card shows

  /** A task with the reports still in the outbox applied on top (what the patrol did). */
  function effective(task) {
    const view = { ...task, pending: 0, reported: reported.get(task.check_id) || null };
    for (const item of outbox()) {
      if (item.check_id !== task.check_id) continue;
      view.pending += 1;
      if (item.action === 'ack') view.state = 'patrol_acked';
      else if (item.action === 'arrived') view.patrol_arrived_at = view.patrol_arrived_at || 'pending';
      else if (item.action === 'outcome') view.reported = item.outcome;
    }
    return view;
  }

  function bigButton(action, key, cls, outcome) {
    const button = h('button', { type: 'button', class: `big ${cls}`, dataset: { action } }, tx(key));
    if (outcome) button.dataset.outcome = outcome;
    return button;
  }

  function renderTask(task, card) {
    if (!card) {
      const ack = bigButton('ack', 'patrol_phone_ack', 'primary');
      const arrived = bigButton('arrived', 'patrol_phone_arrived', 'primary');
      const outcomes = OUTCOMES.map((o) => bigButton('outcome', `patrol_outcome_${o}`, o === 'not_home' ? 'ghost' : 'go', o));
      card = h('li', { class: 'task' },
        h('div', { class: 'task-head' }, h('h2', { class: 'name' }), h('span', { class: 'badge state' })),
        h('p', { class: 'home' }),
        h('p', { class: 'door' }),
        h('p', { class: 'why' }),
        h('p', { class: 'instruction' }),
        h('p', { class: 'when muted' }),
        h('p', { class: 'sent muted', role: 'status' }),
        h('div', { class: 'big-actions' }, ack, arrived, h('div', { class: 'outcomes' }, outcomes)));
      ack.addEventListener('click', () => report(card.dataset.key, 'ack'));
      arrived.addEventListener('click', () => report(card.dataset.key, 'arrived'));
      for (const button of outcomes) {
        button.addEventListener('click', () => report(card.dataset.key, 'outcome', button.dataset.outcome));
      }
    }
    const v = effective(task);
    setText(card.querySelector('.name'), v.display_name || v.check_id);
    setText(card.querySelector('.home'), v.home);
    const door = card.querySelector('.door');
    door.hidden = !v.door_code_ref;
    if (v.door_code_ref) bind(door, 'patrol_phone_door', { ref: v.door_code_ref });
    bind(card.querySelector('.why'), 'patrol_why', { reason: reasonText(v.reason) });
    const instruction = card.querySelector('.instruction');
    setText(instruction, v.instruction);
    instruction.hidden = !v.instruction;
    const badge = card.querySelector('.state');
    bind(badge, `state_${v.state}`);
    badge.dataset.tone = v.state === 'patrol' ? 'bad' : 'warn';
    const left = v.deadline ? (Date.parse(v.deadline) - Date.now()) / 1000 : null;
    bind(card.querySelector('.when'), left === null ? 'patrol_no_deadline' : left >= 0 ? 'patrol_due' : 'patrol_overdue',
      { agreed: v.agreed, t: clock(Math.abs(left || 0)) });
    const sent = card.querySelector('.sent');
    if (v.reported && !v.pending) bind(sent, 'patrol_phone_reported', { what: t(`patrol_outcome_${v.reported}`) });
    else if (v.pending) bind(sent, 'patrol_phone_sending');
    else if (v.patrol_arrived_at) bind(sent, 'patrol_phone_at_door', { t: hhmm(v.patrol_arrived_at) });
    else {
      sent.textContent = '';
      delete sent.dataset.i18n;
    }
    const done = Boolean(v.reported);
    card.querySelector('[data-action="ack"]').hidden = done || v.state !== 'patrol';
    card.querySelector('[data-action="arrived"]').hidden = done || v.state !== 'patrol_acked' || Boolean(v.patrol_arrived_at);
    card.querySelector('.outcomes').hidden = done || v.state !== 'patrol_acked' || !v.patrol_arrived_at;
    card.dataset.state = v.state;
    card.dataset.pending = String(v.pending);
    card.dataset.urgent = v.state === 'patrol' ? 'yes' : 'no';
    return card;
  }

  function render() {
    keyed(list, tasks, (task) => task.check_id, renderTask);
    empty.hidden = tasks.length > 0;
    const waiting = outbox().length;
    const at = savedAt ? hhmm(savedAt) : '–';
    const key = source === 'server' ? 'patrol_phone_fresh' : source === 'saved' ? 'patrol_phone_saved' : 'patrol_phone_loading';
    bind(status, waiting ? `${key}_pending` : key, { t: at, n: waiting });
    status.dataset.source = source;
    if (ctx.attention) ctx.attention.setCount(tasks.filter((task) => effective(task).state === 'patrol').length);
  }

  // ------------------------------------------------------------------ the list

  function noticeNew(fresh) {
    const ids = new Set(fresh.map((task) => task.check_id));
    if (known !== null && ctx.attention) {
      const added = fresh.filter((task) => !known.has(task.check_id) && task.state === 'patrol');
      if (added.length) ctx.attention.call('task', t('attention_task', { n: added.length }));
    }
    known = ids;
  }

  async function load() {
    try {
      const data = await get('/api/patrol/tasks');
      if (!alive) return;
      noticeNew(data.tasks);
      tasks = data.tasks;
      for (const id of [...reported.keys()]) if (!tasks.some((task) => task.check_id === id)) reported.delete(id);
      savedAt = new Date().toISOString();
      source = 'server';
      saveTasks(ctx.me, tasks);
      error.textContent = '';
      delete error.dataset.i18n;
      render();
      flush();
    } catch (err) {
      if (!alive || err.status === 401) return;
      if (source !== 'saved' && !fromSaved()) bind(error, 'error_load', { what: t('patrol_phone_title') });
      source = tasks.length || savedAt ? 'saved' : source;
      render();
    }
  }

  /** Show the list this phone kept (at once on mount, and when the server cannot be reached). */
  function fromSaved() {
    const saved = savedTasks();
    if (!saved || saved.me.staff_id !== ctx.me.staff_id) return false;
    tasks = saved.tasks;
    savedAt = saved.saved_at;
    source = 'saved';
    if (known === null) known = new Set(tasks.map((task) => task.check_id));
    render();
    return true;
  }

  // ------------------------------------------------------------------ reports

  function report(checkId, action, outcome) {
    const items = outbox();
    // Pressing twice is one report: the same step of the same task is queued once.
    if (items.some((i) => i.check_id === checkId && i.action === action && i.outcome === outcome)) return;
    const id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    items.push(outcome ? { id, check_id: checkId, action, outcome } : { id, check_id: checkId, action });
    saveOutbox(items);
    render();
    ctx.announce(t('patrol_phone_sending'));
    backoff = 1000;
    flush();
  }

  function path(item) {
    const base = `/api/checks/${encodeURIComponent(item.check_id)}/patrol`;
    return item.action === 'ack' ? `${base}/ack` : item.action === 'arrived' ? `${base}/arrived` : `${base}/outcome`;
  }

  function applyAnswer(item, answer) {
    const task = tasks.find((x) => x.check_id === item.check_id);
    if (!task || !answer) return;
    if (item.action === 'arrived') task.patrol_arrived_at = answer.arrived_at;
    else {
      task.state = answer.state;
      task.deadline = answer.deadline;
      if (item.action === 'outcome' && item.outcome !== 'not_home') reported.set(item.check_id, item.outcome);
      if (item.action === 'outcome' && item.outcome === 'not_home') task.patrol_arrived_at = null;
    }
    saveTasks(ctx.me, tasks);
  }

  /** Send the outbox in order; a report without an answer is sent again, the same, later. */
  async function flush() {
    if (sending || !alive) return;
    sending = true;
    clearTimeout(retryTimer);
    retryTimer = null;
    try {
      for (;;) {
        const [item] = outbox();
        if (!item || !alive) break;
        let answer;
        try {
          answer = await post(path(item), item.action === 'outcome' ? { outcome: item.outcome } : {});
        } catch (err) {
          if (err.status === 401) return; // the shell takes the patrol to the login
          if (retryable(err)) {
            retryTimer = setTimeout(() => flush(), backoff);
            backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
            render();
            return;
          }
          saveOutbox(outbox().filter((i) => i.id !== item.id));
          bind(error, err.code && has(`error_${err.code}`) ? `error_${err.code}` : 'error_generic');
          render();
          load();
          continue;
        }
        backoff = 1000;
        saveOutbox(outbox().filter((i) => i.id !== item.id));
        applyAnswer(item, answer);
        ctx.announce(t(item.action === 'outcome' ? 'patrol_phone_reported' : 'patrol_phone_sent',
          { what: item.outcome ? t(`patrol_outcome_${item.outcome}`) : '' }));
        render();
      }
    } finally {
      sending = false;
    }
  }

  const online = () => { backoff = 1000; load(); };
  window.addEventListener('online', online);
  const offs = ctx.live ? [ctx.live.on('resync', () => load())] : [];
  fromSaved();
  load();
  const refresh = setInterval(() => alive && load(), REFRESH_MS);
  const tick = setInterval(() => alive && render(), 1000);

  // Exposed for tests and support: where the list came from and the reports waiting (ids only).
  window.homecarePatrol = {
    get source() { return source; },
    pending: () => outbox().length,
  };

  return () => {
    alive = false;
    clearInterval(refresh);
    clearInterval(tick);
    clearTimeout(retryTimer);
    window.removeEventListener('online', online);
    for (const off of offs) off();
    delete window.homecarePatrol;
  };
}
