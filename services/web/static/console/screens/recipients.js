// A brukare's consents, care plan, pauses, cohabitants and devices. Read-only for night operators;
// administrators can register and change them, with the two-step device binding (request, then a
// confirmation by a second person who types the brukare's details and the video phone's code, or
// sees the camera's button pressed). The server checks every role and proof; this only hides forms.
import { h, hhmm } from '../dom.js';
import { bind, bindAttr, has, lang, t, tx } from '../i18n.js';
import { get, post } from '../api.js';

const PURPOSES = ['camera_check', 'motion_analysis', 'video_call', 'auto_answer'];
const PAUSE_SOURCES = ['recipient', 'relative', 'staff', 'hospital', 'other'];
const PAUSE_REASONS = ['hospital_stay', 'travel', 'visitors', 'recipient_request', 'other'];

function date(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '–' : d.toLocaleString('sv-SE', { dateStyle: 'short', timeStyle: 'short' });
}

function isActive(item, now, from = 'valid_from', until = 'valid_until') {
  return Date.parse(item[from]) <= now && (!item[until] || Date.parse(item[until]) > now);
}

function errorKey(err) {
  return err.code && has(`error_${err.code}`) ? `error_${err.code}` : 'error_save';
}

/** A labelled form field; `input` gets the id. */
function field(id, labelKey, input) {
  input.id = id;
  return [h('label', { for: id }, tx(labelKey)), input];
}

function select(values, prefix) {
  return h('select', {}, values.map((v) => bind(h('option', { value: v }), `${prefix}${v}`)));
}

