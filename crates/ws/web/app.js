// chat-cluster's web client: plain JavaScript, no build step, no library. It speaks the
// protocol's extension (docs/PROTOCOL.md) over the WebSocket at /ws of the page's own origin:
// one JSON request per text message. Message text only ever goes through textContent.
'use strict';

const $ = (id) => document.getElementById(id);
const WS_URL = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
const HISTORY_PAGE = 30;
const ACK_DELAY_MS = 500;
const MARK_READ_DELAY_MS = 300; // a shown conversation is marked read after this (debounced)
const SYNC_QUIET_MS = 1000; // the replay after a login is over when no push came for this long
const SYNC_MAX_MS = 5000; // or after this long in any case
const TYPING_EVERY_MS = 3000; // "typing" at most this often while the user types
const TYPING_SERVER_MS = 2100; // the server forwards one "typing" per 2 s per conversation
const TYPING_PAUSE_MS = 4000; // "paused" after this long without a keystroke
const TYPING_SHOW_MS = 6000; // "… is typing" shown this long unless refreshed

const state = {
  ws: null,
  me: null, // {id, name}
  token: sessionStorage.getItem('chat.token'),
  loggedIn: false,
  wantOpen: false, // reconnect when the socket drops
  backoff: 0,
  friends: new Map(), // id -> {id, name, state}
  groups: new Map(), // id -> {id, groupname, groupdesc, users}
  convs: new Map(), // 'u:2' | 'g:5' -> conversation
  current: null,
  pending: new Map(), // cid -> {key, text, msg}
  history: [], // keys of HISTORY requests in flight, answered in order
  acks: new Map(), // key -> highest seq to acknowledge
  ackTimer: null,
  cidSeq: 0,
  loginReq: null, // what to do when the LOGIN ack comes: 'login' | 'resume'
  blocked: new Set(), // user ids this user blocks (BLOCKED, msgid 32)
  writers: 'anyone', // who may write to this user (BLOCKED_ACK, SET_WRITERS)
  incoming: new Map(), // id -> {id, name}: friend requests waiting for this user
  outgoing: new Map(), // id -> {id, name}: this user's requests
  finds: [], // FIND_USER (50) in flight, answered in order: what to do with the id ('add' | 'request')
  answers: [], // FRIEND_ANSWER (36) in flight, answered in order: accept or not
  admins: new Map(), // group id -> Set of user ids named admins (admin-changed; lists show them as 'normal')
  // Read state (MARK_READ 54, RECEIPT 55, READS 56, TYPING 58): used only when the server
  // speaks it, which its LOGIN ack says by carrying "read".
  readMarks: false,
  syncing: false, // the replay after a login: its pushes are in the ack's unread counts
  syncTimer: null,
  syncStart: 0,
  markTimer: null,
  typingLast: 0, // when "typing" was last sent
  typingOn: false, // "typing" was sent and no "paused" since
  typingKey: null, // the conversation it was sent in
  typingLater: null, // a "typing" deferred until the server takes one again
  pauseTimer: null,
};

function keyOf(kind, id) { return kind + ':' + id; }

function conv(key, title) {
  let c = state.convs.get(key);
  if (!c) {
    const [kind, id] = key.split(':');
    c = { key, kind, id: Number(id), title: title || key, byMid: new Map(), order: [], maxSeq: 0,
      unread: 0, credit: 0, oldest: null, more: true, loaded: false, loading: false,
      readSeq: 0, // how far this user read it (on any device)
      peerRead: 0, peerRecv: 0, // one-to-one: how far the other side read / received it
      reads: new Map(), // group: member id -> how far they read
      typing: new Map() }; // user id -> the timer that ends its typing notice
    state.convs.set(key, c);
  }
  if (title && c.title === key) c.title = title;
  return c;
}

// ---- connection ----------------------------------------------------------------------

function connect() {
  // A socket still connecting or open serves; one closing (a logout's) is replaced at once.
  if (state.ws && state.ws.readyState <= WebSocket.OPEN) return;
  setConn('reconnecting');
  const ws = new WebSocket(WS_URL);
  state.ws = ws;
  ws.onopen = () => {
    state.backoff = 0;
    if (state.token) resume();
    else if (state.onOpen) { const f = state.onOpen; state.onOpen = null; f(); }
  };
  ws.onmessage = (ev) => {
    let frame;
    try { frame = JSON.parse(ev.data); } catch { return; }
    handle(frame);
  };
  ws.onclose = () => {
    if (state.ws !== ws) return;
    state.ws = null;
    state.loggedIn = false;
    state.history = [];
    for (const c of state.convs.values()) c.loading = false;
    if (state.wantOpen && state.token) {
      setConn('reconnecting');
      const delay = Math.min(5000, 300 * 2 ** state.backoff++) * (0.75 + Math.random() / 2);
      setTimeout(connect, delay);
    } else {
      setConn('offline');
    }
  };
}

function send(obj) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) { state.ws.send(JSON.stringify(obj)); return true; }
  return false;
}

function withSocket(f) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) f();
  else { state.onOpen = f; connect(); }
}

function setConn(s) { $('conn').dataset.state = s; $('conn').textContent = s; }

function currentAcks() {
  const acks = [];
  for (const c of state.convs.values()) {
    if (c.maxSeq > 0) acks.push(c.kind === 'u' ? { id: c.id, seq: c.maxSeq } : { groupid: c.id, seq: c.maxSeq });
  }
  return acks;
}

function resume() {
  state.loginReq = 'resume';
  send({ msgid: 17, token: state.token, acks: currentAcks() });
}

// ---- inbound -------------------------------------------------------------------------

function handle(f) {
  switch (f.msgid) {
    case 2: return onLoginAck(f);
    case 5: return onRegAck(f);
    case 6: case 10: return onPush(f);
    case 11: return onAck(f);
    case 12: return send({ msgid: 13 });
    case 14: return onNotice(f);
    case 16: return onLists(f);
    case 20: return onHistory(f);
    case 33: return onBlocked(f);
    case 39: return onRequests(f);
    case 47: return onEvent(f);
    case 51: return onFound(f);
    case 53: return onPresence(f);
    case 55: return onReceipt(f);
    case 57: return onReads(f);
    case 58: return onTyping(f);
  }
}

