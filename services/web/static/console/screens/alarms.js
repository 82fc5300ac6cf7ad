// Escalations and patrol tasks: missed-deadline alarms to acknowledge, and the physical visits the
// night patrol takes ("Tar uppdraget") and reports ("Besök gjort"). Live over the WebSocket.
import { h, keyed, setText, hhmm, clock } from '../dom.js';
import { bind, bindAttr, has, t, tx } from '../i18n.js';
import { get, post } from '../api.js';

const PATROL = new Set(['patrol', 'patrol_acked']);

function reasonText(code) {
  if (!code) return '';
  return has(`check_reason_${code}`) ? t(`check_reason_${code}`) : code;
}

export function mount(container, ctx) {
  let alive = true;
  let names = new Map();
  let alarms = [];
  let tasks = [];
  const error = h('p', { class: 'form-error', role: 'alert' });
  const alarmList = h('ul', { class: 'cards', id: 'alarm-list' });
  const alarmEmpty = h('p', { class: 'empty', hidden: true }, tx('alarms_none'));
  const taskList = h('ul', { class: 'cards', id: 'patrol-list' });
  const taskEmpty = h('p', { class: 'empty', hidden: true }, tx('patrol_none'));
  container.append(h('section', { class: 'screen alarms' },
    h('div', { class: 'screen-head' }, h('h1', {}, tx('alarms_title'))),
    error,
    h('h2', { id: 'alarms-h' }, tx('alarms_open')),
    alarmList, alarmEmpty,
    h('h2', { id: 'patrol-h' }, tx('patrol_tasks')),
    taskList, taskEmpty));
  alarmList.setAttribute('aria-labelledby', 'alarms-h');
  taskList.setAttribute('aria-labelledby', 'patrol-h');

  const nameOf = (rid) => names.get(rid)?.display_name || rid;
  const homeOf = (rid) => names.get(rid)?.home || '';

  async function act(button, path, body, doneKey) {
    button.disabled = true;
    try {
      await post(path, body);
      ctx.announce(t(doneKey));
      await load();
    } catch (err) {
      button.disabled = false;
      bind(error, err.code && has(`error_${err.code}`) ? `error_${err.code}` : 'error_generic');
    }
  }

  function renderAlarm(a, card) {
    if (!card) {
      const ack = h('button', { type: 'button', class: 'primary', dataset: { action: 'ack-alarm' } }, tx('alarm_ack'));
      card = h('li', { class: 'card', dataset: { tone: 'bad' } },
        h('h3', { class: 'name' }),
        h('p', { class: 'what' }),
        h('p', { class: 'when muted' }),
        h('div', { class: 'row' }, ack));
      ack.addEventListener('click', () => act(ack,
        `/api/alarms/${encodeURIComponent(card.dataset.check)}/${card.dataset.version}/ack`, {}, 'alarm_acked'));
    }
    card.dataset.check = a.check_id;
    card.dataset.version = String(a.version);
    setText(card.querySelector('.name'), nameOf(a.recipient_id));
    bind(card.querySelector('.what'), 'alarm_missed', { state: t(`state_${a.state}`) });
    const late = (Date.now() - Date.parse(a.deadline)) / 1000;
    bind(card.querySelector('.when'), 'alarm_late', { at: hhmm(a.deadline), late: clock(late) });
    return card;
  }

  function renderTask(c, card) {
    if (!card) {
      const ack = h('button', { type: 'button', class: 'primary', dataset: { action: 'patrol-ack' } }, tx('patrol_ack'));
      const note = h('input', { type: 'text', maxlength: '2000', class: 'visit-note' });
      bindAttr(note, 'aria-label', 'patrol_visit_note');
      bindAttr(note, 'placeholder', 'patrol_visit_note');
      const visited = h('button', { type: 'button', class: 'go', dataset: { action: 'patrol-visited' } }, tx('patrol_visited'));
      card = h('li', { class: 'card', dataset: { tone: 'warn' } },
        h('div', { class: 'row' }, h('h3', { class: 'name' }), h('span', { class: 'badge state' })),
        h('p', { class: 'home' }),
        h('p', { class: 'why' }),
        h('p', { class: 'when muted' }),
        h('div', { class: 'row' }, ack, note, visited));
      ack.addEventListener('click', () => act(ack,
        `/api/checks/${encodeURIComponent(card.dataset.key)}/patrol/ack`, {}, 'patrol_acked_done'));
      visited.addEventListener('click', () => act(visited,
        `/api/checks/${encodeURIComponent(card.dataset.key)}/patrol/visited`,
        note.value.trim() ? { note: note.value.trim() } : {}, 'patrol_visited_done'));
    }
    setText(card.querySelector('.name'), nameOf(c.recipient_id));
    setText(card.querySelector('.home'), homeOf(c.recipient_id));
    const badge = card.querySelector('.state');
    bind(badge, `state_${c.state}`);
    badge.dataset.tone = c.state === 'patrol' ? 'bad' : 'warn';
    card.dataset.tone = c.state === 'patrol' ? 'bad' : 'warn';
    bind(card.querySelector('.why'), 'patrol_why', { reason: reasonText(c.reason) });
    const left = c.deadline ? (Date.parse(c.deadline) - Date.now()) / 1000 : null;
    bind(card.querySelector('.when'), left === null ? 'patrol_no_deadline' : left >= 0 ? 'patrol_due' : 'patrol_overdue',
      { agreed: c.agreed, t: clock(Math.abs(left || 0)) });
    card.querySelector('[data-action="patrol-ack"]').hidden = c.state !== 'patrol';
    card.dataset.state = c.state;
    return card;
  }

  function render() {
    keyed(alarmList, alarms, (a) => `${a.check_id}/${a.version}`, renderAlarm);
    alarmEmpty.hidden = alarms.length > 0;
    keyed(taskList, tasks, (c) => c.check_id, renderTask);
    taskEmpty.hidden = tasks.length > 0;
  }

  async function load() {
    try {
      const [queue, list] = await Promise.all([get('/api/rounds/queue'), names.size ? null : get('/api/recipients')]);
      if (!alive) return;
      if (list) names = new Map(list.recipients.map((r) => [r.recipient_id, r]));
      alarms = queue.alarms || [];
      tasks = queue.checks.filter((c) => PATROL.has(c.state))
        .sort((a, b) => (a.state === b.state ? 0 : a.state === 'patrol' ? -1 : 1) || Date.parse(a.deadline) - Date.parse(b.deadline));
      if (tasks.some((c) => !names.has(c.recipient_id)) || alarms.some((a) => !names.has(a.recipient_id))) {
        const fresh = await get('/api/recipients');
        names = new Map(fresh.recipients.map((r) => [r.recipient_id, r]));
      }
      error.textContent = '';
      delete error.dataset.i18n;
      render();
    } catch (err) {
      if (alive && err.status !== 401) bind(error, 'error_load', { what: t('alarms_title') });
    }
  }

  let pending = null;
  const soon = () => {
    if (pending) return;
    pending = setTimeout(() => { pending = null; if (alive) load(); }, 250);
  };
  const offs = [
    ctx.live.on('check.changed', soon),
    ctx.live.on('check.alarm', (e) => { ctx.alert(t('announce_alarm', { state: t(`state_${e.state}`) })); soon(); }),
    ctx.live.on('resync', soon),
  ];
  load();
  const refresh = setInterval(() => alive && load(), 20000);
  const tick = setInterval(() => alive && render(), 1000);
  return () => {
    alive = false;
    clearInterval(refresh);
    clearInterval(tick);
    clearTimeout(pending);
    for (const off of offs) off();
  };
}
