// The technician's view of the homes: each installation address and the devices bound there,
// nothing of the care record (GET /api/installations; the role matrix gives a technician no
// brukare record). Binding requests are made from the devices' side by device id and brukare id.
import { h } from '../dom.js';
import { bind, t, tx } from '../i18n.js';
import { get } from '../api.js';

export function mount(container, ctx) {
  let alive = true;
  const error = h('p', { class: 'form-error', role: 'alert' });
  const root = h('section', { class: 'screen installations' });
  container.append(root);

  async function load() {
    try {
      const data = await get('/api/installations');
      if (!alive) return;
      const rows = data.installations.map((i) => h('tr', { dataset: { recipient: i.recipient_id } },
        h('th', { scope: 'row' }, i.home || '–'),
        h('td', { class: 'mono' }, i.recipient_id),
        h('td', {}, i.devices.length
          ? i.devices.map((d) => h('span', { class: 'mono device' }, `${d.device_id} (${t(`kind_${d.device_kind || 'unknown'}`)}) `))
          : '–')));
      root.replaceChildren(
        h('div', { class: 'screen-head' }, h('h1', {}, tx('title_installations'))),
        h('p', { class: 'hint' }, tx('installations_hint')),
        error,
        rows.length
          ? h('div', { class: 'table-wrap' }, h('table', { class: 'grid', id: 'installation-list' },
            h('caption', { class: 'sr-only' }, tx('title_installations')),
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, tx('col_home')), h('th', { scope: 'col' }, tx('col_id')),
              h('th', { scope: 'col' }, tx('col_devices')))),
            h('tbody', {}, rows)))
          : h('p', { class: 'empty' }, tx('installations_none')));
    } catch (err) {
      if (!alive || err.status === 401) return;
      root.replaceChildren(h('h1', {}, tx('title_installations')), error);
      bind(error, 'error_load', { what: t('title_installations') });
    }
  }

  const offs = [ctx.live.on('consent.changed', () => load())];
  load();
  return () => {
    alive = false;
    for (const off of offs) off();
  };
}
