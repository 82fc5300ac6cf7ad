// The audit log for those who may read it (auditors, administrators): the latest entries, with
// an action filter (e.g. recipient.viewed: who opened which record). Reading it is itself audited.
import { h } from '../dom.js';
import { bind, t, tx } from '../i18n.js';
import { get } from '../api.js';

export function mount(container) {
  let alive = true;
  const error = h('p', { class: 'form-error', role: 'alert' });
  const action = h('input', { id: 'audit-action', maxlength: '64', class: 'mono', placeholder: 'recipient.viewed' });
  const show = h('button', { type: 'submit', class: 'primary' }, tx('audit_show'));
  const form = h('form', { class: 'row', id: 'audit-form' }, h('label', { for: action.id }, tx('audit_action')), action, show);
  const list = h('div', { class: 'table-wrap' });
  container.append(h('section', { class: 'screen audit' },
    h('div', { class: 'screen-head' }, h('h1', {}, tx('title_audit'))), form, error, list));

  async function load() {
    error.textContent = '';
    try {
      const wanted = action.value.trim();
      const data = await get(`/api/audit?limit=1000${wanted ? `&action=${encodeURIComponent(wanted)}` : ''}`);
      if (!alive) return;
      const rows = data.entries.slice(-200).reverse().map((e) => h('tr', {},
        h('td', { class: 'mono' }, e.at), h('td', { class: 'mono' }, e.actor), h('td', { class: 'mono' }, e.action),
        h('td', { class: 'mono' }, e.subject || '–'), h('td', {}, e.data.why || '')));
      list.replaceChildren(rows.length
        ? h('table', { class: 'grid', id: 'audit-list' }, h('thead', {}, h('tr', {},
          ...['audit_at', 'audit_actor', 'audit_action', 'audit_subject', 'audit_why'].map((k) => h('th', { scope: 'col' }, tx(k))))),
        h('tbody', {}, rows))
        : h('p', { class: 'empty' }, tx('audit_none')));
    } catch (err) {
      if (!alive || err.status === 401) return;
      bind(error, 'error_load', { what: t('title_audit') });
    }
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); load(); });
  load();
  return () => { alive = false; };
}
