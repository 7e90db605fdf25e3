// Users in control (issue 21) from the web client: alice (URL_A) blocks bob (URL_B) from the
// conversation's menu, with a confirmation, and his chat no longer reaches her; bob leaves a
// group from its menu; alice changes her password and logs in again with the new one.
// Screenshots: control-blocked.png, control-left-group.png, control-password.png.
import { run, person, register, login, addFriend, createGroup, joinGroup, open, say, sees, count, screenshot, expect,
  step } from './lib.mjs';

const suffix = Date.now().toString(36).slice(-6) + Math.floor(Math.random() * 1e4);

async function result(user, text) {
  await user.page.waitForFunction((t) => document.getElementById('action-result').textContent.includes(t), text);
}

await run(async (browser) => {
  const alice = await person(browser, process.env.URL_A, 'alice');
  const bob = await person(browser, process.env.URL_B, 'bob');
  await register(alice, 'alice-' + suffix);
  await register(bob, 'bob-' + suffix);
  await login(alice);
  await login(bob);
  await addFriend(alice, bob.id);
  await addFriend(bob, alice.id);
  await open(bob, `u:${alice.id}`);
  await say(bob, 'before the block');
  await open(alice, `u:${bob.id}`);
  await sees(alice, 'before the block');
  step(`alice ${alice.id} and bob ${bob.id} chat`);

  // Cancelling the confirmation blocks nothing.
  expect((await alice.page.textContent('#conv-action')) === 'Block', 'the menu offers Block');
  await alice.page.click('#conv-action');
  expect(alice.dialogs.length === 1 && /Block/.test(alice.dialogs[0]), `a confirmation was asked: ${alice.dialogs}`);
  expect((await alice.page.textContent('#conv-action')) === 'Block', 'dismissed: nothing changed');
  alice.answer = true;
  await alice.page.click('#conv-action');
  await result(alice, 'Blocked.');
  await alice.page.waitForFunction(() => document.getElementById('conv-action').textContent === 'Unblock');
  await alice.page.click('details.account summary');
  await alice.page.waitForSelector(`#blocked li[data-id="${bob.id}"]`);
  await alice.page.click('details.account summary');
  step('alice blocked bob, after confirming; her account lists him');
  await say(bob, 'after the block', { acked: false });
  await bob.page.waitForTimeout(1500);
  expect((await count(alice, 'after the block')) === 0, 'bob\'s chat does not reach alice');
  await screenshot(alice, 'control-blocked.png');

  const gid = await createGroup(alice, 'team-' + suffix);
  await joinGroup(bob, gid);
  await open(bob, `g:${gid}`);
  expect((await bob.page.textContent('#conv-action')) === 'Leave group', 'the group menu offers Leave');
  bob.answer = true;
  await bob.page.click('#conv-action');
  await result(bob, 'You left the group.');
  await bob.page.waitForFunction((k) => !document.querySelector(`li[data-key="${k}"]`), `g:${gid}`);
  await result(alice, 'left group ' + gid);
  await screenshot(bob, 'control-left-group.png');
  step(`bob left group ${gid}; alice was told`);

  await alice.page.click('details.account summary');
  await alice.page.fill('#passwd-old', 'pw-web-1');
  await alice.page.fill('#passwd-new', 'pw-web-2');
  alice.answer = true;
  await alice.page.click('#passwd-btn');
  await result(alice, 'Password changed.');
  await screenshot(alice, 'control-password.png');
  await alice.page.click('#logout-btn');
  const again = await person(browser, process.env.URL_B, 'alice, again');
  await again.page.fill('#login-id', String(alice.id));
  await again.page.fill('#login-password', 'pw-web-1');
  await again.page.click('#login-btn');
  await again.page.waitForFunction(() => document.getElementById('auth-error').textContent !== '');
  step('the old password is refused');
  for (let attempt = 0; ; attempt++) {
    await again.page.evaluate(() => { document.getElementById('auth-error').textContent = ''; });
    await again.page.fill('#login-password', 'pw-web-2');
    await again.page.click('#login-btn');
    await again.page.waitForFunction(() => document.querySelector('#conn[data-state="online"]')
      || document.getElementById('auth-error').textContent !== '');
    const error = await again.page.textContent('#auth-error');
    if (!error) break;
    if (attempt >= 10 || !/using/.test(error)) throw new Error(`login with the new password: ${error}`);
    await again.page.waitForTimeout(300);
  }
  step('alice logs in with the new password');
  for (const u of [alice, bob, again]) expect(u.errors.length === 0, `${u.label}: no script errors: ${u.errors}`);
});
