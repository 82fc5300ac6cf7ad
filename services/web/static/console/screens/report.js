// The morning report: planned vs done per brukare and per operator, escalations, deviations and
// device problems of one night; a printable version opens from the server (?format=html).
import { h, hhmm } from '../dom.js';
import { bind, has, t, tx } from '../i18n.js';
import { get, post } from '../api.js';

const TOTALS = ['planned', 'performed', 'cleared', 'escalated', 'deviations', 'open', 'views', 'patrol_tasks', 'device_problems', 'alarms_open'];

/** The evening date of the night in progress (or the one that just ended, before noon). */
export function defaultNight(now = new Date()) {
  const d = new Date(now);
  if (d.getHours() < 12) d.setDate(d.getDate() - 1);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

function reasonText(code) {
  if (!code) return '–';
  return has(`check_reason_${code}`) ? t(`check_reason_${code}`) : code;
}

export function mount(container, ctx) {
  let alive = true;
  const night = h('input', { type: 'date', id: 'report-night', value: ctx.params[0] || defaultNight() });
  const show = h('button', { type: 'button', class: 'primary', id: 'report-show' }, tx('report_show'));
  const print = h('a', { id: 'report-print', target: '_blank', rel: 'noopener' }, tx('report_print'));
  const reconcile = h('button', { type: 'button', class: 'danger', id: 'report-reconcile', hidden: !ctx.isAdmin }, tx('report_reconcile'));
  const status = h('p', { class: 'summary', role: 'status' });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const body = h('div', { id: 'report-body' });
  container.append(h('section', { class: 'screen report' },
    h('div', { class: 'screen-head' },
      h('h1', {}, tx('report_title')),
      h('label', { for: 'report-night' }, tx('report_night')), night, show,
      h('span', { class: 'spacer' }), print, reconcile),
    status, error, body));

  let names = new Map();

  function table(caption, headers, rows) {
    return h('div', { class: 'table-wrap' }, h('table', { class: 'grid' },
      h('caption', { class: 'sr-only' }, caption),
      h('thead', {}, h('tr', {}, headers.map((x, i) => h('th', { scope: 'col', class: i ? 'num' : '' }, x)))),
      h('tbody', {}, rows)));
  }

  function render(report) {
    const totals = report.totals;
    const stats = h('div', { class: 'cards totals' }, TOTALS.map((k) => h('div', { class: 'card stat-card', dataset: { total: k } },
      h('div', { class: 'stat' }, String(totals[k] ?? 0)), h('div', { class: 'muted' }, tx(`total_${k}`)))));
    const recipientRows = report.recipients.map((r) => h('tr', { dataset: { recipient: r.recipient_id } },
      h('th', { scope: 'row' }, names.get(r.recipient_id)?.display_name || r.recipient_id),
      ...['planned', 'performed', 'cleared', 'escalated', 'deviations', 'open'].map((k) => h('td', { class: 'num' }, String(r[k]))),
      h('td', { class: 'num' }, String(r.views.length))));
    const operatorRows = report.operators.map((o) => h('tr', {},
      h('th', { scope: 'row', class: 'mono' }, o.staff_id),
      h('td', { class: 'num' }, String(o.views)),
      h('td', { class: 'num' }, String(o.view_seconds)),
      h('td', {}, Object.entries(o.outcomes).map(([k, v]) => `${t(`outcome_${k}`)}: ${v}`).join(', ') || '–'),
      h('td', { class: 'num' }, String(o.patrol_visited))));
    const events = [];
    for (const r of report.recipients) {
      const who = names.get(r.recipient_id)?.display_name || r.recipient_id;
      for (const e of r.escalations) events.push({ who, kind: 'escalation', reason: e.reason, at: e.at });
      for (const e of r.deviation_list) events.push({ who, kind: 'deviation', reason: e.reason, at: null });
      for (const e of r.device_problems) events.push({ who, kind: 'device_problem', reason: e.reason, at: e.at });
    }
    body.replaceChildren(
      stats,
      h('h2', {}, tx('report_per_recipient')),
      report.recipients.length
        ? table(t('report_per_recipient'), [tx('col_recipient'), tx('total_planned'), tx('total_performed'), tx('total_cleared'), tx('total_escalated'), tx('total_deviations'), tx('total_open'), tx('total_views')], recipientRows)
        : h('p', { class: 'empty' }, tx('report_empty')),
      h('h2', {}, tx('report_per_operator')),
      report.operators.length
        ? table(t('report_per_operator'), [tx('col_operator'), tx('total_views'), tx('col_view_seconds'), tx('col_outcomes'), tx('col_visits')], operatorRows)
        : h('p', { class: 'empty' }, tx('report_no_operators')),
      h('h2', {}, tx('report_events')),
      events.length
        ? h('ul', { class: 'events' }, events.map((e) => h('li', {},
          h('strong', {}, e.who), ' · ', tx(`report_event_${e.kind}`), ': ', reasonText(e.reason), e.at ? ` (${hhmm(e.at)})` : '')))
        : h('p', { class: 'empty' }, tx('report_no_events')));
    bind(status, report.reconciled_at ? 'report_closed' : 'report_open_night', {
      at: hhmm(report.reconciled_at || report.generated_at),
    });
  }

  async function load() {
    const value = night.value;
    if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) {
      bind(error, 'report_bad_date');
      return;
    }
    print.href = `/api/nights/${value}/report?format=html`;
    try {
      const [report, list] = await Promise.all([get(`/api/nights/${value}/report`), names.size ? null : get('/api/recipients')]);
      if (!alive) return;
      if (list) names = new Map(list.recipients.map((r) => [r.recipient_id, r]));
      error.textContent = '';
      delete error.dataset.i18n;
      render(report);
    } catch (err) {
      if (alive && err.status !== 401) bind(error, 'error_load', { what: t('report_title') });
    }
  }

  show.addEventListener('click', load);
  night.addEventListener('keydown', (e) => { if (e.key === 'Enter') load(); });
  reconcile.addEventListener('click', async () => {
    if (!window.confirm(t('report_reconcile_confirm'))) return;
    try {
      await post(`/api/nights/${night.value}/reconcile?force=1`);
      load();
    } catch (err) {
      bind(error, err.code && has(`error_${err.code}`) ? `error_${err.code}` : 'error_generic');
    }
  });
  const offs = [ctx.live.on('check.changed', () => { clearTimeout(pending); pending = setTimeout(load, 1000); })];
  let pending = null;
  load();
  return () => {
    alive = false;
    clearTimeout(pending);
    for (const off of offs) off();
  };
}
