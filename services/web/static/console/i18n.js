// All UI strings live in one dictionary per language (strings/sv.js, strings/en.js,
// strings/fi.js); Swedish is the default and the fallback for a missing key.
// Elements carry their key in data-i18n (text) or data-i18n-<attr> (attributes), so switching
// language re-translates the page in place without re-mounting anything.
import sv from './strings/sv.js';
import en from './strings/en.js';
import fi from './strings/fi.js';

export const LANGUAGES = { sv, en, fi };
/** Each language's own name and the offer to switch to it, in that language. */
const NAMES = {
  sv: ['Svenska', 'Byt till svenska'],
  en: ['English', 'Switch to English'],
  fi: ['Suomi', 'Vaihda kieleksi suomi'],
};
const STORAGE_KEY = 'hc.lang';
let current = pickInitial();

function pickInitial() {
  const stored = globalThis.localStorage?.getItem(STORAGE_KEY);
  return stored && LANGUAGES[stored] ? stored : 'sv';
}

export function lang() {
  return current;
}

/** Translate `key`, filling {name} placeholders from `params`. Missing keys show the key. */
export function t(key, params = {}) {
  const text = LANGUAGES[current][key] ?? sv[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

/** Does the dictionary have `key`? (for codes from the server, e.g. denial reasons) */
export function has(key) {
  return key in LANGUAGES[current] || key in sv;
}

/** Bind `el`'s text to `key` (and re-translate it on language change). */
export function bind(el, key, params) {
  el.dataset.i18n = key;
  if (params && Object.keys(params).length) el.dataset.i18nParams = JSON.stringify(params);
  else delete el.dataset.i18nParams;
  const text = t(key, params || {});
  if (el.textContent !== text) el.textContent = text;
  return el;
}

/** Bind attribute `attr` of `el` to `key`. */
export function bindAttr(el, attr, key, params) {
  el.dataset[`i18n${attr.replace(/(^|-)(\w)/g, (m, d, c) => c.toUpperCase())}`] = key;
  el.setAttribute(attr, t(key, params || {}));
  return el;
}

const ATTRS = ['aria-label', 'title', 'placeholder'];

/** Re-translate everything under `root` that carries i18n keys. */
export function apply(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) {
    const params = el.dataset.i18nParams ? JSON.parse(el.dataset.i18nParams) : {};
    const text = t(el.dataset.i18n, params);
    if (el.textContent !== text) el.textContent = text;
  }
  for (const attr of ATTRS) {
    const prop = `i18n${attr.replace(/(^|-)(\w)/g, (m, d, c) => c.toUpperCase())}`;
    const selector = `[data-i18n-${attr}]`;
    for (const el of root.querySelectorAll(selector)) el.setAttribute(attr, t(el.dataset[prop]));
  }
}

export function setLang(code) {
  if (!LANGUAGES[code] || code === current) return;
  current = code;
  globalThis.localStorage?.setItem(STORAGE_KEY, code);
  document.documentElement.lang = code;
  apply(document);
  window.dispatchEvent(new CustomEvent('langchange', { detail: code }));
}

/** A span whose text is `key` translated. */
export function tx(key, params) {
  return bind(document.createElement('span'), key, params);
}

/**
 * Buttons for every language but the current one, each named in its own language; they
 * switch the page and redraw themselves. `onChange` runs after a switch (the header's title).
 */
export function languageChoice(el, onChange) {
  const draw = () => {
    const buttons = Object.keys(LANGUAGES).filter((code) => code !== current).map((code) => {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'ghost';
      button.lang = code;
      button.textContent = NAMES[code][0];
      button.setAttribute('aria-label', NAMES[code][1]);
      button.addEventListener('click', () => {
        setLang(code);
        onChange?.(code);
        el.querySelector('button')?.focus(); // the pressed button is gone: keep the focus here
      });
      return button;
    });
    el.replaceChildren(...buttons);
  };
  el.classList.add('lang-choice');
  bindAttr(el, 'aria-label', 'language_label');
  el.setAttribute('role', 'group');
  draw();
  window.addEventListener('langchange', draw);
  return () => window.removeEventListener('langchange', draw);
}