function onRegAck(f) {
  if (f.errno === 0) {
    $('reg-result').textContent = 'Registered: your user id is ' + f.id + '. Log in with it.';
    $('reg-result').dataset.id = f.id;
    $('login-id').value = f.id;
    $('login-password').value = $('reg-password').value;
  } else {
    $('auth-error').textContent = f.errmsg || 'registration failed';
  }
}

function onLoginAck(f) {
  const how = state.loginReq;
  state.loginReq = null;
  if (f.errno !== 0) {
    if (how === 'resume' && (f.errno === 2 || f.errno === 13 || f.errno === 30)) {
      // The old node still holds the session (its lease has not run out yet): try again.
      setTimeout(() => { if (state.ws && !state.loggedIn) resume(); }, 500 + Math.random() * 500);
      return;
    }
    if (how === 'resume') {
      dropSession();
      $('auth-error').textContent = 'Your session ended; log in again.';
    } else {
      $('auth-error').textContent = f.errmsg || 'login failed';
    }
    return;
  }
  const fresh = how !== 'resume' || !state.me || state.me.id !== f.id;
  state.me = { id: f.id, name: f.name };
  state.token = f.resume;
  state.loggedIn = true;
  state.wantOpen = true;
  sessionStorage.setItem('chat.token', f.resume);
  setConn('online');
  $('auth').hidden = true;
  $('app').hidden = false;
  $('me-name').textContent = f.name;
  $('me-id').textContent = f.id;
  onLists(f, fresh ? 'fresh' : 'resume');
  if (state.readMarks) {
    startSync();
  } else if (fresh) {
    // The replay that follows brings exactly these messages: count them once.
    for (const u of f.unread || []) {
      const c = conv(u.groupid ? keyOf('g', u.groupid) : keyOf('u', u.id));
      c.unread = u.count;
      c.credit = u.count;
    }
    renderLists();
  }
  // What was sent but never acknowledged goes again, with the same cid: stored once.
  for (const [cid, p] of state.pending) if (p.msg.state !== 'failed') transmit(cid, p);
  if (state.current) {
    const c = state.convs.get(state.current);
    if (c && !c.loaded) loadHistory(c);
  }
  // Online dots move with PRESENCE (53) pushes; no polling. The ack carried the lists.
  send({ msgid: 32 });
  send({ msgid: 38 });
}

// ---- users in control (docs/PROTOCOL.md, "Users in control") -------------------------

function onBlocked(f) {
  state.blocked = new Set((f.users || []).map((u) => u.id));
  $('blocked').replaceChildren(...(f.users || []).map((u) => {
    const li = document.createElement('li');
    li.dataset.id = u.id;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = u.name + ' (#' + u.id + ')';
    const b = document.createElement('button');
    b.className = 'unblock link';
    b.textContent = 'Unblock';
    b.onclick = () => send({ msgid: 31, id: u.id });
    li.append(name, b);
    return li;
  }));
  state.writers = f.writers === 'friends' ? 'friends' : 'anyone';
  $('writers').value = state.writers;
  convAction();
}

// FRIEND_REQUESTS_ACK (39): the requests waiting for this user and its own.
function onRequests(f) {
  if (f.errno !== 0) return;
  state.incoming = new Map((f.incoming || []).map((u) => [u.id, u]));
  state.outgoing = new Map((f.outgoing || []).map((u) => [u.id, u]));
  renderRequests();
}

// FIND_USER_ACK (51): the id behind a name, for what asked (answers come in request order).
function onFound(f) {
  const what = state.finds.shift();
  if (f.errno !== 0) return;
  if (what === 'request') send({ msgid: 35, id: f.id });
  else send({ msgid: 7, friendid: f.id });
}

function renderRequests() {
  const person = (u, buttons) => {
    const li = document.createElement('li');
    li.dataset.id = u.id;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = (u.name || 'user') + ' (#' + u.id + ')';
    li.append(name, ...buttons);
    return li;
  };
  const button = (text, cls, onclick) => {
    const b = document.createElement('button');
    b.className = cls;
    b.textContent = text;
    b.onclick = onclick;
    return b;
  };
  $('incoming').replaceChildren(...[...state.incoming.values()].map((u) => person(u, [
    button('Accept', 'accept', () => answerRequest(u, true)),
    button('Decline', 'decline link', () => {
      if (confirm('Decline the friend request of ' + u.name + ' (#' + u.id + ')?')) answerRequest(u, false);
    }),
  ])));
  $('outgoing').replaceChildren(...[...state.outgoing.values()].map((u) => person(u, [])));
  $('requests-count').textContent = state.incoming.size ? String(state.incoming.size) : '';
}

function answerRequest(u, accept) {
  state.answers.push(accept);
  send({ msgid: 36, id: u.id, accept });
  state.incoming.delete(u.id);
  renderRequests();
}

const EVENT_TEXT = {
  'friend-request': (f) => f.name + ' (#' + f.id + ') asks to be your friend.',
  'friend-accepted': (f) => f.name + ' (#' + f.id + ') is now your friend.',
  'friend-declined': (f) => 'User #' + f.id + ' declined your friend request.',
  'friend-removed': (f) => 'User #' + f.id + ' is no longer your friend.',
  'member-removed': (f) => f.id === state.me.id ? 'You were removed from group ' + f.groupid + '.' : 'User #' + f.id + ' was removed from group ' + f.groupid + '.',
  'member-left': (f) => 'User #' + f.id + ' left group ' + f.groupid + '.',
  'owner-changed': (f) => 'User #' + f.id + ' now owns group ' + f.groupid + '.',
  'admin-changed': (f) => 'User #' + f.id + (f.admin ? ' is now' : ' is no longer') + ' an admin of group ' + f.groupid + '.',
  'group-changed': (f) => f.groupname ? 'Group ' + f.groupid + ' is now called ' + f.groupname + '.' : 'Group ' + f.groupid + ' changed its description.',
  'group-deleted': (f) => 'Group ' + f.groupid + ' was deleted.',
};

