// Helpers of the browser scenarios: Debian's headless Chromium through playwright-core, and
// the steps a person takes in the web client. A scenario prints `STEP …` lines as it goes,
// `ASK …` when it needs the Rust test to act (the answer comes on stdin), and `PASS` last.
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { basename, join } from 'node:path';

export const PASSWORD = 'pw-web-1';
const TIMEOUT = 20000;

export function step(text) { console.log('STEP ' + text); }

const stdin = createInterface({ input: process.stdin });
const answers = [];
const waiting = [];
stdin.on('line', (line) => { const w = waiting.shift(); if (w) w(line); else answers.push(line); });

/** Asks the test to do something and waits for its one-line answer. */
export function ask(question) {
  console.log('ASK ' + question);
  return answers.length ? Promise.resolve(answers.shift()) : new Promise((resolve) => waiting.push(resolve));
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking'],
  });
}

/** A person at a browser: their own context (own sessionStorage), one page at `url`. */
/** Everyone a scenario made, for what [`run`] prints when it fails. */
const people = [];

export async function person(browser, url, label) {
  // bypassCSP: Playwright's waitForFunction evaluates strings, which the page's policy forbids.
  // It also means the markup test checks the rendering itself (textContent), not the policy.
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const user = { page, label, dialogs: [], errors: [] };
  // Dialogs are dismissed, unless the scenario set `user.answer` (true: OK; a string: typed into a prompt).
  page.on('dialog', async (d) => {
    user.dialogs.push(d.message());
    if (user.answer === undefined) await d.dismiss();
    else await d.accept(user.answer === true ? undefined : String(user.answer));
  });
  page.on('pageerror', (e) => user.errors.push(String(e)));
  // The WebSocket frames each way (the last ones), printed if the scenario fails.
  user.frames = [];
  user.logins = 0; // LOGIN acks that said yes
  page.on('websocket', (ws) => {
    const keep = (dir) => (f) => {
      user.frames.push(`${new Date().toISOString().slice(11, 23)} ${dir} ${String(f.payload).slice(0, 200)}`);
      if (user.frames.length > 60) user.frames.shift();
      if (dir !== '<') return;
      try {
        const frame = JSON.parse(String(f.payload));
        if (frame.msgid === 2 && frame.errno === 0) user.logins++;
      } catch { /* not JSON: the page's business */ }
    };
    ws.on('framesent', keep('>'));
    ws.on('framereceived', keep('<'));
    ws.on('close', () => user.frames.push(`${new Date().toISOString().slice(11, 23)} closed`));
  });
  people.push(user);
  await page.goto(url);
  return user;
}

export async function register(user, name) {
  const { page } = user;
  await page.fill('#reg-name', name);
  await page.fill('#reg-password', PASSWORD);
  await page.click('#reg-btn');
  await page.waitForSelector('#reg-result[data-id]');
  user.id = Number(await page.getAttribute('#reg-result', 'data-id'));
  user.name = name;
  return user.id;
}

export async function login(user, id = user.id) {
  const { page } = user;
  for (let attempt = 0; ; attempt++) {
    await page.evaluate(() => { document.getElementById('auth-error').textContent = ''; });
    await page.fill('#login-id', String(id));
    await page.fill('#login-password', PASSWORD);
    await page.click('#login-btn');
    await page.waitForFunction(() => document.querySelector('#conn[data-state="online"]')
      || document.getElementById('auth-error').textContent !== '');
    const error = await page.textContent('#auth-error');
    if (!error) break;
    // A logout elsewhere may still be releasing the account.
    if (attempt >= 10 || !/using/.test(error)) throw new Error(`${user.label}: login ${id}: ${error}`);
    await page.waitForTimeout(300);
  }
  user.id = id;
}

async function action(user, input, value, button) {
  const { page } = user;
  if (!(await page.isVisible(input))) await page.click('details.actions summary');
  await page.evaluate(() => { document.getElementById('action-result').textContent = ''; });
  await page.fill(input, String(value));
  await page.click(button);
  await page.waitForFunction(() => document.getElementById('action-result').textContent !== '');
  return page.textContent('#action-result');
}

export async function addFriend(user, id) {
  const text = await action(user, '#add-friend-id', id, '#add-friend-btn');
  if (text !== 'Friend added.') throw new Error(`${user.label}: add friend ${id}: ${text}`);
  await user.page.waitForSelector(`#friends li[data-key="u:${id}"]`);
}

export async function createGroup(user, name) {
  const { page } = user;
  if (!(await page.isVisible('#create-group-name'))) await page.click('details.actions summary');
  await page.fill('#create-group-desc', 'made in a browser');
  const text = await action(user, '#create-group-name', name, '#create-group-btn');
  const gid = Number(await page.getAttribute('#action-result', 'data-groupid'));
  if (!gid) throw new Error(`${user.label}: create group: ${text}`);
  await page.waitForSelector(`#groups li[data-key="g:${gid}"]`);
  return gid;
}

export async function joinGroup(user, gid) {
  const text = await action(user, '#join-group-id', gid, '#join-group-btn');
  if (text !== 'Joined the group.') throw new Error(`${user.label}: join group ${gid}: ${text}`);
  await user.page.waitForSelector(`#groups li[data-key="g:${gid}"]`);
}