export function mount(container, ctx) {
  let alive = true;
  const admin = ctx.isAdmin;
  const id = ctx.params[0] || null;
  const error = h('p', { class: 'form-error', role: 'alert' });
  const root = h('section', { class: 'screen recipients' });
  container.append(root);

  /** What is typed, chosen or ticked in the screen's fields (by id) and which has the focus. */
  function typed() {
    const values = new Map();
    for (const el of root.querySelectorAll('input[id], textarea[id], select[id]')) {
      values.set(el.id, el.type === 'checkbox' ? el.checked : el.value);
    }
    const active = document.activeElement;
    return { values, focused: active && root.contains(active) ? active.id : '' };
  }

  /** Put what `typed()` saw back into the fields of a new render: a live change re-renders the
   * screen while someone may be filling in a form, and must not wipe it. */
  function retype({ values, focused }) {
    for (const [fieldId, value] of values) {
      const el = document.getElementById(fieldId);
      if (!el || !root.contains(el)) continue;
      if (el.type === 'checkbox') {
        if (el.checked !== value) {
          el.checked = value;
          el.dispatchEvent(new Event('change'));
        }
      } else if (value && el.value !== value) {
        el.value = value;
      }
    }
    if (focused) document.getElementById(focused)?.focus();
  }

  /** Replace the screen's content; `keep` keeps what the user had typed (a live re-render). */
  function render(keep, ...parts) {
    const before = keep ? typed() : null;
    root.replaceChildren(...parts);
    if (before) retype(before);
  }

  async function run(button, work, doneKey) {
    button.disabled = true;
    error.textContent = '';
    delete error.dataset.i18n;
    try {
      await work();
      ctx.announce(t(doneKey));
      // The form just saved starts empty; whatever else is typed on the screen stays, since a
      // live change may have re-rendered it meanwhile and this render may come after that one.
      button.closest('form')?.reset();
      await load(true);
    } catch (err) {
      bind(error, errorKey(err), { message: err.message || '', field: err.field || '' });
      error.dataset.field = err.field || '';
    } finally {
      button.disabled = false;
    }
  }

  // ------------------------------------------------------------------ list

  async function showList(keep) {
    const data = await get('/api/recipients');
    if (!alive) return;
    const rows = data.recipients.map((r) => h('tr', {},
      h('th', { scope: 'row' }, h('a', { href: `#/recipients/${encodeURIComponent(r.recipient_id)}` }, r.display_name)),
      h('td', {}, r.home || '–'),
      h('td', { class: 'mono' }, r.recipient_id)));
    const parts = [
      h('div', { class: 'screen-head' }, h('h1', {}, tx('recipients_title'))),
      error,
      rows.length
        ? h('div', { class: 'table-wrap' }, h('table', { class: 'grid', id: 'recipient-list' },
          h('caption', { class: 'sr-only' }, tx('recipients_title')),
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, tx('col_name')), h('th', { scope: 'col' }, tx('col_home')), h('th', { scope: 'col' }, tx('col_id')))),
          h('tbody', {}, rows)))
        : h('p', { class: 'empty' }, tx('recipients_none')),
    ];
    if (admin) {
      const name = h('input', { required: true, maxlength: '200' });
      const home = h('input', { maxlength: '500' });
      const save = h('button', { type: 'submit', class: 'primary' }, tx('recipient_add'));
      const form = h('form', { class: 'form-grid', id: 'recipient-form' },
        ...field('new-name', 'col_name', name), ...field('new-home', 'col_home', home), h('span'), save);
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        run(save, async () => {
          const r = await post('/api/recipients', { display_name: name.value.trim(), home: home.value.trim() });
          location.hash = `#/recipients/${encodeURIComponent(r.recipient_id)}`;
        }, 'saved');
      });
      parts.push(h('fieldset', {}, h('legend', {}, tx('recipient_add')), form));
    }
    render(keep, ...parts);
  }

  // ------------------------------------------------------------------ one brukare

  function gateBadges(gate) {
    return h('ul', { class: 'gate', id: 'gate-status' }, PURPOSES.map((p) => {
      const d = gate[p] || { allowed: false, reason: null };
      const reason = d.reason && has(`reason_${d.reason}`) ? t(`reason_${d.reason}`) : d.reason || '';
      return h('li', { dataset: { purpose: p } },
        h('span', { class: 'badge', dataset: { tone: d.allowed ? 'ok' : 'bad' } }, tx(`purpose_${p}`)), ' ',
        d.allowed ? tx('gate_allowed') : h('span', { class: 'muted' }, reason));
    }));
  }

  function personName(basis, person) {
    if (person === 'recipient') return basis.recipient.display_name;
    return basis.cohabitants.find((c) => c.cohabitant_id === person)?.display_name || person;
  }

  function consentsSection(basis, now) {
    const rows = basis.consents.map((c) => {
      const active = !c.withdrawn_at && isActive(c, now);
      const cells = [
        h('td', {}, personName(basis, c.person)),
        h('td', {}, tx(`purpose_${c.purpose}`)),
        h('td', { class: 'num' }, String(c.version)),
        h('td', {}, c.basis ? tx(`basis_${c.basis}`) : tx('basis_none')),
        h('td', {}, `${date(c.valid_from)} – ${c.valid_until ? date(c.valid_until) : ''}`),
        h('td', {}, c.windows.map((w) => `${w.start}–${w.end}`).join(', ') || tx('windows_all')),
        h('td', {}, c.withdrawn_at
          ? h('span', { class: 'badge', dataset: { tone: 'bad' } }, tx('consent_withdrawn'))
          : h('span', { class: 'badge', dataset: { tone: active ? 'ok' : 'warn' } }, tx(active ? 'consent_active' : 'consent_inactive'))),
      ];
      if (admin) {
        const withdraw = h('button', { type: 'button', class: 'danger', hidden: Boolean(c.withdrawn_at), dataset: { action: 'withdraw' } }, tx('consent_withdraw'));
        withdraw.addEventListener('click', () => {
          if (!window.confirm(t('consent_withdraw_confirm'))) return;
          run(withdraw, () => post(`/api/consents/${encodeURIComponent(c.consent_id)}/withdraw`, {}), 'consent_withdrawn_done');
        });
        cells.push(h('td', {}, withdraw));
      }
      return h('tr', { dataset: { consent: c.consent_id } }, cells);
    });
    const headers = ['col_person', 'col_purpose', 'col_version', 'col_basis', 'col_valid', 'col_windows', 'col_status'];
    if (admin) headers.push('col_actions');
    const parts = [h('h2', { id: 'consents-h' }, tx('consents_title')),
      rows.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'grid', id: 'consent-table', 'aria-labelledby': 'consents-h' },
        h('thead', {}, h('tr', {}, headers.map((k) => h('th', { scope: 'col' }, tx(k))))), h('tbody', {}, rows)))
        : h('p', { class: 'empty' }, tx('consents_none'))];
    if (admin) {
      const person = h('select', {},
        bind(h('option', { value: 'recipient' }), 'person_recipient'),
        ...basis.cohabitants.filter((c) => !c.moved_out_at).map((c) => h('option', { value: c.cohabitant_id }, c.display_name)));
      const purpose = select(PURPOSES, 'purpose_');
      const basisSel = select(['informed_consent', 'other_legal_basis'], 'basis_');
      const informed = h('input', { maxlength: '200' });
      const windows = h('input', { placeholder: '21:00-07:00', maxlength: '200' });
      const save = h('button', { type: 'submit', class: 'primary' }, tx('consent_record'));
      const form = h('form', { class: 'form-grid', id: 'consent-form' },
        ...field('c-person', 'col_person', person), ...field('c-purpose', 'col_purpose', purpose),
        ...field('c-basis', 'col_basis', basisSel), ...field('c-informed', 'consent_informed_by', informed),
        ...field('c-windows', 'col_windows', windows), h('span'), save);
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        const body = { person: person.value, purpose: purpose.value, basis: basisSel.value };
        if (informed.value.trim()) body.informed_by = informed.value.trim();
        const ws = windows.value.split(',').map((x) => x.trim()).filter(Boolean);
        if (ws.length) body.windows = ws.map((w) => { const [start, end] = w.split('-').map((x) => x.trim()); return { start, end }; });
        run(save, () => post(`/api/recipients/${encodeURIComponent(basis.recipient.recipient_id)}/consents`, body), 'consent_recorded');
      });
      parts.push(h('fieldset', {}, h('legend', {}, tx('consent_record')), form));
    }
    return parts;
  }

  function plansSection(basis, now) {
    const cards = basis.care_plans.map((p) => {
      const active = !p.ended_at && isActive(p, now);
      const end = admin && !p.ended_at ? h('button', { type: 'button', class: 'danger', dataset: { action: 'end-plan' } }, tx('plan_end')) : null;
      if (end) end.addEventListener('click', () => run(end, () => post(`/api/care-plans/${encodeURIComponent(p.plan_id)}/end`, {}), 'plan_ended'));
      return h('div', { class: 'card', dataset: { plan: p.plan_id, tone: active ? '' : 'warn' } },
        h('div', { class: 'row' }, h('h3', {}, p.decision_ref),
          h('span', { class: 'badge', dataset: { tone: active ? 'ok' : 'warn' } }, tx(active ? 'plan_active' : 'plan_inactive')), end),
        h('dl', { class: 'facts' },
          h('dt', {}, tx('plan_checks')), h('dd', {}, p.checks.map((c) => `${c.at} (±${c.tolerance_min} min)`).join(', ') || '–'),
          h('dt', {}, tx('plan_view_cap')), h('dd', {}, t('seconds', { n: p.view_cap_s })),
          h('dt', {}, tx('plan_retry')), h('dd', {}, t('minutes', { n: Math.round(p.retry_interval_s / 60) })),
          h('dt', {}, tx('plan_ladder')), h('dd', {}, p.escalation.map((s) => t(`ladder_${s}`)).join(' → ')),
          h('dt', {}, tx('plan_motion')), h('dd', {}, tx(p.motion_may_clear ? 'yes' : 'no')),
          h('dt', {}, tx('plan_instruction')), h('dd', { class: 'instruction-text' }, p.instruction || '–'),
          h('dt', {}, tx('col_valid')), h('dd', {}, `${date(p.valid_from)} – ${p.valid_until ? date(p.valid_until) : ''}`)));
    });
    const parts = [h('h2', {}, tx('plans_title')), cards.length ? h('div', { class: 'cards' }, cards) : h('p', { class: 'empty' }, tx('plans_none'))];
    if (admin) {
      const ref = h('input', { required: true, maxlength: '128' });
      const times = h('input', { placeholder: '22:00, 02:00, 05:00' });
      const cap = h('input', { type: 'number', min: '5', max: '600', value: '30' });
      const motion = h('input', { type: 'checkbox' });
      const instruction = h('textarea', { maxlength: '2000', rows: '2' });
      const save = h('button', { type: 'submit', class: 'primary' }, tx('plan_add'));
      const form = h('form', { class: 'form-grid', id: 'plan-form' },
        ...field('p-ref', 'plan_decision_ref', ref), ...field('p-times', 'plan_checks', times),
        ...field('p-cap', 'plan_view_cap', cap), ...field('p-motion', 'plan_motion', motion),
        ...field('p-instruction', 'plan_instruction', instruction), h('span'), save);
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        const checks = times.value.split(',').map((x) => x.trim()).filter(Boolean).map((at) => ({ at }));
        run(save, () => post(`/api/recipients/${encodeURIComponent(basis.recipient.recipient_id)}/care-plans`, {
          decision_ref: ref.value.trim(), checks, view_cap_s: Number(cap.value), motion_may_clear: motion.checked,
          instruction: instruction.value.trim(),
        }), 'plan_added');
      });
      parts.push(h('fieldset', {}, h('legend', {}, tx('plan_add')), form));
    }
    return parts;
  }

  function pausesSection(basis, now) {
    const items = basis.pauses.map((p) => {
      const active = isActive(p, now, 'starts_at', 'ends_at');
      const end = admin && active ? h('button', { type: 'button', dataset: { action: 'end-pause' } }, tx('pause_end')) : null;
      if (end) end.addEventListener('click', () => run(end, () => post(`/api/pauses/${encodeURIComponent(p.pause_id)}/end`, {}), 'pause_ended'));
      return h('li', { dataset: { pause: p.pause_id } },
        h('span', { class: 'badge', dataset: { tone: active ? 'warn' : 'info' } }, tx(active ? 'pause_active' : 'pause_inactive')), ' ',
        tx(`pause_reason_${p.reason}`), ` · ${date(p.starts_at)} – ${p.ends_at ? date(p.ends_at) : ''} `, end);
    });
    const parts = [h('h2', {}, tx('pauses_title')), items.length ? h('ul', { class: 'plain' }, items) : h('p', { class: 'empty' }, tx('pauses_none'))];
    if (admin) {
      const source = select(PAUSE_SOURCES, 'pause_source_');
      const reason = select(PAUSE_REASONS, 'pause_reason_');
      const save = h('button', { type: 'submit', class: 'primary' }, tx('pause_add'));
      const form = h('form', { class: 'form-grid', id: 'pause-form' },
        ...field('pa-source', 'pause_source', source), ...field('pa-reason', 'pause_reason', reason), h('span'), save);
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        run(save, () => post(`/api/recipients/${encodeURIComponent(basis.recipient.recipient_id)}/pauses`, {
          source: source.value, reason: reason.value,
        }), 'pause_added');
      });
      parts.push(h('fieldset', {}, h('legend', {}, tx('pause_add')), form));
    }
    return parts;
  }

  /** Step 2 of a binding, for a second person: nothing here is filled in by the console. The
   * confirmer types what the installer on site reads out (the brukare's name as on the door, the
   * street address) and the code on the video phone's screen, or sees that the camera's bind
   * button was pressed; the server compares them with the record and the device's proof. */
  function confirmCard(basis, r, me) {
    const rid = basis.recipient.recipient_id;
    const key = r.request_id;
    const head = [
      h('p', {}, tx(`binding_step2_${r.action}`, { device: r.device_id, name: basis.recipient.display_name })),
      h('p', { class: 'muted' }, t('binding_requested_by', { who: r.requested_by, at: date(r.requested_at) })),
    ];
    const card = (...rest) => h('li', { class: 'card', dataset: { request: key, proof: r.proof } }, ...head, ...rest);
    if (me && r.requested_by === me) {
      return card(h('p', { class: 'hint', dataset: { notice: 'four-eyes' } }, tx('binding_four_eyes')));
    }
    const confirm = h('button', { type: 'submit', class: 'primary', dataset: { action: 'confirm-binding' } }, tx('binding_confirm'));
    let typed = () => ({}); // an unbinding: four eyes only
    const fields = [];
    if (r.action === 'bind') {
      const name = h('input', { maxlength: '200', autocomplete: 'off', required: true });
      fields.push(...field(`bc-name-${key}`, 'binding_typed_name', name));
      const address = basis.recipient.home ? h('input', { maxlength: '500', autocomplete: 'off', required: true }) : null;
      if (address) fields.push(...field(`bc-address-${key}`, 'binding_typed_address', address));
      let code = null;
      let proof;
      if (r.proof === 'code') {
        code = h('input', { inputmode: 'numeric', pattern: '[0-9]{6}', maxlength: '6', autocomplete: 'off', required: true, class: 'mono' });
        fields.push(...field(`bc-code-${key}`, 'binding_typed_code', code));
        proof = h('p', { class: 'hint', dataset: { proof: 'code' } }, t('binding_code_hint', {
          at: hhmm(r.code_expires_at), left: r.code_attempts_left ?? 0 }));
      } else {
        const pressed = r.button_pressed_at;
        proof = h('p', { class: pressed ? 'badge' : 'hint', dataset: { proof: 'button', pressed: pressed ? 'yes' : 'no', tone: pressed ? 'ok' : 'info' } },
          pressed ? t('binding_button_pressed', { at: hhmm(pressed) }) : t('binding_button_waiting'));
        confirm.disabled = !pressed;
      }
      fields.unshift(proof, h('span'));
      typed = () => ({
        name: name.value.trim(), ...(address ? { address: address.value.trim() } : {}), ...(code ? { code: code.value.trim() } : {}),
      });
    }
    const form = h('form', { class: 'form-grid', id: `confirm-${key}` }, ...fields, h('span'), confirm);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      run(confirm, () => post(`/api/binding-requests/${encodeURIComponent(key)}/confirm`, { recipient_id: rid, ...typed() }), 'binding_confirmed');
    });
    return card(form);
  }

  async function devicesSection(basis) {
    const rid = basis.recipient.recipient_id;
    const active = basis.bindings.filter((b) => !b.unbound_at);
    const items = active.map((b) => {
      const unbind = admin ? h('button', { type: 'button', dataset: { action: 'unbind' } }, tx('binding_unbind')) : null;
      if (unbind) {
        unbind.addEventListener('click', () => run(unbind, () => post(`/api/devices/${encodeURIComponent(b.device_id)}/binding-requests`,
          { action: 'unbind' }), 'binding_requested'));
      }
      return h('li', { dataset: { device: b.device_id } }, h('span', { class: 'mono' }, b.device_id), ' · ',
        tx(`kind_${b.device_kind || 'unknown'}`), ` · ${t('bound_since', { at: date(b.bound_at) })} `, unbind);
    });
    const parts = [h('h2', {}, tx('bindings_title')), items.length ? h('ul', { class: 'plain', id: 'binding-list' }, items) : h('p', { class: 'empty' }, tx('bindings_none'))];
    if (!admin) return parts;
    let requests = [];
    let free = [];
    try {
      const [req, devs] = await Promise.all([get('/api/binding-requests'), get('/api/devices?limit=5000')]);
      requests = req.requests.filter((r) => !r.confirmed_at && !r.cancelled_at && Date.parse(r.expires_at) > Date.now()
        && (r.recipient_id === rid || active.some((b) => b.device_id === r.device_id)));
      free = devs.devices.map((d) => d.id);
    } catch {
      // the list stays empty; the form still works by typing an id
    }
    const me = ctx.me && ctx.me.staff_id;
    const pending = requests.map((r) => confirmCard(basis, r, me));
    const device = h('input', { list: 'free-devices', maxlength: '64', class: 'mono' });
    const save = h('button', { type: 'submit', class: 'primary' }, tx('binding_request'));
    const form = h('form', { class: 'form-grid', id: 'binding-form' },
      ...field('b-device', 'binding_device', device), h('span'), save,
      h('datalist', { id: 'free-devices' }, free.map((d) => h('option', { value: d }))));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      run(save, () => post(`/api/devices/${encodeURIComponent(device.value.trim())}/binding-requests`,
        { action: 'bind', recipient_id: rid }), 'binding_requested');
    });
    parts.push(h('fieldset', {}, h('legend', {}, tx('binding_step1')), h('p', { class: 'hint' }, tx('binding_hint')), form));
    if (pending.length) parts.push(h('h3', {}, tx('binding_pending')), h('ul', { class: 'cards plain', id: 'binding-requests' }, pending));
    return parts;
  }

  function cohabitantsSection(basis) {
    const items = basis.cohabitants.filter((c) => !c.moved_out_at).map((c) => h('li', {}, c.display_name));
    const parts = [h('h2', {}, tx('cohabitants_title')), items.length ? h('ul', { class: 'plain' }, items) : h('p', { class: 'empty' }, tx('cohabitants_none'))];
    if (admin) {
      const name = h('input', { required: true, maxlength: '200' });
      const save = h('button', { type: 'submit', class: 'primary' }, tx('cohabitant_add'));
      const form = h('form', { class: 'form-grid' }, ...field('co-name', 'col_name', name), h('span'), save);
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        run(save, () => post(`/api/recipients/${encodeURIComponent(basis.recipient.recipient_id)}/cohabitants`,
          { display_name: name.value.trim() }), 'cohabitant_added');
      });
      parts.push(h('fieldset', {}, h('legend', {}, tx('cohabitant_add')), form));
    }
    return parts;
  }

  /** The brukare's log extract (GDPR art. 15) for a period, opened as a printable page in a new
   * tab: a plain GET form, so the page needs no script (administrators; the server audits it). */
  function extractSection() {
    if (!admin) return [];
    const today = new Date();
    const iso = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
    const from = new Date(today);
    from.setMonth(from.getMonth() - 1);
    const form = h('form', { class: 'form-grid', id: 'extract-form', method: 'get', target: '_blank', action: `/api/recipients/${encodeURIComponent(id)}/extract` },
      field('extract-from', 'extract_from', h('input', { type: 'date', name: 'from', id: 'extract-from', required: true, value: iso(from) })),
      field('extract-to', 'extract_to', h('input', { type: 'date', name: 'to', id: 'extract-to', required: true, value: iso(today) })),
      h('input', { type: 'hidden', name: 'format', value: 'html' }),
      h('input', { type: 'hidden', name: 'lang', value: lang() }),
      h('span'), h('button', { type: 'submit', id: 'extract-open' }, tx('extract_open')));
    form.addEventListener('submit', () => { form.elements.lang.value = lang(); }); // chosen since
    return [h('h2', {}, tx('extract_title')), h('p', { class: 'hint' }, tx('extract_hint')), form];
  }

  /** Why supervision is suspended (hard rule 8: each suspension's cause in words), and for
   * administrators the re-verification: every person living there (the brukare and each
   * cohabitant) asked, how and when, with the answer per purpose. The server decides. */
  function suspendedSection(basis, suspended) {
    if (!suspended.length) return [];
    const why = h('ul', { class: 'plain', id: 'suspended-why' }, suspended.map((s) => h('li', { dataset: { cause: s.event_type, reason: s.reason } },
      tx(has(`suspended_why_${s.event_type}`) ? `suspended_why_${s.event_type}` : 'suspended_why_other'), ` (${date(s.started_at)})`)));
    const parts = [h('div', { class: 'form-error', id: 'suspended' },
      h('p', {}, tx(`suspended_reason_${suspended[0].reason || 'possible_withdrawal'}`), ': ', tx('suspended_notice')), why)];
    if (!admin) return parts;
    const pad = (n) => String(n).padStart(2, '0');
    const d = new Date();
    const nowLocal = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
    const people = [{ id: basis.recipient.recipient_id, name: t('person_recipient') },
      ...basis.cohabitants.filter((c) => !c.moved_out_at || Date.parse(c.moved_out_at) > Date.now())
        .map((c) => ({ id: c.cohabitant_id, name: c.display_name }))];
    const asked = people.map((p, i) => {
      const how = select(['visit', 'phone'], 'reverify_how_');
      const at = h('input', { type: 'datetime-local', required: true, value: nowLocal });
      const answers = PURPOSES.map((purpose) => h('select', { dataset: { purpose } },
        ...(purpose === 'camera_check' ? [] : [bind(h('option', { value: '' }), 'reverify_not_asked')]),
        bind(h('option', { value: 'consents' }), 'reverify_consents'),
        bind(h('option', { value: 'refuses' }), 'reverify_refuses')));
      const box = h('fieldset', { class: 'form-grid', dataset: { person: p.id } }, h('legend', {}, p.name),
        ...field(`rv-how-${i}`, 'reverify_how', how), ...field(`rv-at-${i}`, 'reverify_when', at),
        ...answers.flatMap((sel, k) => field(`rv-${PURPOSES[k]}-${i}`, `purpose_${PURPOSES[k]}`, sel)));
      return { id: p.id, how, at, answers, box };
    });
    const save = h('button', { type: 'submit', class: 'primary', id: 'reverify' }, tx('reverify'));
    const form = h('form', { id: 'reverify-form' }, h('p', { class: 'hint' }, tx('reverify_hint')), ...asked.map((a) => a.box), save);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const body = {
        people: asked.map((a) => ({
          person_id: a.id,
          how: a.how.value,
          spoken_at: a.at.value,
          answers: Object.fromEntries(a.answers.filter((sel) => sel.value).map((sel) => [sel.dataset.purpose, sel.value])),
        })),
      };
      const refuses = body.people.some((p) => Object.values(p.answers).includes('refuses'));
      if (refuses && !window.confirm(t('reverify_confirm'))) return;
      run(save, () => post(`/api/recipients/${encodeURIComponent(id)}/reverify`, body), refuses ? 'reverified_withdrawn' : 'reverified');
    });
    parts.push(h('fieldset', {}, h('legend', {}, tx('reverify_title')), form));
    return parts;
  }

  async function showOne(keep) {
    const basis = await get(`/api/recipients/${encodeURIComponent(id)}`);
    if (!alive) return;
    const now = Date.parse(basis.now) || Date.now();
    const suspended = basis.suspensions.filter((s) => !s.lifted_at);
    const devices = await devicesSection(basis);
    if (!alive) return;
    render(keep,
      h('p', {}, h('a', { href: '#/recipients' }, tx('recipients_back'))),
      h('div', { class: 'screen-head' }, h('h1', { id: 'recipient-name' }, basis.recipient.display_name),
        h('span', { class: 'muted' }, basis.recipient.home || ''),
        h('span', { class: 'badge', dataset: { tone: admin ? 'info' : 'warn' }, id: 'edit-mode' }, tx(admin ? 'mode_edit' : 'mode_read_only'))),
      error,
      h('h2', {}, tx('gate_title')),
      gateBadges(basis.gate),
      ...suspendedSection(basis, suspended),
      h('div', { class: 'two-col' },
        h('div', {}, ...plansSection(basis, now), ...pausesSection(basis, now)),
        h('div', {}, ...consentsSection(basis, now), ...cohabitantsSection(basis), ...devices)),
      ...extractSection());
  }

  async function load(keep = false) {
    try {
      if (id) await showOne(keep);
      else await showList(keep);
    } catch (err) {
      if (!alive || err.status === 401) return;
      root.replaceChildren(h('h1', {}, tx('recipients_title')), error);
      bind(error, err.status === 404 ? 'recipient_not_found' : 'error_load', { what: t('recipients_title') });
    }
  }

  const offs = [ctx.live.on('consent.changed', (e) => { if (!id || e.recipient_id === id) load(true); })];
  load();
  // A camera's binding waits for its bind button: look again every few seconds while one is
  // shown unpressed, so the confirmer sees "pressed at HH:MM" without reloading.
  const poll = setInterval(() => {
    if (alive && root.querySelector('[data-proof="button"][data-pressed="no"]')) load(true);
  }, 4000);
  return () => {
    alive = false;
    clearInterval(poll);
    for (const off of offs) off();
  };
}