function onEvent(f) {
  const text = EVENT_TEXT[f.event];
  // What this user did itself (leaving, or an event with `by` = this user) has its ACK's
  // text: the event, which may come after the ACK, must not write over it.
  const mine = (f.event === 'member-left' && f.id === state.me.id) || f.by === state.me.id;
  if (text && !mine) $('action-result').textContent = text(f);
  switch (f.event) {
    case 'friend-request':
      state.incoming.set(f.id, { id: f.id, name: f.name });
      renderRequests();
      return; // nothing in the lists changed yet
    case 'friend-accepted': case 'friend-declined':
      state.outgoing.delete(f.id);
      renderRequests();
      break;
    case 'friend-removed':
      forgetConv(keyOf('u', f.id));
      break;
    case 'admin-changed': {
      const admins = state.admins.get(f.groupid) || new Set();
      if (f.admin) admins.add(f.id); else admins.delete(f.id);
      state.admins.set(f.groupid, admins);
      break;
    }
    case 'group-changed': {
      const g = state.groups.get(f.groupid);
      const c = state.convs.get(keyOf('g', f.groupid));
      if (g && typeof f.groupname === 'string') g.groupname = f.groupname;
      if (g && typeof f.groupdesc === 'string') g.groupdesc = f.groupdesc;
      if (c && typeof f.groupname === 'string') c.title = f.groupname;
      // The form shows the new name unless the user is editing it.
      if (g && $('edit-group-form').dataset.gid === String(g.id) && !$('edit-group-form').dataset.dirty) fillEditForm(g);
      renderLists();
      convTitle();
      break;
    }
  }
  const gone = f.event === 'group-deleted' || ((f.event === 'member-removed' || f.event === 'member-left') && f.id === state.me.id);
  if (gone) forgetConv(keyOf('g', f.groupid));
  send({ msgid: 15 });
}

function forgetConv(key) {
  state.convs.delete(key);
  if (state.current === key) {
    state.current = null;
    $('message-list').replaceChildren();
    $('composer-input').disabled = true;
    $('send-btn').disabled = true;
  }
  convTitle();
  convAction();
  renderLists();
}

function convTitle() {
  const c = state.current && state.convs.get(state.current);
  $('conv-title').textContent = !c ? 'Pick a friend or a group'
    : c.title + (c.kind === 'g' ? ' (group ' + c.id + ')' : ' (#' + c.id + ')');
}

// The group's owner (role 'creator' in the lists), and whether `id` may manage it.
function ownerOf(g) { const o = g && g.users.find((u) => u.role === 'creator'); return o ? o.id : null; }
function isAdmin(gid, id) { return (state.admins.get(gid) || new Set()).has(id); }

// The button in a conversation's header (block or unblock a user, leave a group) and its
// menu (remove a friend; a group's members, kick, admins, rename, delete).
function convAction() {
  const b = $('conv-action');
  const c = state.current && state.convs.get(state.current);
  if (!c) { b.hidden = true; $('conv-menu').hidden = true; return; }
  b.hidden = false;
  if (c.kind === 'g') b.textContent = 'Leave group';
  else b.textContent = state.blocked.has(c.id) ? 'Unblock' : 'Block';
  renderConvMenu(c);
}

function fillEditForm(g) {
  $('edit-group-name').value = g.groupname;
  $('edit-group-desc').value = g.groupdesc;
  $('edit-group-form').dataset.gid = g.id;
  delete $('edit-group-form').dataset.dirty;
}

function renderConvMenu(c) {
  const menu = $('conv-menu');
  const isFriend = c.kind === 'u' && state.friends.has(c.id);
  const g = c.kind === 'g' ? state.groups.get(c.id) : null;
  menu.hidden = !isFriend && !g;
  $('friend-menu').hidden = !isFriend;
  $('group-menu').hidden = !g;
  if (!g) return;
  const owner = ownerOf(g);
  const iOwn = owner === state.me.id;
  // The lists cannot tell admins from members: only the owner, or a member this page saw
  // named admin, gets the managers' items; the server checks every request anyway.
  const iManage = iOwn || isAdmin(g.id, state.me.id);
  $('edit-group-form').hidden = !iManage;
  $('delete-group-btn').hidden = !iOwn;
  // The form is filled when the menu opens on a group, never under the user's typing (a
  // LIST_ACK may come in between).
  if ($('edit-group-form').dataset.gid !== String(g.id)) fillEditForm(g);
  $('members').replaceChildren(...g.users.map((u) => {
    const li = document.createElement('li');
    li.dataset.id = u.id;
    const dot = document.createElement('span');
    dot.className = 'dot' + (u.state === 'online' ? ' online' : '');
    const name = document.createElement('span');
    name.className = 'name';
    const role = u.id === owner ? ' · owner' : isAdmin(g.id, u.id) ? ' · admin' : '';
    name.textContent = u.name + ' (#' + u.id + ')' + role;
    li.append(dot, name);
    const mayKick = u.id !== owner && u.id !== state.me.id && (iOwn || (iManage && !isAdmin(g.id, u.id)));
    if (mayKick) {
      const kick = document.createElement('button');
      kick.className = 'kick link danger';
      kick.textContent = 'Remove';
      kick.onclick = () => {
        if (confirm('Remove ' + u.name + ' (#' + u.id + ') from ' + g.groupname + '?')) send({ msgid: 41, groupid: g.id, id: u.id });
      };
      li.append(kick);
    }
    if (iOwn && u.id !== owner) {
      const admin = isAdmin(g.id, u.id);
      const b = document.createElement('button');
      b.className = 'admin link';
      b.textContent = admin ? 'Unname admin' : 'Name admin';
      b.onclick = () => send({ msgid: 44, groupid: g.id, id: u.id, admin: !admin });
      li.append(b);
    }
    return li;
  }));
}