export async function open(user, key) {
  await user.page.click(`li[data-key="${key}"]`);
  await user.page.waitForFunction((k) => document.querySelector(`li[data-key="${k}"]`)?.getAttribute('aria-current') === 'true', key);
}

/** Sends `text` in the open conversation; waits until the server acknowledged it (✓). */
export async function say(user, text, { acked = true } = {}) {
  const { page } = user;
  await page.fill('#composer-input', text);
  await page.press('#composer-input', 'Enter');
  if (acked) await waitState(user, text, 'acked');
}

export async function waitState(user, text, state, timeout = TIMEOUT) {
  await user.page.waitForFunction(([t, s]) => [...document.querySelectorAll('#message-list .msg')]
    .some((m) => m.querySelector('.text').textContent === t && m.dataset.state === s), [text, state], { timeout });
}

/** Waits until every message of the user's in the open conversation is acknowledged. */
export async function waitAllAcked(user) {
  await user.page.waitForFunction(() => [...document.querySelectorAll('#message-list .msg.mine')]
    .every((m) => m.dataset.state === 'acked'));
}

/** Waits until the open conversation shows `text`. */
export async function sees(user, text, timeout = TIMEOUT) {
  await user.page.waitForFunction((t) => [...document.querySelectorAll('#message-list .text')]
    .some((e) => e.textContent === t), text, { timeout });
}

/** How many times the open conversation shows exactly `text`. */
export async function count(user, text) {
  return user.page.evaluate((t) => [...document.querySelectorAll('#message-list .text')]
    .filter((e) => e.textContent === t).length, text);
}

export async function unread(user, key) {
  return user.page.evaluate((k) => document.querySelector(`li[data-key="${k}"] .badge`)?.textContent ?? '', key);
}

export async function screenshot(user, name) {
  const path = join(process.env.SCREENSHOTS || '.', name);
  await user.page.screenshot({ path });
  step(`screenshot ${path}`);
}

export function expect(ok, what) {
  if (!ok) throw new Error('expected: ' + what);
}

/** Runs a scenario: PASS and exit 0, or the error and exit 1 (the browser closed either way). */
export async function run(scenario) {
  const browser = await launch();
  let code = 0;
  try {
    await scenario(browser);
    console.log('PASS');
  } catch (e) {
    // What each page last sent and received, and what it shows: the reason is usually there.
    for (const u of people) {
      console.log(`FRAMES of ${u.label} (${u.id ?? '?'}):`);
      for (const f of u.frames) console.log('  ' + f);
      const name = `failed-${basename(process.argv[1] || 'scenario', '.mjs')}-${u.label.replace(/[^a-z0-9]+/gi, '-')}.png`;
      const shot = join(process.env.SCREENSHOTS || '.', name);
      await u.page.screenshot({ path: shot }).then(() => console.log('  screenshot ' + shot), () => {});
    }
    console.log('FAIL ' + (e && e.stack ? e.stack : e));
    code = 1;
  } finally {
    await browser.close().catch(() => {});
    stdin.close();
  }
  process.exit(code);
}

/**
 * A person registered and logged in through `url` (nginx) on another node than `avoid`: the
 * test answers `ASK node <user id>` with the node the user last logged in on; one that landed
 * on `avoid`'s node logs out and in again (a new WebSocket: round robin moves it on).
 */
export async function personOnNode(browser, url, label, name, avoid = null) {
  const user = await person(browser, url, label);
  await register(user, name);
  await login(user);
  for (let attempt = 0; attempt < 8; attempt++) {
    user.node = await ask(`node ${user.id}`);
    if (avoid === null || user.node !== avoid) return user;
    await logoutAndLogin(user);
  }
  throw new Error(`${label}: never landed on another node than ${avoid}`);
}

/**
 * Logs out and logs in again at once, as a quick hand does: the login is submitted before
 * the old socket has closed. Until the page let go of a logout's socket at once, that login
 * was lost (the page waited for the closing socket) while the status still said online.
 */
export async function logoutAndLogin(user) {
  const { page } = user;
  const logins = user.logins;
  await page.evaluate(([id, password]) => {
    document.getElementById('logout-btn').click();
    document.getElementById('login-id').value = String(id);
    document.getElementById('login-password').value = password;
    document.getElementById('login-btn').click();
  }, [user.id, PASSWORD]);
  const deadline = Date.now() + TIMEOUT;
  while (user.logins === logins) {
    if (Date.now() > deadline) throw new Error(`${user.label}: logged out and in again: no LOGIN ack came`);
    await page.waitForTimeout(50);
  }
  await page.waitForSelector('#conn[data-state="online"]');
}

/** Waits until the page's status line (`#action-result`) contains `text`. */
export async function result(user, text) {
  await user.page.waitForFunction((t) => document.getElementById('action-result').textContent.includes(t), text);
}

/** Opens the open conversation's menu (remove a friend; a group's members, rename, delete). */
export async function openMenu(user) {
  if (!(await user.page.evaluate(() => document.getElementById('conv-menu').open))) await user.page.click('#conv-menu summary');
}
