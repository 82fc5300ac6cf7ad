// Devices and their health: presence (live), last seen, battery, link, shutter, tamper, binding.
// Problems sort first; rows are updated in place so nothing jumps while the operator reads.
import { h, keyed, setText } from '../dom.js';
import { bind, t, tx } from '../i18n.js';
import { get } from '../api.js';

const REFRESH_MS = 15000;
const LOW_BATTERY_PCT = 20;
const WEAK_LINK = 0.5;

/** Camera trouble the motion check found tonight (a check's reason) -> problem code. */
const CAMERA_TROUBLE = { camera_dark: 'dark', camera_frozen: 'frozen', camera_covered: 'covered', camera_no_signal: 'no_signal' };

/** Problems of one device, most serious first: codes with translations `problem_<code>`.
 * `seen` is what tonight's checks found wrong with the picture (dark, frozen, covered). */
export function problems(device, seen = null) {
  const out = [];
  if (device.presence !== 'online') out.push(device.presence === 'stopped' ? 'stopped' : 'offline');
  const health = device.health || {};
  if (health.tamper) out.push('tamper');
  if (health.shutter === 'closed') out.push('shutter_closed');
  if (typeof health.battery_pct === 'number' && health.battery_pct < LOW_BATTERY_PCT) out.push('battery_low');
  if (typeof health.link === 'number' && health.link < WEAK_LINK) out.push('link_weak');
  if (seen) out.push(seen);
  if (device.quarantined) out.push('quarantined');
  return out;
}

const SEVERITY = {
  offline: 5, stopped: 4, tamper: 4, covered: 4, dark: 3, frozen: 3, no_signal: 3, shutter_closed: 3,
  battery_low: 2, link_weak: 2, quarantined: 1,
};

/** How urgent a device's problems are (0: none): devices sort by this, most urgent first. */
export function severity(device, seen = null) {
  return Math.max(0, ...problems(device, seen).map((c) => SEVERITY[c] || 1));
}

function ago(iso, now) {
  if (!iso) return t('never');
  const s = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (s < 60) return t('ago_s', { n: s });
  if (s < 3600) return t('ago_min', { n: Math.floor(s / 60) });
  if (s < 86400) return t('ago_h', { n: Math.floor(s / 3600) });
  return t('ago_d', { n: Math.floor(s / 86400) });
}

function cell(cls) {
  return h('td', { class: cls });
}

function renderRow(device, row, now, pictureTrouble) {
  if (!row) {
    row = h('tr', {},
      h('th', { scope: 'row', class: 'mono' }),
      cell('kind'), cell('presence'), cell('seen num'), cell('battery num'), cell('link num'),
      cell('problems'));
  }
  const [id, kind, presence, seen, battery, link, problemsCell] = row.children;
  setText(id, device.id);
  bind(kind, device.kind ? `kind_${device.kind}` : 'kind_unknown');
  const presenceBadge = presence.firstElementChild || presence.appendChild(h('span', { class: 'badge' }));
  presenceBadge.dataset.tone = device.presence === 'online' ? 'ok' : 'bad';
  bind(presenceBadge, `presence_${device.presence}`);
  setText(seen, ago(device.last_seen, now));
  seen.title = device.last_seen || '';
  const health = device.health || {};
  setText(battery, typeof health.battery_pct === 'number' ? `${Math.round(health.battery_pct)} %` : '–');
  setText(link, typeof health.link === 'number' ? `${Math.round(health.link * 100)} %` : '–');
  const codes = problems(device, pictureTrouble);
  const key = codes.join(',');
  if (problemsCell.dataset.codes !== key) {
    problemsCell.dataset.codes = key;
    problemsCell.replaceChildren(...(codes.length
      ? codes.map((c) => h('span', { class: 'chip', dataset: { tone: c === 'quarantined' ? 'info' : 'warn' } }, tx(`problem_${c}`)))
      : [h('span', { class: 'muted' }, tx('no_problems'))]));
  }
  row.dataset.presence = device.presence;
  row.dataset.problem = codes.length ? 'yes' : 'no';
  return row;
}