// `how`: 'fresh' (a LOGIN ack of a new session), 'resume', or undefined (LIST_ACK).
function onLists(f, how) {
  state.friends = new Map((f.friends || []).map((x) => [x.id, x]));
  state.groups = new Map((f.groups || []).map((g) => [g.id, g]));
  for (const x of state.friends.values()) conv(keyOf('u', x.id), x.name).title = x.name;
  for (const g of state.groups.values()) conv(keyOf('g', g.id), g.groupname).title = g.groupname;
  if (Array.isArray(f.read)) readState(f, how);
  renderLists();
  convTitle();
  convAction();
}

// PRESENCE (53): a friend came online or went offline; the online dot moves by itself.
function onPresence(f) {
  const friend = state.friends && state.friends.get(f.id);
  if (!friend) return;
  friend.state = f.state;
  // The same user in this user's groups (members are not told of each other; friends are).
  for (const g of state.groups.values()) for (const u of g.users) if (u.id === f.id) u.state = f.state;
  renderLists();
  convAction();
}

function onNotice(f) {
  if (f.errno === 15 && /resumed on another connection/.test(f.errmsg || '')) {
    // Another tab or device took this session over: do not take it back.
    state.wantOpen = false;
  }
  if (f.errno === 15 && /logged out everywhere|password was changed/.test(f.errmsg || '')) {
    // This session is over (another device logged out everywhere, or changed the password).
    dropSession();
    $('auth-error').textContent = f.errmsg;
  }
  $('action-result').textContent = f.errmsg || '';
}

function onPush(f) {
  const key = f.msgid === 10 ? keyOf('g', f.groupid) : keyOf('u', f.id === state.me.id ? f.to : f.id);
  const title = f.msgid === 10 ? (state.groups.get(f.groupid) || {}).groupname : (f.id === state.me.id ? null : f.name);
  const c = conv(key, title);
  const isNew = addMessage(c, toMsg(f));
  // Joining is announced to nobody: a member this page does not know yet reads the lists again.
  if (isNew && f.msgid === 10 && !memberKnown(f.groupid, f.id)) send({ msgid: 15 });
  if (typeof f.seq === 'number' && f.seq > c.maxSeq) {
    c.maxSeq = f.seq;
    queueAck(c);
  }
  if (isNew && f.id !== state.me.id) {
    stopTyping(c, f.id);
    if (state.syncing) keepSyncing();
    if (state.syncing && c.readSeq > 0) { /* in the ack's count; LIST follows the replay */ }
    else if (c.credit > 0) c.credit--;
    else if (state.current !== key || document.hidden) c.unread++;
    if (state.current === key) scheduleMarkRead();
    renderLists();
  }
}

// ---- read state, receipts, typing (docs/PROTOCOL.md, msgids 54-58) -------------------

// LOGIN ack and LIST_ACK of a server with read marks: own marks, the other side's marks per
// one-to-one, and unread counts. In a conversation with a read mark the count is after it:
// the truth, whatever was pushed or acknowledged. Without one it is after the cursor (what
// was acknowledged), as before read marks: taken at a fresh login only, with the replay
// that follows counted once (the credit), and counted by the page from then on.
function readState(f, how) {
  state.readMarks = true;
  for (const r of f.read) {
    const c = conv(r.groupid ? keyOf('g', r.groupid) : keyOf('u', r.id));
    c.readSeq = Math.max(c.readSeq, r.seq);
  }
  for (const r of f.receipts || []) {
    const c = conv(keyOf('u', r.id));
    c.peerRead = Math.max(c.peerRead, r.read || 0);
    c.peerRecv = Math.max(c.peerRecv, r.recv || 0, c.peerRead);
    paintReceipts(c);
  }
  const counts = new Map((f.unread || []).map((u) => [u.groupid ? keyOf('g', u.groupid) : keyOf('u', u.id), u.count]));
  for (const c of state.convs.values()) {
    const n = counts.get(c.key) || 0;
    if (c.readSeq > 0) {
      c.unread = state.current === c.key && !document.hidden ? 0 : n;
      c.credit = 0;
    } else if (how === 'fresh') {
      c.unread = n;
      c.credit = n;
    }
  }
  scheduleMarkRead();
}

// After a login the server replays what the session has not received, beside its answers
// and with no end marker: pushes in read-marked conversations are in the ack's counts and
// are not counted again until the replay has been quiet for a while; then LIST once.
function startSync() {
  state.syncing = true;
  state.syncStart = Date.now();
  keepSyncing();
}

function keepSyncing() {
  clearTimeout(state.syncTimer);
  const left = Math.max(0, Math.min(SYNC_QUIET_MS, state.syncStart + SYNC_MAX_MS - Date.now()));
  state.syncTimer = setTimeout(() => {
    state.syncing = false;
    flushAcks();
    send({ msgid: 15 });
  }, left);
}

function scheduleMarkRead() {
  if (!state.readMarks || state.markTimer) return;
  state.markTimer = setTimeout(() => { state.markTimer = null; markRead(); }, MARK_READ_DELAY_MS);
}

// The conversation on screen, in a visible tab, is read up to the highest seq it holds.
function markRead() {
  const c = state.current && state.convs.get(state.current);
  if (!c || document.hidden || !state.loggedIn) return;
  if (c.unread) { c.unread = 0; renderLists(); }
  if (c.maxSeq <= c.readSeq) return;
  const req = c.kind === 'u' ? { msgid: 54, id: c.id, seq: c.maxSeq } : { msgid: 54, groupid: c.id, seq: c.maxSeq };
  if (send(req)) c.readSeq = c.maxSeq;
}

// RECEIPT (55): this user's own read mark from another device; the other side of a
// one-to-one read or received it; a member read this user's group messages.
function onReceipt(f) {
  const c = state.convs.get(f.groupid ? keyOf('g', f.groupid) : keyOf('u', f.id));
  if (!c || typeof f.seq !== 'number') return;
  if (f.reader === state.me.id) {
    if (f.what !== 'read') return;
    c.readSeq = Math.max(c.readSeq, f.seq);
    if (c.readSeq >= c.maxSeq) c.unread = 0;
    else send({ msgid: 15 }); // read up to a message this page has not seen: the server counts
    renderLists();
  } else if (c.kind === 'u') {
    if (f.what === 'read') c.peerRead = Math.max(c.peerRead, f.seq);
    c.peerRecv = Math.max(c.peerRecv, f.seq);
    paintReceipts(c);
  } else if (f.what === 'read') {
    c.reads.set(f.reader, Math.max(c.reads.get(f.reader) || 0, f.seq));
    paintReceipts(c);
  }
}

