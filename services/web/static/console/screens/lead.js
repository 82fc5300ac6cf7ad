// The shift lead's screen (Arbetsledning): every open alarm and escalation of the night, each
// open check and patrol task with whom it is given to and a control to give it to another
// operator or patrol car, and the night's handover for the day staff. Live over the console's
// WebSocket (check.changed, check.alarm), with a light poll besides.
import { h, keyed, setText, hhmm } from '../dom.js';
import { bind, bindAttr, has, t, tx, lang } from '../i18n.js';
import { get, post } from '../api.js';

/** Checks that wait for a person (an operator's look or call, the patrol's visit). */
const HUMAN = new Set(['needs_view', 'viewing', 'calling', 'patrol', 'patrol_acked']);
const PATROL = new Set(['patrol', 'patrol_acked']);
const OPERATOR_ROLES = new Set(['operator', 'shift_lead', 'administrator']);
const HANDOVER_COUNTS = [
  'checks', 'open_patrol_tasks', 'patrol_reports', 'taken_to_hospital', 'open_checks',
  'deviations', 'alarms_not_acknowledged', 'suspensions', 'pauses',
];
const POLL_MS = 15000;

function reasonText(code) {
  if (!code) return '';
  return has(`check_reason_${code}`) ? t(`check_reason_${code}`) : code;
}

function errorKey(err) {
  return err.code && has(`error_${err.code}`) ? `error_${err.code}` : 'error_generic';
}