export function mount(container, ctx) {
  const devices = new Map();
  let trouble = new Map(); // device id -> what tonight's motion checks saw wrong with its picture
  const summary = h('p', { class: 'summary', role: 'status' });
  const onlyProblems = h('input', { type: 'checkbox', id: 'only-problems' });
  const body = h('tbody', { id: 'device-rows' });
  const empty = h('p', { class: 'empty', hidden: true }, tx('devices_none'));
  const error = h('p', { class: 'form-error', role: 'alert' });
  const table = h('table', { class: 'grid devices-table', 'aria-describedby': 'devices-summary' },
    h('caption', { class: 'sr-only' }, tx('devices_caption')),
    h('colgroup', {},
      h('col', { class: 'w-id' }), h('col', { class: 'w-kind' }), h('col', { class: 'w-presence' }),
      h('col', { class: 'w-seen' }), h('col', { class: 'w-num' }), h('col', { class: 'w-num' }), h('col')),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, tx('col_device')),
      h('th', { scope: 'col' }, tx('col_kind')),
      h('th', { scope: 'col' }, tx('col_presence')),
      h('th', { scope: 'col' }, tx('col_last_seen')),
      h('th', { scope: 'col', class: 'num' }, tx('col_battery')),
      h('th', { scope: 'col', class: 'num' }, tx('col_link')),
      h('th', { scope: 'col' }, tx('col_problems')))),
    body);
  summary.id = 'devices-summary';

  container.append(h('section', { class: 'screen devices' },
    h('div', { class: 'screen-head' },
      h('h1', {}, tx('devices_title')),
      h('label', { class: 'toggle' }, onlyProblems, tx('devices_only_problems'))),
    summary, error,
    h('div', { class: 'table-wrap' }, table), empty));

  function render() {
    const now = Date.now();
    const all = [...devices.values()];
    const shown = all
      .filter((d) => !onlyProblems.checked || problems(d, trouble.get(d.id)).length)
      .sort((a, b) => severity(b, trouble.get(b.id)) - severity(a, trouble.get(a.id)) || a.id.localeCompare(b.id));
    keyed(body, shown, (d) => d.id, (d, row) => renderRow(d, row, now, trouble.get(d.id)));
    empty.hidden = shown.length > 0;
    const online = all.filter((d) => d.presence === 'online').length;
    bind(summary, 'devices_summary', {
      total: all.length, online, offline: all.length - online,
      quarantined: all.filter((d) => d.quarantined).length,
    });
  }

  let timer = null;
  let alive = true;
  async function loadTrouble() {
    if (!ctx.may('read_rounds')) return; // the round is the desk's (the role matrix)
    try {
      const queue = await get('/api/rounds/queue');
      const found = new Map();
      for (const c of queue.checks) {
        const code = CAMERA_TROUBLE[c.reason];
        if (code && c.device_id) found.set(c.device_id, code);
      }
      trouble = found;
    } catch {
      // without the round the screen still shows presence and health
    }
  }

  async function load() {
    try {
      const [data] = await Promise.all([get('/api/devices?limit=5000'), loadTrouble()]);
      if (!alive) return;
      devices.clear();
      for (const d of data.devices) devices.set(d.id, d);
      error.textContent = '';
      render();
    } catch (err) {
      if (alive && err.status !== 401) bind(error, 'error_load', { what: t('devices_title') });
    }
  }
  let pending = null;
  function reloadSoon() {
    if (pending) return;
    pending = setTimeout(() => { pending = null; load(); }, 800);
  }

  onlyProblems.addEventListener('change', render);
  const offPresence = ctx.live.on('device.presence', (e) => {
    const d = devices.get(e.device_id);
    if (d) {
      d.presence = e.presence;
      d.presence_since = e.at;
      if (e.presence === 'online') d.last_seen = e.at;
      render();
    }
    if (e.previous !== e.presence && e.presence !== 'online') {
      ctx.announce(t('announce_device_presence', { id: e.device_id, presence: t(`presence_${e.presence}`) }));
    }
    reloadSoon();
  });
  const offResync = ctx.live.on('resync', load);
  const offChecks = ctx.live.on('check.changed', (e) => { if (e.reason && CAMERA_TROUBLE[e.reason]) reloadSoon(); });
  load();
  timer = setInterval(load, REFRESH_MS);
  const tick = setInterval(() => { if (devices.size) render(); }, 5000);
  return () => {
    alive = false;
    clearInterval(timer);
    clearInterval(tick);
    clearTimeout(pending);
    offPresence();
    offResync();
    offChecks();
  };
}