// READS_ACK (57): how far each member read the group (asked when it is opened).
function onReads(f) {
  if (f.errno !== 0) return;
  const c = state.convs.get(f.groupid ? keyOf('g', f.groupid) : keyOf('u', f.id));
  if (!c) return;
  if (c.kind === 'g' && (f.reads || []).some((r) => !memberKnown(c.id, r.id))) send({ msgid: 15 });
  for (const r of f.reads || []) {
    if (r.id === state.me.id) continue;
    if (c.kind === 'g') c.reads.set(r.id, Math.max(c.reads.get(r.id) || 0, r.read || 0));
    else { c.peerRead = Math.max(c.peerRead, r.read || 0); c.peerRecv = Math.max(c.peerRecv, r.recv || 0, c.peerRead); }
  }
  paintReceipts(c);
}

// How a receipt shows after an own message's time ('read by N' shows as '✓ read by N').
const RECEIPT_TEXT = { sent: '✓', delivered: '✓✓', read: '✓✓ read' };

function memberKnown(gid, id) {
  const g = state.groups.get(gid);
  return !g || g.users.some((u) => u.id === id);
}

function paintReceipts(c) {
  for (const m of c.order) if (m.from === state.me.id) paint(m);
}

// What an own message's meta says: one-to-one sent / delivered / read, group "read by N".
function receiptOf(m) {
  const c = m.key && state.convs.get(m.key);
  if (!c || m.from !== state.me.id || m.state !== 'acked' || typeof m.seq !== 'number') return null;
  if (c.kind === 'u') return c.peerRead >= m.seq ? 'read' : c.peerRecv >= m.seq ? 'delivered' : 'sent';
  let n = 0;
  for (const [id, seq] of c.reads) if (id !== state.me.id && seq >= m.seq) n++;
  return n ? 'read by ' + n : 'sent';
}

// TYPING (58): someone types in a conversation; shown for a while unless refreshed.
function onTyping(f) {
  if (f.id === state.me.id) return;
  const c = state.convs.get(f.groupid ? keyOf('g', f.groupid) : keyOf('u', f.id));
  if (!c) return;
  clearTimeout(c.typing.get(f.id));
  if (f.state === 'typing') c.typing.set(f.id, setTimeout(() => stopTyping(c, f.id), TYPING_SHOW_MS));
  else c.typing.delete(f.id);
  renderTyping();
}

function stopTyping(c, id) {
  if (!c.typing.has(id)) return;
  clearTimeout(c.typing.get(id));
  c.typing.delete(id);
  renderTyping();
}

function renderTyping() {
  const c = state.current && state.convs.get(state.current);
  const names = c ? [...c.typing.keys()].map((id) => nameOf(c, id)) : [];
  $('typing').textContent = names.length === 0 ? '' : names.join(', ') + (names.length === 1 ? ' is typing…' : ' are typing…');
}

function nameOf(c, id) {
  if (c.kind === 'u') return c.title;
  const g = state.groups.get(c.id);
  const u = g && g.users.find((x) => x.id === id);
  return u ? u.name : '#' + id;
}

// This user types in the box: "typing" at most every few seconds, "paused" when it stops.
// Typing again right after a "paused" (e.g. the next message) would be dropped by the
// server's limit: it is sent as soon as the server takes it.
function typed() {
  const c = state.current && state.convs.get(state.current);
  if (!c || !state.readMarks) return;
  if (state.typingKey && state.typingKey !== c.key) sendPaused();
  const since = Date.now() - state.typingLast;
  if (since >= TYPING_EVERY_MS) sendTyping(c);
  else if (!state.typingOn && !state.typingLater) {
    state.typingLater = setTimeout(() => {
      state.typingLater = null;
      if (state.current === c.key && $('composer-input').value !== '') sendTyping(c);
    }, Math.max(0, TYPING_SERVER_MS - since));
  }
  clearTimeout(state.pauseTimer);
  state.pauseTimer = setTimeout(sendPaused, TYPING_PAUSE_MS);
}

function sendTyping(c) {
  send(typingFrame(c, 'typing'));
  state.typingLast = Date.now();
  state.typingOn = true;
  state.typingKey = c.key;
}

function sendPaused() {
  clearTimeout(state.pauseTimer);
  clearTimeout(state.typingLater);
  state.typingLater = null;
  const c = state.typingKey && state.convs.get(state.typingKey);
  if (c && state.typingOn) send(typingFrame(c, 'paused'));
  state.typingOn = false;
  state.typingKey = null;
}

function typingFrame(c, what) {
  return c.kind === 'u' ? { msgid: 58, id: c.id, state: what } : { msgid: 58, groupid: c.id, state: what };
}

function toMsg(f) {
  return { mid: f.mid, seq: f.seq, from: f.id, name: f.name, text: f.msg, time: f.time, state: 'acked' };
}