export function mount(container, ctx) {
  let alive = true;
  let night = null;
  let alarms = [];
  let checks = [];
  let staff = [];
  let homes = new Map(); // recipient_id -> {display_name, home} from the patrol tasks
  const error = h('p', { class: 'form-error', role: 'alert', id: 'lead-error' });
  const alarmList = h('ul', { class: 'cards', id: 'lead-alarms', 'aria-labelledby': 'lead-alarms-h' });
  const alarmEmpty = h('p', { class: 'empty', hidden: true }, tx('lead_alarms_none'));
  const checkList = h('ul', { class: 'cards', id: 'lead-checks', 'aria-labelledby': 'lead-checks-h' });
  const checkEmpty = h('p', { class: 'empty', hidden: true }, tx('lead_checks_none'));
  const handoverButton = h('button', { type: 'button', class: 'primary', id: 'handover-show' }, tx('lead_handover_show'));
  const handoverPrint = h('a', { id: 'handover-print', target: '_blank', rel: 'noopener', hidden: true }, tx('lead_handover_print'));
  const handoverBody = h('div', { id: 'handover', hidden: true });
  container.append(h('section', { class: 'screen lead' },
    h('div', { class: 'screen-head' }, h('h1', {}, tx('lead_title')), h('span', { class: 'spacer' }),
      h('span', { class: 'muted', id: 'lead-night' })),
    error,
    h('h2', { id: 'lead-alarms-h' }, tx('lead_alarms')),
    alarmList, alarmEmpty,
    h('h2', { id: 'lead-checks-h' }, tx('lead_checks')),
    checkList, checkEmpty,
    h('h2', { id: 'lead-handover-h' }, tx('lead_handover')),
    h('div', { class: 'row handover-actions' }, handoverButton, handoverPrint),
    handoverBody));

  const nameOf = (rid) => homes.get(rid)?.display_name || rid;
  const staffName = (id) => staff.find((s) => s.staff_id === id)?.display_name || id;

  function showError(key, params) {
    bind(error, key, params);
  }

  function clearError() {
    error.textContent = '';
    delete error.dataset.i18n;
  }

  // ------------------------------------------------------------------ alarms

  function alarmText(a) {
    const to = has(`attention_to_${a.addressed_to}`) ? t(`attention_to_${a.addressed_to}`) : '';
    const key = a.kind === 'escalation' ? 'lead_escalation' : a.repeat > 1 ? 'lead_alarm_repeat' : 'lead_alarm';
    return { key, params: { state: t(`state_${a.state}`), n: a.repeat, to } };
  }

  function renderAlarm(a, card) {
    if (!card) {
      const ack = h('button', { type: 'button', class: 'primary', dataset: { action: 'ack-alarm' } }, tx('alarm_ack'));
      card = h('li', { class: 'card' },
        h('div', { class: 'row' }, h('h3', { class: 'name' }), h('span', { class: 'badge kind' })),
        h('p', { class: 'what' }),
        h('p', { class: 'when muted' }),
        h('div', { class: 'row' }, ack));
      ack.addEventListener('click', async () => {
        ack.disabled = true;
        try {
          await post(`/api/alarms/${encodeURIComponent(card.dataset.check)}/${card.dataset.version}/ack`, {});
          ctx.announce(t('alarm_acked'));
          clearError();
          await load();
        } catch (err) {
          ack.disabled = false;
          if (err.status !== 401) showError(errorKey(err));
        }
      });
    }
    card.dataset.check = a.check_id;
    card.dataset.version = String(a.version);
    card.dataset.kind = a.kind || 'alarm';
    card.dataset.tone = a.kind === 'escalation' ? 'bad' : 'warn';
    setText(card.querySelector('.name'), nameOf(a.recipient_id));
    const badge = card.querySelector('.kind');
    bind(badge, a.kind === 'escalation' ? 'lead_kind_escalation' : 'lead_kind_alarm');
    badge.dataset.tone = a.kind === 'escalation' ? 'bad' : 'warn';
    const { key, params } = alarmText(a);
    bind(card.querySelector('.what'), key, params);
    bind(card.querySelector('.when'), 'lead_alarm_when', { raised: hhmm(a.raised_at), deadline: hhmm(a.deadline) });
    return card;
  }

  // ------------------------------------------------------------------ checks and their assignees

  function fits(c, person) {
    return PATROL.has(c.state) ? person.role === 'patrol' : OPERATOR_ROLES.has(person.role);
  }

  function fillPicker(select, c) {
    const want = [['', t('lead_nobody')]];
    for (const s of staff.filter((p) => fits(c, p))) {
      const duty = s.on_duty ? ` · ${t('lead_on_duty')}` : '';
      want.push([s.staff_id, `${s.display_name} (${t(`role_${s.role}`)})${duty}`]);
    }
    const signature = JSON.stringify([want, lang()]);
    if (select.dataset.signature === signature) return;
    const chosen = select.value;
    select.replaceChildren(...want.map(([value, label]) => h('option', { value }, label)));
    select.dataset.signature = signature;
    if (want.some(([value]) => value === chosen) && select.dataset.touched) select.value = chosen;
    else select.value = c.assignee || '';
  }

  async function give(card, select, button) {
    const checkId = card.dataset.key;
    const assignee = select.value || null;
    const refusal = card.querySelector('.refusal');
    refusal.textContent = '';
    delete refusal.dataset.i18n;
    button.disabled = true;
    try {
      await post(`/api/checks/${encodeURIComponent(checkId)}/assign`, { assignee });
      clearError();
      delete select.dataset.touched;
      ctx.announce(assignee ? t('lead_given', { who: staffName(assignee) }) : t('lead_taken_back'));
      await load();
    } catch (err) {
      if (err.status === 401) return;
      const message = err.status === 409 ? 'lead_refused_conflict' : err.status === 422 ? 'lead_refused_assignee' : errorKey(err);
      // Said where it was asked, and to a screen reader at once; nothing changed on the server.
      const refusal = card.querySelector('.refusal');
      bind(refusal, message, { why: has(`error_${err.code}`) ? t(`error_${err.code}`) : err.message });
      ctx.alert(refusal.textContent);
    } finally {
      button.disabled = false;
    }
  }

  function renderCheck(c, card) {
    if (!card) {
      const select = h('select', { class: 'assignee-picker' });
      bindAttr(select, 'aria-label', 'lead_give_to');
      const button = h('button', { type: 'button', class: 'primary', dataset: { action: 'assign' } }, tx('lead_give'));
      card = h('li', { class: 'card' },
        h('div', { class: 'row' }, h('h3', { class: 'name' }), h('span', { class: 'badge state' })),
        h('p', { class: 'why' }),
        h('p', { class: 'assignee' }),
        h('div', { class: 'row' }, select, button),
        h('p', { class: 'refusal form-error' }));
      select.addEventListener('change', () => { select.dataset.touched = '1'; });
      button.addEventListener('click', () => give(card, select, button));
    }
    const now = `${c.state}|${c.assignee || ''}`;
    if (card.dataset.was !== now) { // a refusal speaks of what was; the check has moved on
      const refusal = card.querySelector('.refusal');
      refusal.textContent = '';
      delete refusal.dataset.i18n;
      card.dataset.was = now;
    }
    card.dataset.state = c.state;
    card.dataset.assignee = c.assignee || '';
    card.dataset.tone = c.state === 'patrol' || c.state === 'needs_view' ? 'bad' : 'warn';
    setText(card.querySelector('.name'), nameOf(c.recipient_id));
    const badge = card.querySelector('.state');
    bind(badge, `state_${c.state}`);
    badge.dataset.tone = card.dataset.tone;
    bind(card.querySelector('.why'), c.reason ? 'lead_check_why' : 'lead_check_agreed',
      { agreed: c.agreed, reason: reasonText(c.reason) });
    bind(card.querySelector('.assignee'), c.assignee ? 'lead_assignee' : 'lead_unassigned',
      { who: c.assignee ? staffName(c.assignee) : '' });
    fillPicker(card.querySelector('select'), c);
    return card;
  }

  function render() {
    if (night) bind(document.getElementById('lead-night'), 'lead_night', { night });
    keyed(alarmList, alarms, (a) => `${a.check_id}/${a.version}/${a.kind}/${a.repeat}`, renderAlarm);
    alarmEmpty.hidden = alarms.length > 0;
    keyed(checkList, checks, (c) => c.check_id, renderCheck);
    checkEmpty.hidden = checks.length > 0;
  }

  async function load() {
    try {
      const [queue, tasks, escalations, people] = await Promise.all([
        get('/api/rounds/queue'), get('/api/patrol/tasks'), get('/api/rounds/escalations?open=1'),
        get('/api/rounds/staff'),
      ]);
      if (!alive) return;
      night = queue.night;
      staff = people.staff;
      homes = new Map(tasks.tasks.map((task) => [task.recipient_id, task]));
      // Every open alarm of the night (the queue's) and the escalations told to the shift lead.
      const seen = new Map();
      for (const a of [...(queue.alarms || []), ...escalations.escalations]) {
        seen.set(`${a.check_id}/${a.version}/${a.kind}/${a.repeat}`, { addressed_to: 'shift_lead', ...a });
      }
      alarms = [...seen.values()].sort((a, b) => (a.kind === 'escalation' ? 0 : 1) - (b.kind === 'escalation' ? 0 : 1)
        || Date.parse(a.raised_at) - Date.parse(b.raised_at));
      checks = queue.checks.filter((c) => HUMAN.has(c.state));
      clearError();
      render();
    } catch (err) {
      if (alive && err.status !== 401) showError('error_load', { what: t('lead_title') });
    }
  }

  async function showHandover() {
    if (!night) return;
    handoverButton.disabled = true;
    try {
      const summary = await get(`/api/rounds/${encodeURIComponent(night)}/handover`);
      if (!alive) return;
      handoverBody.replaceChildren(
        h('ul', { class: 'cards totals', id: 'handover-counts' }, HANDOVER_COUNTS.map((k) => h('li', { class: 'card', dataset: { count: k } },
          h('div', { class: 'stat' }, String(summary.counts[k] ?? 0)), h('div', { class: 'muted' }, tx(`handover_${k}`))))),
        h('p', { class: 'muted' }, tx('lead_handover_made', { at: hhmm(summary.generated_at) })));
      handoverBody.hidden = false;
      handoverPrint.href = `/api/rounds/${encodeURIComponent(night)}/handover?format=html&lang=${lang()}`;
      handoverPrint.onclick = () => { // in the language chosen since
        handoverPrint.href = handoverPrint.href.replace(/lang=\w+$/, `lang=${lang()}`);
      };
      handoverPrint.hidden = false;
    } catch (err) {
      if (err.status !== 401) showError('error_load', { what: t('lead_handover') });
    } finally {
      handoverButton.disabled = false;
    }
  }
  handoverButton.addEventListener('click', showHandover);

  let pending = null;
  const soon = () => {
    if (pending) return;
    pending = setTimeout(() => { pending = null; if (alive) load(); }, 250);
  };
  const offs = [
    ctx.live.on('check.changed', soon),
    ctx.live.on('check.alarm', soon),
    ctx.live.on('resync', soon),
  ];
  const relabel = () => alive && render();
  window.addEventListener('langchange', relabel);
  load();
  const refresh = setInterval(() => alive && load(), POLL_MS);
  return () => {
    alive = false;
    clearInterval(refresh);
    clearTimeout(pending);
    window.removeEventListener('langchange', relabel);
    for (const off of offs) off();
  };
}
