// Small DOM helpers: build elements without innerHTML (no markup injection), keyed list updates.

/**
 * h('button', {class: 'primary', onclick: fn, 'aria-label': '...'}, 'text', child, ...)
 * Attributes: `class`, `dataset` (object), `on*` (listeners), `hidden`/`disabled` (booleans),
 * anything else via setAttribute. Children: nodes, strings, numbers, null/false (skipped), arrays.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace all children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Set text only when it changed (no needless reflow, keeps screen readers calm). */
export function setText(el, text) {
  const value = text === null || text === undefined ? '' : String(text);
  if (el.textContent !== value) el.textContent = value;
}

/**
 * Keyed update of a container's children: `render(item, existingEl|null)` returns the element
 * for an item (reusing the existing one when given). Elements keep their identity (and focus)
 * across updates; order follows `items`.
 */
export function keyed(container, items, keyOf, render) {
  const old = new Map();
  for (const child of container.children) old.set(child.dataset.key, child);
  let prev = null;
  for (const item of items) {
    const key = String(keyOf(item));
    const existing = old.get(key) || null;
    const el = render(item, existing);
    el.dataset.key = key;
    old.delete(key);
    const want = prev ? prev.nextElementSibling : container.firstElementChild;
    if (want !== el) container.insertBefore(el, want);
    prev = el;
  }
  for (const el of old.values()) el.remove();
}

/** Format a duration in whole seconds as m:ss. */
export function clock(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** HH:MM of an ISO time in the console's locale time zone. */
export function hhmm(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '–';
  return d.toLocaleTimeString('sv-SE', { hour: '2-digit', minute: '2-digit' });
}

/** Random id for signalling sessions (A-Z a-z 0-9 _ -, 22 characters). */
export function sessionId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
