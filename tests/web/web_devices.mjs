// Issue 20 in the web client: one user (uma) on two devices (two browser contexts, through
// nginx at URL) and a friend (fred) on another node than uma's first device. Both devices
// show fred's messages once; reading on device 1 clears the unread badge on device 2; fred's
// page shows his message delivered, then read; typing on one side shows "… is typing…" on
// the other; the online dots move by themselves when fred logs out and in again.
// A group message shows "read by 1". Screenshots: devices-friend.png, devices-page1.png,
// devices-page2.png, devices-typing.png, devices-group.png.
import { run, personOnNode, person, login, addFriend, createGroup, joinGroup, open, say, sees, count, unread, screenshot,
  expect, step }
  from './lib.mjs';

const suffix = Date.now().toString(36).slice(-6) + Math.floor(Math.random() * 1e4);
const badge = (user, key, text) => user.page.waitForFunction(([k, t]) =>
  (document.querySelector(`li[data-key="${k}"] .badge`)?.textContent ?? '') === t, [key, text]);
const receipt = (user, text, what) => user.page.waitForFunction(([t, w]) => [...document.querySelectorAll('#message-list .msg.mine')]
  .some((m) => m.querySelector('.text').textContent === t && m.dataset.receipt === w), [text, what]);
const typing = (user, text) => user.page.waitForFunction((t) => document.getElementById('typing').textContent === t, text);
const dot = (user, key, online) => user.page.waitForFunction(([k, on]) =>
  document.querySelector(`#friends li[data-key="${k}"] .dot`)?.classList.contains('online') === on, [key, online]);

await run(async (browser) => {
  const uma1 = await personOnNode(browser, process.env.URL, 'uma, device 1', 'uma-' + suffix);
  const fred = await personOnNode(browser, process.env.URL, 'fred', 'fred-' + suffix, uma1.node);
  await addFriend(uma1, fred.id);
  await addFriend(fred, uma1.id);
  const uma2 = await person(browser, process.env.URL, 'uma, device 2');
  await login(uma2, uma1.id);
  const ufred = `u:${fred.id}`;
  const uuma = `u:${uma1.id}`;
  for (const u of [uma1, uma2]) await dot(u, ufred, true);
  step(`uma ${uma1.id} on two devices (first on node ${uma1.node}), fred ${fred.id} on node ${fred.node}`);

  await open(fred, uuma);
  await say(fred, 'first from fred');
  await say(fred, 'second from fred');
  for (const u of [uma1, uma2]) await badge(u, ufred, '2');
  await receipt(fred, 'second from fred', 'delivered');
  step('both devices count 2 unread; fred sees delivered ✓✓');

  await open(uma1, ufred);
  await sees(uma1, 'second from fred');
  await badge(uma2, ufred, '');
  await receipt(fred, 'second from fred', 'read');
  await receipt(fred, 'first from fred', 'read');
  await screenshot(fred, 'devices-friend.png');
  step('read on device 1: device 2\'s badge cleared, fred sees read');

  await open(uma2, ufred);
  for (const u of [uma1, uma2]) {
    for (const t of ['first from fred', 'second from fred']) {
      await sees(u, t);
      expect((await count(u, t)) === 1, `${u.label}: "${t}" shows once`);
    }
  }
  step('both devices show fred\'s messages once');

  // Typing, both ways (never Enter: nothing is sent).
  await uma1.page.type('#composer-input', 'hel', { delay: 50 });
  await typing(fred, `${uma1.name} is typing…`);
  await fred.page.type('#composer-input', 'wai', { delay: 50 });
  await typing(uma1, `${fred.name} is typing…`);
  await typing(uma2, `${fred.name} is typing…`);
  await screenshot(uma2, 'devices-typing.png');
  await fred.page.fill('#composer-input', '');
  await say(fred, 'third from fred');
  await typing(uma1, '');
  step('typing shown at the other side, and gone with the message');

  // What device 1 sends shows once on device 2 as uma's own, and read by fred.
  await uma1.page.fill('#composer-input', '');
  await say(uma1, 'reply from device 1');
  await sees(fred, 'reply from device 1');
  await sees(uma2, 'reply from device 1');
  expect((await count(uma2, 'reply from device 1')) === 1, 'the carbon shows once');
  await receipt(uma1, 'reply from device 1', 'read');
  await screenshot(uma1, 'devices-page1.png');
  await screenshot(uma2, 'devices-page2.png');
  step('device 1\'s reply: on device 2 once, read by fred');

  // A group: fred's message shows "read by 1" once uma reads it (on either device).
  const gid = await createGroup(fred, 'devices-' + suffix);
  await joinGroup(uma1, gid);
  await open(fred, `g:${gid}`);
  await say(fred, 'to the group');
  await receipt(fred, 'to the group', 'sent');
  await open(uma2, `g:${gid}`);
  await sees(uma2, 'to the group');
  await receipt(fred, 'to the group', 'read by 1');
  expect((await fred.page.textContent('#message-list .msg.mine .receipt')) === ' · ✓ read by 1', 'shown as "✓ read by 1"');
  await fred.page.waitForFunction((k) => document.querySelector(`li[data-key="${k}"] .name`).textContent.includes('2 members'), `g:${gid}`);
  await badge(uma1, `g:${gid}`, '');
  await screenshot(fred, 'devices-group.png');
  step('group: read by 1, and read on device 1 too');

  // Presence: no LIST polling; the dots follow fred's logout and login by themselves.
  await fred.page.click('#logout-btn');
  for (const u of [uma1, uma2]) await dot(u, ufred, false);
  await login(fred);
  for (const u of [uma1, uma2]) await dot(u, ufred, true);
  step('presence dots moved by themselves');

  expect((await unread(uma2, ufred)) === '', 'nothing unread on device 2');

  // Log out everywhere from device 1 (confirmed): device 2 is back at the login form too.
  uma1.answer = true;
  await uma1.page.click('details.account summary');
  await uma1.page.click('#logout-all-btn');
  for (const u of [uma1, uma2]) await u.page.waitForSelector('#login-form', { state: 'visible' });
  expect(/every device|everywhere/.test(await uma2.page.textContent('#auth-error')), 'device 2 says why');
  step('logged out everywhere: both devices at the login form');
  for (const u of [uma1, uma2, fred]) expect(u.errors.length === 0, `${u.label}: no script errors: ${u.errors}`);
});