function onAck(f) {
  if (f.re === 6 || f.re === 10) return onChatAck(f);
  if (f.re === 19) {
    const key = state.history.shift();
    const c = key && state.convs.get(key);
    if (c) { c.loading = false; historyStatus(c, f.errmsg || 'history unavailable'); }
    return;
  }
  const out = $('action-result');
  if (f.re === 7 || f.re === 8 || f.re === 9) {
    if (f.errno === 0) {
      out.textContent = f.re === 7 ? 'Friend added.' : f.re === 8 ? 'Group created: id ' + f.groupid + '.' : 'Joined the group.';
      if (f.re === 8) out.dataset.groupid = f.groupid;
      send({ msgid: 15 });
    } else {
      out.textContent = f.errmsg || 'refused';
    }
  } else if (f.re === 30 || f.re === 31 || f.re === 40 || f.re === 45 || f.re === 46) {
    if (f.errno !== 0) { out.textContent = f.errmsg || 'refused'; return; }
    out.textContent = { 30: 'Blocked.', 31: 'Unblocked.', 40: 'You left the group.', 45: 'Password changed.', 46: 'Account deleted.' }[f.re];
    if (f.re === 45 && f.resume) { state.token = f.resume; sessionStorage.setItem('chat.token', f.resume); }
    if (f.re === 46) { dropSession(); $('auth-error').textContent = 'Your account was deleted.'; return; }
    send({ msgid: 32 });
    send({ msgid: 15 });
  } else if (f.re === 52) {
    if (f.errno !== 0) { out.textContent = f.errmsg || 'refused'; return; }
    dropSession();
    $('auth-error').textContent = 'Logged out on every device.';
  } else if (f.re === 50) {
    state.finds.shift(); // a name nobody has (a found one is answered on FIND_USER_ACK)
    out.textContent = f.errno === 5 ? 'Nobody has that name.' : f.errmsg || 'refused';
  } else if (f.re === 36) {
    const accept = state.answers.shift();
    if (f.errno !== 0) { out.textContent = f.errmsg || 'refused'; send({ msgid: 38 }); return; }
    out.textContent = accept ? 'You are friends now.' : 'Request declined.';
    send({ msgid: 15 });
  } else if (CONTROL_DONE[f.re]) {
    if (f.errno !== 0) { out.textContent = f.errmsg || 'refused'; return; }
    out.textContent = CONTROL_DONE[f.re];
    if (f.re === 34) send({ msgid: 32 });
    if (f.re === 35) send({ msgid: 38 });
    send({ msgid: 15 });
  } else if (f.errno !== 0) {
    out.textContent = f.errmsg || 'refused';
  }
}

// What the ACK of a control request (docs/PROTOCOL.md, "Users in control") says on success.
const CONTROL_DONE = {
  34: 'Saved: who may write to you.',
  35: 'Friend request sent.',
  37: 'Friend removed.',
  41: 'Member removed.',
  42: 'Group changed.',
  43: 'Group deleted.',
  44: 'Admins changed.',
};

function onChatAck(f) {
  const p = state.pending.get(f.cid);
  if (!p) return;
  const c = state.convs.get(p.key);
  if (f.errno === 0) {
    state.pending.delete(f.cid);
    p.msg.mid = f.mid;
    p.msg.seq = f.seq;
    if (c.byMid.has(f.mid)) {
      removeMessage(c, p.msg); // history brought it already
    } else {
      c.byMid.set(f.mid, p.msg);
      p.msg.state = 'acked';
      paint(p.msg);
    }
    if (f.seq > c.maxSeq) { c.maxSeq = f.seq; queueAck(c); }
  } else if (f.errno === 13 || f.errno === 14) {
    // Unavailable or rate limited: the same cid again a little later.
    setTimeout(() => transmit(f.cid, p), 1000);
  } else {
    state.pending.delete(f.cid);
    p.msg.state = 'failed';
    p.msg.title = f.errmsg || 'refused';
    paint(p.msg);
  }
}

function onHistory(f) {
  const key = state.history.shift();
  const c = key && state.convs.get(key);
  if (!c) return;
  c.loading = false;
  c.loaded = true;
  const list = $('messages');
  const fromBottom = list.scrollHeight - list.scrollTop;
  for (const m of f.messages || []) {
    addMessage(c, toMsg(m));
    if (typeof m.seq === 'number' && m.seq > c.maxSeq) { c.maxSeq = m.seq; queueAck(c); }
  }
  if (f.messages && f.messages.length) {
    const first = f.messages[0].mid;
    if (c.oldest === null || first < c.oldest) c.oldest = first;
  }
  c.more = !!f.more;
  if (state.current === key) { list.scrollTop = list.scrollHeight - fromBottom; scheduleMarkRead(); }
  historyStatus(c, c.more ? '' : 'beginning of the conversation');
}

function historyStatus(c, text) {
  if (state.current === c.key) $('history-status').textContent = text;
}

// ---- messages ------------------------------------------------------------------------

// Adds a message once (by mid), in mid order (the conversation's seq order). True if new.
function addMessage(c, m) {
  if (c.byMid.has(m.mid)) return false;
  m.key = c.key;
  c.byMid.set(m.mid, m);
  let i = c.order.length;
  while (i > 0 && (c.order[i - 1].mid === undefined || c.order[i - 1].mid > m.mid)) i--;
  c.order.splice(i, 0, m);
  if (state.current === c.key) {
    const list = $('message-list');
    const atBottom = isAtBottom();
    const next = c.order[i + 1];
    list.insertBefore(element(m), next && next.el ? next.el : null);
    if (atBottom || i === c.order.length - 1) scrollDown();
  }
  return true;
}

function removeMessage(c, m) {
  const i = c.order.indexOf(m);
  if (i >= 0) c.order.splice(i, 1);
  if (m.el) m.el.remove();
}

function element(m) {
  const li = document.createElement('li');
  li.className = 'msg' + (m.from === state.me.id ? ' mine' : '');
  const from = document.createElement('div');
  from.className = 'from';
  from.textContent = m.from === state.me.id ? '' : m.name || '#' + m.from;
  const text = document.createElement('div');
  text.className = 'text';
  text.textContent = m.text; // never innerHTML: a message is text
  const meta = document.createElement('div');
  meta.className = 'meta';
  li.append(from, text, meta);
  m.el = li;
  paint(m);
  return li;
}

function paint(m) {
  if (!m.el) return;
  m.el.dataset.state = m.state;
  if (m.mid !== undefined) m.el.dataset.mid = m.mid;
  m.el.querySelector('.meta').textContent = m.time ? m.time.slice(11, 16) : '';
  if (m.title) m.el.title = m.title;
  const receipt = receiptOf(m);
  if (receipt) {
    m.el.dataset.receipt = receipt;
    const r = document.createElement('span');
    r.className = 'receipt';
    r.textContent = ' · ' + (RECEIPT_TEXT[receipt] || '✓ ' + receipt);
    m.el.querySelector('.meta').append(r);
  } else {
    delete m.el.dataset.receipt;
  }
}

