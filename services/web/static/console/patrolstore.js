// What the patrol's phone keeps between reloads, in localStorage: the last task list (only the
// fields the task shows) and the outbox of reports not yet confirmed by the server (check id and
// what was reported: no names). Both are cleared on logout.
const TASKS = 'hc.patrol.tasks';
const OUTBOX = 'hc.patrol.outbox';

/** The fields of a task the phone shows (and so keeps); nothing else is stored. */
const SHOWN = ['check_id', 'display_name', 'home', 'door_code_ref', 'instruction', 'reason',
  'state', 'agreed', 'deadline', 'assignee', 'patrol_arrived_at'];

function read(key) {
  try {
    return JSON.parse(globalThis.localStorage?.getItem(key) || 'null');
  } catch {
    return null;
  }
}

function write(key, value) {
  try {
    globalThis.localStorage?.setItem(key, JSON.stringify(value));
  } catch {
    // storage full or refused: the list still works while the page is open
  }
}

/** The saved list: {me: {staff_id, role}, saved_at, tasks} or null. */
export function savedTasks() {
  const saved = read(TASKS);
  return saved && saved.me && Array.isArray(saved.tasks) ? saved : null;
}

export function saveTasks(me, tasks) {
  const slim = tasks.map((task) => Object.fromEntries(SHOWN.map((k) => [k, task[k] ?? null])));
  write(TASKS, { me: { staff_id: me.staff_id, role: me.role, permissions: me.permissions }, saved_at: new Date().toISOString(), tasks: slim });
}

/** Reports waiting to be confirmed: [{id, check_id, action, outcome?}] in the order made. */
export function outbox() {
  const items = read(OUTBOX);
  return Array.isArray(items) ? items : [];
}

export function saveOutbox(items) {
  write(OUTBOX, items);
}

/** Forget everything the phone kept (logout). */
export function clearPatrol() {
  try {
    globalThis.localStorage?.removeItem(TASKS);
    globalThis.localStorage?.removeItem(OUTBOX);
  } catch {
    // nothing kept
  }
}
