// Login: username and password; the server sets the HttpOnly session cookie.
import { h } from '../dom.js';
import { bind, bindAttr, languageChoice, tx } from '../i18n.js';
import { get, post } from '../api.js';

const ERRORS = {
  bad_credentials: 'login_bad_credentials',
  rate_limited: 'login_locked',
  network: 'error_network',
};

export function mount(container) {
  const message = h('p', { class: 'login-message', role: 'status' });
  const error = h('p', { class: 'form-error', id: 'login-error', role: 'alert' });
  const username = h('input', {
    id: 'username', name: 'username', autocomplete: 'username', required: true,
    autocapitalize: 'none', spellcheck: 'false', 'aria-describedby': 'login-error',
  });
  const password = h('input', {
    id: 'password', name: 'password', type: 'password', autocomplete: 'current-password',
    required: true, 'aria-describedby': 'login-error',
  });
  const submit = h('button', { type: 'submit', class: 'primary wide' }, tx('login_submit'));
  const form = h('form', { class: 'login-form', novalidate: true },
    h('label', { for: 'username' }, tx('login_username')), username,
    h('label', { for: 'password' }, tx('login_password')), password,
    error, submit);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    if (!username.value.trim() || !password.value) {
      bind(error, 'login_missing');
      (username.value.trim() ? password : username).focus();
      return;
    }
    submit.disabled = true;
    bind(submit, 'login_busy');
    try {
      await post('/api/login', { username: username.value.trim(), password: password.value }, { quiet401: true });
      const me = await get('/api/me');
      password.value = '';
      document.dispatchEvent(new CustomEvent('logged-in', { detail: me }));
    } catch (err) {
      bind(error, ERRORS[err.code] || (err.status === 429 ? 'login_locked' : 'error_generic'));
      password.value = '';
      password.focus();
    } finally {
      submit.disabled = false;
      bind(submit, 'login_submit');
    }
  });

  const languages = h('p', { class: 'login-languages' });
  const stopLanguages = languageChoice(languages);
  const onMessage = (e) => bind(message, e.detail);
  document.addEventListener('login-message', onMessage);

  container.append(h('section', { class: 'login', 'aria-labelledby': 'login-title' },
    h('div', { class: 'login-card' },
      h('p', { class: 'brand login-brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), tx('app_name')),
      h('h1', { id: 'login-title' }, tx('login_title')),
      message,
      form,
      h('p', { class: 'hint' }, tx('login_hint')),
      languages)));
  bindAttr(form, 'aria-label', 'login_title');
  setTimeout(() => username.focus(), 0);
  return () => {
    document.removeEventListener('login-message', onMessage);
    stopLanguages();
  };
}
