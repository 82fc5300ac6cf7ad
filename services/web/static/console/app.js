// The console's shell: session, header, language switch, live events and a hash router.
// Screens are modules under screens/ exporting mount(container, ctx) -> unmount().
import { h, fill, setText } from './dom.js';
import * as i18n from './i18n.js';
import { get, post, onUnauthorized } from './api.js';
import { Live } from './live.js';
import { Attention } from './attention.js';
import { clearPatrol, savedTasks } from './patrolstore.js';

const SCREENS = {
  login: () => import('./screens/login.js'),
  round: () => import('./screens/round.js'),
  alarms: () => import('./screens/alarms.js'),
  devices: () => import('./screens/devices.js'),
  recipients: () => import('./screens/recipients.js'),
  installations: () => import('./screens/installations.js'),
  audit: () => import('./screens/audit.js'),
  report: () => import('./screens/report.js'),
  patrol: () => import('./screens/patrol.js'),
  lead: () => import('./screens/lead.js'),
};
/** May the signed-in person do this? `GET /api/me` lists the role's permissions (the role matrix,
 * kernel/permissions.py); the server decides anyway, this only hides what would be refused. */
export function may(permission, me = state.me) {
  return Boolean(me && (me.permissions || []).includes(permission));
}
const COUNT_DEBOUNCE_MS = 400;

const state = {
  me: null,
  live: null,
  unmount: null,
  route: null,
  mountSeq: 0,
  attention: null,
  titlePrefix: '',
  wasLive: false,
  countTimer: null,
  countRefresh: null,
};

const $ = (id) => document.getElementById(id);

export function announce(text) {
  const el = $('announce');
  el.textContent = '';
  setTimeout(() => { el.textContent = text; }, 30);
}

export function alertNow(text) {
  const el = $('alert');
  el.textContent = '';
  setTimeout(() => { el.textContent = text; }, 30);
}

function defaultRoute(me) {
  if (me && me.role === 'patrol') return 'patrol';
  if (me && me.role === 'shift_lead') return 'lead';
  if (me && me.role === 'auditor') return 'audit';
  return me && me.role === 'technician' ? 'devices' : 'round';
}

/** The page title: the attention count (if any), the screen, the console's name. */
function renderTitle() {
  const screen = state.route ? `${i18n.t(`title_${state.route}`)} · ` : '';
  document.title = `${state.titlePrefix}${screen}${i18n.t('app_name')}`;
}

/** May the signed-in person use this screen? The menu link names the permissions it needs
 * (`data-perms`, all of them) or the roles it is for (`data-roles`); the server decides anyway. */
function allowed(name) {
  const link = document.querySelector(`.nav a[data-route="${name}"]`);
  if (!link || !state.me) return !link;
  const { roles, perms } = link.dataset;
  if (roles && !roles.split(' ').includes(state.me.role)) return false;
  return !perms || perms.split(' ').every((p) => may(p));
}

function parseHash() {
  const hash = location.hash || '';
  if (!hash.startsWith('#/')) return null;
  const [name, ...params] = hash.slice(2).split('/').map(decodeURIComponent);
  return { name: name || '', params };
}

function navigate(path) {
  if (location.hash === `#${path}`) route();
  else location.hash = `#${path}`;
}

