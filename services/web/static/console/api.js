// JSON over fetch with the session cookie. Errors arrive in one shape:
// {"error": {"status", "code", "message", "field"}} and are thrown as ApiError.

export class ApiError extends Error {
  constructor(status, code, message, field = null) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

const listeners = new Set();

/** The session's CSRF token: the server sets the readable hc_csrf cookie at login. */
function csrfToken() {
  const found = document.cookie.split('; ').find((c) => c.startsWith('hc_csrf='));
  return found ? decodeURIComponent(found.slice('hc_csrf='.length)) : '';
}

/** Called with no arguments whenever the server says the session is gone (401). */
export function onUnauthorized(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function cookie(name) {
  for (const part of document.cookie.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return decodeURIComponent(v.join('='));
  }
  return null;
}

export async function api(method, path, body, { signal, quiet401 = false } = {}) {
  const init = {
    method,
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
    signal,
  };
  if (method !== 'GET' && method !== 'HEAD') {
    const token = csrfToken();
    if (token) init.headers['X-CSRF-Token'] = token;
  }
  if (method !== 'GET' && method !== 'HEAD') {
    const csrf = cookie('hc_csrf'); // set at login; the server wants it echoed on every change
    if (csrf) init.headers['X-CSRF-Token'] = csrf;
  }
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'network error');
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const err = data && data.error ? data.error : {};
    if (response.status === 401 && !quiet401) for (const fn of listeners) fn();
    throw new ApiError(response.status, err.code || 'http_error', err.message || response.statusText, err.field || null);
  }
  return data;
}

export const get = (path, opts) => api('GET', path, undefined, opts);
export const post = (path, body, opts) => api('POST', path, body ?? {}, opts);
export const put = (path, body, opts) => api('PUT', path, body ?? {}, opts);
export const patch = (path, body, opts) => api('PATCH', path, body ?? {}, opts);
export const del = (path, opts) => api('DELETE', path, undefined, opts);

/** ws(s):// URL for a path on this origin. */
export function wsUrl(path) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${path}`;
}