function isAtBottom() {
  const l = $('messages');
  return l.scrollHeight - l.scrollTop - l.clientHeight < 40;
}

function scrollDown() { const l = $('messages'); l.scrollTop = l.scrollHeight; }

function queueAck(c) {
  state.acks.set(c.key, c.maxSeq);
  if (state.acks.size >= 50) return flushAcks();
  if (!state.ackTimer) state.ackTimer = setTimeout(flushAcks, ACK_DELAY_MS);
}

function flushAcks() {
  clearTimeout(state.ackTimer);
  state.ackTimer = null;
  if (!state.acks.size || !state.loggedIn) return;
  const acks = [];
  for (const [key, seq] of state.acks) {
    const [kind, id] = key.split(':');
    acks.push(kind === 'u' ? { id: Number(id), seq } : { groupid: Number(id), seq });
  }
  if (send({ msgid: 18, acks })) state.acks.clear();
}

function loadHistory(c) {
  if (c.loading || !state.loggedIn || (c.loaded && !c.more)) return;
  const req = { msgid: 19, limit: HISTORY_PAGE };
  if (c.kind === 'u') req.id = c.id; else req.groupid = c.id;
  if (c.loaded && c.oldest !== null) req.before = c.oldest;
  if (send(req)) {
    c.loading = true;
    state.history.push(c.key);
    historyStatus(c, 'loading…');
  }
}

function sendChat(text) {
  const c = state.convs.get(state.current);
  if (!c || !text.trim()) return;
  const cid = 'w' + Date.now().toString(36) + '-' + (state.cidSeq++);
  const now = new Date();
  const hhmm = String(now.getHours()).padStart(2, '0') + ':' + String(now.getMinutes()).padStart(2, '0');
  const msg = { key: c.key, from: state.me.id, name: state.me.name, text, state: 'pending', time: '0000-00-00 ' + hhmm };
  const p = { key: c.key, text, msg };
  state.pending.set(cid, p);
  c.order.push(msg); // pending ones stay at the end until acknowledged
  $('message-list').append(element(msg));
  scrollDown();
  transmit(cid, p);
}

function transmit(cid, p) {
  const c = state.convs.get(p.key);
  if (!state.loggedIn) return; // sent again after the resume
  send(c.kind === 'u' ? { msgid: 6, to: c.id, msg: p.text, cid } : { msgid: 10, groupid: c.id, msg: p.text, cid });
}

// ---- views ---------------------------------------------------------------------------

function renderLists() {
  const row = (c, online) => {
    const li = document.createElement('li');
    li.dataset.key = c.key;
    if (state.current === c.key) li.setAttribute('aria-current', 'true');
    const dot = document.createElement('span');
    dot.className = 'dot' + (online ? ' online' : '');
    dot.title = online ? 'online' : 'offline';
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = c.title;
    const badge = document.createElement('span');
    badge.className = 'badge';
    badge.textContent = c.unread > 0 ? String(c.unread) : '';
    li.append(dot, name, badge);
    li.onclick = () => openConv(c.key);
    return li;
  };
  const friends = [...state.convs.values()].filter((c) => c.kind === 'u');
  $('friends').replaceChildren(...friends.map((c) => row(c, (state.friends.get(c.id) || {}).state === 'online')));
  const groups = [...state.convs.values()].filter((c) => c.kind === 'g');
  $('groups').replaceChildren(...groups.map((c) => {
    const g = state.groups.get(c.id);
    const online = g ? g.users.filter((u) => u.state === 'online' && u.id !== state.me.id).length : 0;
    const li = row(c, online > 0);
    li.querySelector('.name').textContent = c.title + (g ? ' · ' + g.users.length + ' members, ' + online + ' online' : '');
    return li;
  }));
}

function openConv(key) {
  const c = state.convs.get(key);
  if (!c) return;
  state.current = key;
  c.unread = 0;
  c.credit = 0;
  $('conv-menu').open = false;
  convTitle();
  $('message-list').replaceChildren(...c.order.map((m) => (m.el ? m.el : element(m))));
  $('history-status').textContent = c.loaded && !c.more ? 'beginning of the conversation' : '';
  $('composer-input').disabled = false;
  $('send-btn').disabled = false;
  $('app').classList.add('in-conv');
  renderLists();
  convAction();
  renderTyping();
  scrollDown();
  if (!c.loaded) loadHistory(c);
  if (state.readMarks && c.kind === 'g') send({ msgid: 56, groupid: c.id });
  scheduleMarkRead();
  $('composer-input').focus();
}

function dropSession() {
  state.token = null;
  state.loggedIn = false;
  state.wantOpen = false;
  sessionStorage.removeItem('chat.token');
  $('app').hidden = true;
  $('auth').hidden = false;
}

// ---- wiring --------------------------------------------------------------------------

$('login-form').onsubmit = (e) => {
  e.preventDefault();
  $('auth-error').textContent = '';
  // A user id, or the account's exact name (the extension's LOGIN by name).
  const who = $('login-id').value.trim();
  const id = /^[0-9]+$/.test(who) ? Number(who) : null;
  const password = $('login-password').value;
  if (!who) { $('auth-error').textContent = 'Type your user id or name.'; return; }
  if (state.me && (id !== null ? state.me.id !== id : state.me.name !== who)) {
    state.convs.clear(); state.pending.clear(); state.current = null;
  }
  const req = id !== null ? { msgid: 1, id, password, ext: 1 } : { msgid: 1, name: who, password, ext: 1 };
  withSocket(() => { state.loginReq = 'login'; send(req); });
};

$('reg-form').onsubmit = (e) => {
  e.preventDefault();
  $('auth-error').textContent = '';
  const name = $('reg-name').value.trim();
  const password = $('reg-password').value;
  withSocket(() => send({ msgid: 4, name, password, ext: 1 }));
};