async function mount(name, params, { focus = true } = {}) {
  const seq = ++state.mountSeq;
  if (state.unmount) {
    try { state.unmount(); } catch (e) { console.error(e); }
    state.unmount = null;
  }
  const load = SCREENS[name];
  const main = $('main');
  main.setAttribute('aria-busy', 'true');
  let module;
  try {
    module = await load();
  } catch (e) {
    console.error(e);
    if (seq !== state.mountSeq) return;
    fill(main, h('h1', {}, i18n.t(`title_${name}`)), h('p', { class: 'form-error', role: 'alert' }, i18n.t('error_screen')));
    main.removeAttribute('aria-busy');
    return;
  }
  if (seq !== state.mountSeq) return;
  fill(main);
  main.dataset.screen = name;
  state.route = name;
  for (const link of document.querySelectorAll('.nav a')) {
    if (link.dataset.route === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const ctx = {
    me: state.me,
    live: state.live,
    params,
    announce,
    alert: alertNow,
    navigate,
    isAdmin: may('manage_care_record'),
    may: (permission) => may(permission),
    attention: state.attention,
  };
  state.unmount = module.mount(main, ctx) || null;
  main.removeAttribute('aria-busy');
  renderTitle();
  if (focus) {
    const heading = main.querySelector('h1');
    if (heading) {
      heading.tabIndex = -1;
      heading.focus({ preventScroll: true });
    }
  }
}

async function route() {
  if (!state.me) return;
  const parsed = parseHash();
  if (!parsed || !SCREENS[parsed.name] || parsed.name === 'login' || !allowed(parsed.name)) {
    history.replaceState(null, '', `#/${defaultRoute(state.me)}`);
    await mount(defaultRoute(state.me), []);
    return;
  }
  await mount(parsed.name, parsed.params);
}

function renderHeader() {
  const me = state.me;
  $('top').hidden = !me;
  if (!me) return;
  for (const link of document.querySelectorAll('.nav a')) link.hidden = !allowed(link.dataset.route);
  const who = $('who');
  fill(who, me.display_name || me.username || me.staff_id, ' · ', i18n.tx(`role_${me.role}`));
}

function renderLiveState() {
  const el = $('live-state');
  const liveState = state.live ? state.live.state : 'offline';
  el.dataset.state = liveState;
  i18n.bind(el, `live_${liveState}`);
  if (!state.attention) return;
  if (liveState === 'live') {
    state.wasLive = true;
    state.attention.setConnected(true);
    if (state.attention.offlineStart) refreshMe();
  } else if (liveState === 'offline' && (state.wasLive || state.attention.offlineStart)) {
    state.attention.setConnected(false); // the connection to the server is lost
  }
}

/** Started from the patrol's kept list without the server: who I am, once it answers again. */
async function refreshMe() {
  state.attention.offlineStart = false;
  try {
    const me = await get('/api/me');
    if (state.me && me.staff_id === state.me.staff_id) {
      state.me = me;
      renderHeader();
    }
  } catch {
    // a 401 takes the patrol to the login (api.js); anything else: the kept identity stays
  }
}

/** For the desk: how many checks wait for a person and how many alarms are open (the title). */
function countQueue() {
  if (state.countTimer || !state.attention || !may('read_rounds')) return;
  state.countTimer = setTimeout(async () => {
    state.countTimer = null;
    try {
      const queue = await get('/api/rounds/queue');
      const waiting = queue.checks.filter((c) => c.state === 'needs_view').length;
      state.attention?.setCount(waiting + (queue.alarms || []).length);
    } catch {
      // the count stays; the connection's own state says when the server is gone
    }
  }, COUNT_DEBOUNCE_MS);
}

/** Call for attention on the live events that need a person. */
function startAttention(me, offline) {
  // Who is called for attention may mute it (the desk and the patrol); a patrol's saved tasks
  // from before permissions were saved count as the patrol's.
  if (me.permissions ? !may('mute', me) : me.role !== 'patrol') return;
  const attention = new Attention(
    {
      bar: $('attention'), enable: $('sound-enable'), state: $('sound-state'), mute: $('sound-mute'),
      message: $('attention-message'),
    },
    (prefix) => { state.titlePrefix = prefix; renderTitle(); },
  );
  attention.offlineStart = offline;
  state.attention = attention;
  if (!offline) attention.loadMute();
  const live = state.live;
  attention.offs.push(
    live.on('check.changed', (e) => {
      if (e.state === 'needs_view' && e.from !== 'needs_view') attention.call('needs', i18n.t('attention_needs_view'));
      countQueue();
    }),
    live.on('check.alarm', (e) => {
      const to = i18n.has(`attention_to_${e.to}`) ? i18n.t(`attention_to_${e.to}`) : '';
      // repeat counts from 1 (the first alarm of the step); an escalation tells the shift lead
      const key = e.alarm === 'escalation' ? 'attention_escalation'
        : e.repeat > 1 ? 'attention_alarm_repeat' : 'attention_alarm';
      attention.call('alarm', i18n.t(key, { state: i18n.t(`state_${e.state}`), n: e.repeat, to }).trim());
      countQueue();
    }),
    live.on('resync', () => { countQueue(); attention.loadMute(); }),
  );
  countQueue();
  if (may('read_rounds', me)) state.countRefresh = setInterval(countQueue, 20000);
}

async function startSession(me, { offline = false } = {}) {
  state.me = me;
  state.wasLive = false;
  document.body.dataset.role = me.role;
  state.live = new Live(['/ws/console']);
  state.live.addEventListener('state', renderLiveState);
  state.live.on('unauthorized', () => checkSession());
  startAttention(me, offline);
  state.live.start();
  renderHeader();
  renderLiveState();
  await route();
}

function endSession(reasonKey) {
  if (reasonKey) clearPatrol(); // logged out or expired: the phone keeps no tasks
  clearTimeout(state.countTimer);
  clearInterval(state.countRefresh);
  state.countTimer = null;
  state.countRefresh = null;
  if (state.attention) state.attention.destroy();
  state.attention = null;
  state.titlePrefix = '';
  delete document.body.dataset.role;
  if (state.live) state.live.stop();
  if (state.unmount) {
    try { state.unmount(); } catch (e) { console.error(e); }
  }
  state.unmount = null;
  state.live = null;
  state.me = null;
  renderHeader();
  mount('login', [], { focus: false }).then(() => {
    if (reasonKey) document.dispatchEvent(new CustomEvent('login-message', { detail: reasonKey }));
  });
}

async function checkSession() {
  // A logout or login while /api/me is in flight makes its answer stale: the live socket's 4401
  // (logout revokes the session) arrives before the logout's own answer, and a late 401 must
  // not remount the login screen over its "logged out" message.
  const before = state.me;
  try {
    const me = await get('/api/me', { quiet401: true });
    if (state.me === before && !state.me) await startSession(me);
  } catch (e) {
    if (state.me !== before) return;
    if (state.me) endSession(e.status === 401 ? 'session_expired' : null);
    else if (e.status === 0 && savedTasks()?.me?.role === 'patrol') {
      // No answer from the server (a phone in a car): show the patrol's kept list at once; its
      // screen fetches again, and a 401 then takes the patrol to the login.
      await startSession(savedTasks().me, { offline: true });
    } else endSession(null);
  }
}

async function logout() {
  try {
    await post('/api/logout');
  } catch {
    // the cookie is cleared either way when the session has already ended
  }
  history.replaceState(null, '', '#/');
  endSession('logged_out');
}

function init() {
  document.documentElement.lang = i18n.lang();
  i18n.apply(document);
  $('skip').addEventListener('click', (e) => {
    e.preventDefault();
    const main = $('main');
    (main.querySelector('h1') || main).focus();
  });
  i18n.languageChoice($('lang-switch'));
  window.addEventListener('langchange', renderTitle);
  $('logout').addEventListener('click', logout);
  window.addEventListener('hashchange', () => route());
  onUnauthorized(() => {
    if (state.me) endSession('session_expired');
  });
  document.addEventListener('logged-in', (e) => startSession(e.detail));
  checkSession();
}

// Exposed for tests and support: the current user and live state (no personal data).
window.homecareConsole = {
  get route() { return state.route; },
  get liveState() { return state.live ? state.live.state : 'offline'; },
  get role() { return state.me ? state.me.role : null; },
  get attention() {
    const a = state.attention;
    return a ? { audio: a.audio ? a.audio.state : 'none', sound: a.sound, tones: [...a.tones], notes: a.notes, count: a.count } : null;
  },
};

init();
