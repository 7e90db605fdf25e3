// Issue 21's menus in the web client: alice and bob, on different nodes through nginx (URL).
// Friend request by name → bob sees it live and accepts → both are friends → alice removes
// bob (after a confirmation, dismissed once) and he goes from bob's list too; a second
// request, by id, declined (confirmed) and seen live by alice. alice's group:
// rename seen live by bob, bob named admin, kicked (confirmed) and his group gone live; a
// second group deleted by alice (confirmed) vanishes from bob's screen; "who may write to
// me" kept across logins. Screenshots: menus-request.png, menus-friend-removed.png,
// menus-group.png, menus-kicked.png, menus-deleted.png.
import { run, personOnNode, person, login, createGroup, joinGroup, open, openMenu, result, screenshot, expect, step }
  from './lib.mjs';

const suffix = Date.now().toString(36).slice(-6) + Math.floor(Math.random() * 1e4);
const gone = (user, key) => user.page.waitForFunction((k) => !document.querySelector(`li[data-key="${k}"]`), key);

await run(async (browser) => {
  const alice = await personOnNode(browser, process.env.URL, 'alice', 'alice-' + suffix);
  const bob = await personOnNode(browser, process.env.URL, 'bob', 'bob-' + suffix, alice.node);
  step(`alice ${alice.id} on node ${alice.node}, bob ${bob.id} on node ${bob.node}, through nginx`);

  // A friend request by name, pushed live to bob, accepted from his list.
  await alice.page.click('#requests-box summary');
  await alice.page.fill('#request-who', bob.name);
  await alice.page.click('#request-btn');
  await result(alice, 'Friend request sent.');
  await alice.page.waitForSelector(`#outgoing li[data-id="${bob.id}"]`);
  await bob.page.waitForFunction(() => document.getElementById('requests-count').textContent === '1');
  await bob.page.click('#requests-box summary');
  await bob.page.waitForSelector(`#incoming li[data-id="${alice.id}"]`);
  await screenshot(bob, 'menus-request.png');
  step('bob sees alice\'s request live');
  await bob.page.click(`#incoming li[data-id="${alice.id}"] button.accept`);
  await bob.page.waitForSelector(`#friends li[data-key="u:${alice.id}"]`);
  await alice.page.waitForSelector(`#friends li[data-key="u:${bob.id}"] .dot.online`);
  await alice.page.waitForFunction(() => document.querySelectorAll('#outgoing li').length === 0);
  expect((await bob.page.textContent('#requests-count')) === '', 'no request left for bob');
  step('accepted: friends both ways');

  // Remove the friend: dismissed once (nothing happens), then confirmed; bob's list follows.
  await open(alice, `u:${bob.id}`);
  await openMenu(alice);
  await alice.page.click('#remove-friend-btn');
  expect(alice.dialogs.length === 1 && /Remove/.test(alice.dialogs[0]), `a confirmation was asked: ${alice.dialogs}`);
  expect(await alice.page.isVisible(`#friends li[data-key="u:${bob.id}"]`), 'dismissed: bob is still a friend');
  alice.answer = true;
  await alice.page.click('#remove-friend-btn');
  await result(alice, 'Friend removed.');
  await gone(alice, `u:${bob.id}`);
  await gone(bob, `u:${alice.id}`);
  await screenshot(bob, 'menus-friend-removed.png');
  step('alice removed bob; gone from both lists, live');

  // A request declined (by id this time): the confirmation dismissed once, then given.
  await alice.page.fill('#request-who', String(bob.id));
  await alice.page.click('#request-btn');
  await alice.page.waitForSelector(`#outgoing li[data-id="${bob.id}"]`);
  await bob.page.waitForSelector(`#incoming li[data-id="${alice.id}"]`);
  const seen = bob.dialogs.length;
  await bob.page.click(`#incoming li[data-id="${alice.id}"] button.decline`);
  expect(bob.dialogs.length === seen + 1 && /Decline/.test(bob.dialogs[seen]), 'declining asks first');
  expect(await bob.page.isVisible(`#incoming li[data-id="${alice.id}"]`), 'dismissed: the request stays');
  bob.answer = true;
  await bob.page.click(`#incoming li[data-id="${alice.id}"] button.decline`);
  await result(bob, 'Request declined.');
  await alice.page.waitForFunction(() => document.querySelectorAll('#outgoing li').length === 0);
  await result(alice, `User #${bob.id} declined your friend request.`);
  expect(!(await alice.page.isVisible(`#friends li[data-key="u:${bob.id}"]`)), 'not friends');
  step('a request declined; alice sees it live');

  // A group: renamed (seen live), bob named admin, then kicked.
  const gid = await createGroup(alice, 'team-' + suffix);
  await joinGroup(bob, gid);
  await open(alice, `g:${gid}`);
  await openMenu(alice);
  await alice.page.waitForSelector(`#members li[data-id="${bob.id}"] button.kick`);
  await alice.page.fill('#edit-group-name', 'renamed-' + suffix);
  await alice.page.fill('#edit-group-desc', 'a better description');
  await alice.page.click('#edit-group-btn');
  await bob.page.waitForFunction(([k, n]) => document.querySelector(`li[data-key="${k}"] .name`)?.textContent.startsWith(n),
    [`g:${gid}`, 'renamed-' + suffix]);
  await alice.page.waitForFunction((n) => document.getElementById('conv-title').textContent.startsWith(n), 'renamed-' + suffix);
  step('renamed; bob sees the new name live');
  await alice.page.click(`#members li[data-id="${bob.id}"] button.admin`);
  await result(bob, `User #${bob.id} is now an admin of group ${gid}.`);
  await alice.page.waitForFunction((id) => document.querySelector(`#members li[data-id="${id}"] .name`).textContent.endsWith('admin'), bob.id);
  await screenshot(alice, 'menus-group.png');
  step('bob named admin');
  const before = alice.dialogs.length;
  await alice.page.click(`#members li[data-id="${bob.id}"] button.kick`);
  expect(alice.dialogs.length === before + 1 && /Remove/.test(alice.dialogs[before]), 'kicking asks first');
  await result(alice, 'Member removed.');
  await gone(bob, `g:${gid}`);
  await result(bob, `You were removed from group ${gid}.`);
  await alice.page.waitForFunction((id) => !document.querySelector(`#members li[data-id="${id}"]`), bob.id);
  await screenshot(bob, 'menus-kicked.png');
  step('bob kicked; his group is gone, live');

  // Another group, deleted by its owner while bob has it on screen.
  const gid2 = await createGroup(alice, 'doomed-' + suffix);
  await joinGroup(bob, gid2);
  await open(bob, `g:${gid2}`);
  await open(alice, `g:${gid2}`);
  await openMenu(alice);
  expect(await alice.page.isVisible('#delete-group-btn'), 'the owner is offered Delete');
  const asked = alice.dialogs.length;
  await alice.page.click('#delete-group-btn');
  expect(alice.dialogs.length === asked + 1 && /Delete/.test(alice.dialogs[asked]), 'deleting asks first');
  await gone(alice, `g:${gid2}`);
  await gone(bob, `g:${gid2}`);
  await bob.page.waitForFunction(() => document.getElementById('conv-title').textContent === 'Pick a friend or a group');
  await screenshot(bob, 'menus-deleted.png');
  step('group deleted; gone from bob\'s screen, live');

  // Who may write to me: friends only, shown again at the next login.
  await alice.page.click('details.account summary');
  await alice.page.selectOption('#writers', 'friends');
  await result(alice, 'Saved: who may write to you.');
  const again = await person(browser, process.env.URL, 'alice, another device');
  await login(again, alice.id);
  await again.page.waitForFunction(() => document.getElementById('writers').value === 'friends');
  step('"friends only" is shown on another device');
  for (const u of [alice, bob, again]) expect(u.errors.length === 0, `${u.label}: no script errors: ${u.errors}`);
});