$('add-friend-form').onsubmit = (e) => {
  e.preventDefault();
  // An id, or a name: FIND_USER (50) first, then ADD_FRIEND with the id it answers (case 51).
  const who = $('add-friend-id').value.trim();
  if (/^[0-9]+$/.test(who)) send({ msgid: 7, friendid: Number(who) });
  else { state.finds.push('add'); send({ msgid: 50, name: who }); }
  $('add-friend-id').value = '';
};
$('create-group-form').onsubmit = (e) => {
  e.preventDefault();
  send({ msgid: 8, groupname: $('create-group-name').value.trim(), groupdesc: $('create-group-desc').value.trim() || '-' });
  $('create-group-name').value = '';
  $('create-group-desc').value = '';
};
$('join-group-form').onsubmit = (e) => {
  e.preventDefault();
  send({ msgid: 9, groupid: Number($('join-group-id').value.trim()) });
  $('join-group-id').value = '';
};

$('conv-action').onclick = () => {
  const c = state.current && state.convs.get(state.current);
  if (!c) return;
  if (c.kind === 'g') {
    if (!confirm('Leave ' + c.title + '? You will get no more of its messages.')) return;
    send({ msgid: 40, groupid: c.id });
    forgetConv(c.key);
  } else if (state.blocked.has(c.id)) {
    send({ msgid: 31, id: c.id });
  } else {
    if (!confirm('Block ' + c.title + '? They will not be able to write to you.')) return;
    send({ msgid: 30, id: c.id });
  }
};
$('request-form').onsubmit = (e) => {
  e.preventDefault();
  // An id, or a name: FIND_USER (50) first, then FRIEND_REQUEST with the id it answers.
  const who = $('request-who').value.trim();
  if (/^[0-9]+$/.test(who)) send({ msgid: 35, id: Number(who) });
  else { state.finds.push('request'); send({ msgid: 50, name: who }); }
  $('request-who').value = '';
};
// Members who joined are announced to nobody: the lists are read again when a menu opens.
$('conv-menu').ontoggle = () => {
  if (!$('conv-menu').open) return;
  send({ msgid: 15 });
  const c = state.current && state.convs.get(state.current);
  const g = c && c.kind === 'g' && state.groups.get(c.id);
  if (g) fillEditForm(g);
};
$('writers').onchange = () => send({ msgid: 34, writers: $('writers').value });
$('remove-friend-btn').onclick = () => {
  const c = state.current && state.convs.get(state.current);
  if (!c || c.kind !== 'u') return;
  if (!confirm('Remove ' + c.title + ' from your friends? You leave their list too.')) return;
  send({ msgid: 37, id: c.id });
  forgetConv(c.key);
};
$('edit-group-form').onsubmit = (e) => {
  e.preventDefault();
  const c = state.current && state.convs.get(state.current);
  const g = c && c.kind === 'g' && state.groups.get(c.id);
  if (!g) return;
  const req = { msgid: 42, groupid: g.id };
  const name = $('edit-group-name').value.trim();
  const desc = $('edit-group-desc').value.trim();
  if (name && name !== g.groupname) req.groupname = name;
  if (desc && desc !== g.groupdesc) req.groupdesc = desc;
  if (req.groupname === undefined && req.groupdesc === undefined) return;
  send(req);
  delete $('edit-group-form').dataset.dirty;
  $('edit-group-name').blur();
  $('edit-group-desc').blur();
};
$('edit-group-form').oninput = () => { $('edit-group-form').dataset.dirty = '1'; };
$('delete-group-btn').onclick = () => {
  const c = state.current && state.convs.get(state.current);
  if (!c || c.kind !== 'g') return;
  if (!confirm('Delete ' + c.title + ' for every member, with all its messages? This cannot be undone.')) return;
  send({ msgid: 43, groupid: c.id });
};
$('passwd-form').onsubmit = (e) => {
  e.preventDefault();
  if (!confirm('Change your password? Your other sessions will end.')) return;
  send({ msgid: 45, password: $('passwd-old').value, newpassword: $('passwd-new').value });
  $('passwd-old').value = '';
  $('passwd-new').value = '';
};
$('logout-all-btn').onclick = () => {
  if (!confirm('Log out on every device of this account, this one included?')) return;
  flushAcks();
  send({ msgid: 52 });
};
$('delete-account-btn').onclick = () => {
  const password = prompt('Delete your account for good? Type your password to confirm.');
  if (!password) return;
  send({ msgid: 46, password });
};

$('composer').onsubmit = (e) => {
  e.preventDefault();
  const input = $('composer-input');
  sendPaused();
  sendChat(input.value);
  input.value = '';
};
$('composer-input').oninput = typed;
$('composer-input').onkeydown = (e) => {
  if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); $('composer').requestSubmit(); }
};
$('messages').onscroll = () => {
  const c = state.convs.get(state.current);
  if (c && $('messages').scrollTop < 60 && c.loaded && c.more) loadHistory(c);
};
$('back-btn').onclick = () => { $('app').classList.remove('in-conv'); };
$('logout-btn').onclick = () => {
  flushAcks();
  send({ msgid: 3 });
  dropSession();
  state.convs.clear();
  state.pending.clear();
  state.current = null;
  state.incoming.clear();
  state.outgoing.clear();
  state.admins.clear();
  renderRequests();
  $('message-list').replaceChildren();
  // Let go of the socket now, not when its close event comes: a login typed before then
  // waited for that socket (connect() saw one) and was lost, the page still saying online.
  const ws = state.ws;
  state.ws = null;
  setConn('offline');
  if (ws) ws.close();
};
window.addEventListener('beforeunload', flushAcks);
document.addEventListener('visibilitychange', () => {
  if (!document.hidden && state.current) { const c = state.convs.get(state.current); if (c) { c.unread = 0; renderLists(); } }
  if (!document.hidden) scheduleMarkRead();
});

// A page reloaded within its tab's session resumes without the password.
if (state.token) { state.wantOpen = true; connect(); }
