// Two browser users on different nodes (URL_A, URL_B: each node's own listener) register,
// befriend, chat one-to-one and in a group, and see each other's messages; a message that
// looks like HTML shows as text and runs nothing; screenshots at desktop and phone width.
import { run, waitAllAcked, person, register, login, addFriend, createGroup, joinGroup, open, say, sees, count, unread,
  screenshot, expect, step } from './lib.mjs';

const suffix = Date.now().toString(36).slice(-6) + Math.floor(Math.random() * 1e4);

await run(async (browser) => {
  const alice = await person(browser, process.env.URL_A, 'alice');
  const bob = await person(browser, process.env.URL_B, 'bob');
  await register(alice, 'alice-' + suffix);
  await register(bob, 'bob-' + suffix);
  await login(alice);
  await login(bob);
  step(`alice ${alice.id} on node a, bob ${bob.id} on node b, logged in`);

  await addFriend(alice, bob.id);
  await addFriend(bob, alice.id);
  // Online state, as the friend list shows it.
  await alice.page.waitForSelector(`#friends li[data-key="u:${bob.id}"] .dot.online`);
  await bob.page.waitForSelector(`#friends li[data-key="u:${alice.id}"] .dot.online`);
  step('friends, each online in the other\'s list');

  await open(alice, `u:${bob.id}`);
  await say(alice, 'hello bob, from node a');
  await bob.page.waitForFunction((k) => document.querySelector(`li[data-key="${k}"] .badge`)?.textContent === '1', `u:${alice.id}`);
  step('bob has 1 unread from alice');
  await open(bob, `u:${alice.id}`);
  await sees(bob, 'hello bob, from node a');
  expect((await unread(bob, `u:${alice.id}`)) === '', 'opening the conversation clears its unread count');
  await say(bob, 'hi alice, from node b');
  await sees(alice, 'hi alice, from node b');
  step('one-to-one both ways across nodes');

  const evil = '<img src=x onerror=alert(1)>';
  await say(alice, evil);
  await sees(bob, evil);
  await bob.page.waitForTimeout(500);
  for (const u of [alice, bob]) {
    expect(u.dialogs.length === 0, `${u.label}: no dialog (got ${JSON.stringify(u.dialogs)})`);
    expect((await u.page.locator('#message-list img').count()) === 0, `${u.label}: no <img> element in the conversation`);
    expect((await count(u, evil)) === 1, `${u.label}: the markup shows once, as text`);
  }
  step('markup shows as text and runs nothing');

  const gid = await createGroup(alice, 'team-' + suffix);
  await joinGroup(bob, gid);
  await open(alice, `g:${gid}`);
  await open(bob, `g:${gid}`);
  await say(alice, 'hello team');
  await sees(bob, 'hello team');
  await say(bob, 'team: bob here');
  await sees(alice, 'team: bob here');
  step(`group ${gid}: both ways`);

  // History: a fresh page for bob (another context) logs in and reads the conversation back.
  const bob2 = await person(browser, process.env.URL_A, 'bob, again');
  await bob.page.click('#logout-btn');
  await open(alice, `u:${bob.id}`);
  await say(alice, 'while you were away');
  await login(bob2, bob.id);
  // The LOGIN ack's unread count, and the replay that follows it counted once, not twice.
  await bob2.page.waitForFunction((k) => document.querySelector(`li[data-key="${k}"] .badge`)?.textContent === '1', `u:${alice.id}`);
  await bob2.page.waitForTimeout(500);
  expect((await unread(bob2, `u:${alice.id}`)) === '1', 'one unread message after the login');
  await open(bob2, `u:${alice.id}`);
  await sees(bob2, 'while you were away');
  expect((await count(bob2, 'while you were away')) === 1, 'the replayed message shows once');
  await sees(bob2, 'hello bob, from node a');
  await sees(bob2, 'hi alice, from node b');
  expect((await count(bob2, evil)) === 1, 'history shows each message once');
  step('history after a new login, on the other node');

  await open(alice, `u:${bob.id}`);
  await say(alice, 'a longer message to show how text wraps in the conversation view, with ünïcödé and emoji 🎉');
  await sees(bob2, 'a longer message to show how text wraps in the conversation view, with ünïcödé and emoji 🎉');
  await screenshot(alice, 'conversation-desktop.png');
  await alice.page.setViewportSize({ width: 390, height: 844 });
  await alice.page.waitForTimeout(200);
  expect(await alice.page.isVisible('#composer-input'), 'the composer is visible at phone width');
  expect(!(await alice.page.isVisible('#side')), 'at phone width the conversation takes the screen');
  await screenshot(alice, 'conversation-phone.png');
  await alice.page.click('#back-btn');
  expect(await alice.page.isVisible(`#friends li[data-key="u:${bob.id}"]`), 'back shows the list at phone width');

  // Scrolling back: more messages than one page (30); a fresh page shows the newest page and
  // loads the older ones when scrolled to the top, each once.
  await alice.page.setViewportSize({ width: 1280, height: 800 });
  await open(alice, `u:${bob.id}`);
  for (let i = 1; i <= 35; i++) await say(alice, `n${i}`, { acked: i === 35 });
  await waitAllAcked(alice);
  const bob3 = await person(browser, process.env.URL_B, 'bob, scrolling');
  await bob2.page.click('#logout-btn');
  await login(bob3, bob.id);
  await open(bob3, `u:${alice.id}`);
  await sees(bob3, 'n35');
  expect((await count(bob3, 'n1')) === 0, 'the first page holds only the newest messages');
  for (let tries = 0; tries < 10 && (await count(bob3, 'hello bob, from node a')) === 0; tries++) {
    await bob3.page.evaluate(() => { const m = document.getElementById('messages'); m.scrollTop = 0; m.dispatchEvent(new Event('scroll')); });
    await bob3.page.waitForTimeout(300);
  }
  for (const t of ['hello bob, from node a', 'n1', 'n20', 'n35']) {
    expect((await count(bob3, t)) === 1, `after scrolling back, ${t} shows once`);
  }
  await bob3.page.waitForSelector('#history-status:text("beginning of the conversation")');
  step('history scrolls back page by page');
  for (const u of [alice, bob, bob2, bob3]) expect(u.errors.length === 0, `${u.label}: no script errors: ${u.errors}`);
});
