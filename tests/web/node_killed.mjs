// Two browser users through nginx (URL) chat; the node serving the first is SIGKILLed by the
// Rust test mid-conversation. Both keep typing; the page reconnects through nginx, resumes,
// sends what was pending again, and in the end both pages show every message exactly once.
import { run, person, register, login, addFriend, open, say, sees, count, ask, expect, step } from './lib.mjs';

const suffix = Date.now().toString(36).slice(-6) + Math.floor(Math.random() * 1e4);

await run(async (browser) => {
  const alice = await person(browser, process.env.URL, 'alice');
  const bob = await person(browser, process.env.URL, 'bob');
  await register(alice, 'ka-' + suffix);
  await register(bob, 'kb-' + suffix);
  await login(alice);
  await login(bob);
  await addFriend(alice, bob.id);
  await addFriend(bob, alice.id);
  await open(alice, `u:${bob.id}`);
  await open(bob, `u:${alice.id}`);
  const texts = [];
  for (let i = 1; i <= 3; i++) {
    await say(alice, `a${i}`);
    await say(bob, `b${i}`);
    texts.push(`a${i}`, `b${i}`);
  }
  await sees(alice, 'b3');
  await sees(bob, 'a3');
  step('six messages before the kill');

  // Every connection state alice's page shows from now on.
  await alice.page.evaluate(() => {
    window.connStates = [];
    const conn = document.getElementById('conn');
    new MutationObserver(() => window.connStates.push(conn.dataset.state)).observe(conn, { attributes: true });
  });
  const killed = await ask(`kill ${alice.id}`);
  step(killed);
  // Typing goes on while alice's page has no node: hers wait as pending, bob's are stored.
  for (let i = 4; i <= 6; i++) {
    await say(alice, `a${i}`, { acked: false });
    await say(bob, `b${i}`, { acked: false });
    texts.push(`a${i}`, `b${i}`);
  }
  await alice.page.waitForFunction(() => window.connStates.includes('reconnecting')
    && document.getElementById('conn').dataset.state === 'online', null, { timeout: 30000 });
  step('alice\'s page lost its node, reconnected and resumed');
  for (const u of [alice, bob]) {
    for (const t of texts) await sees(u, t, 30000);
  }
  // Give late duplicates (a replay, a resend) the time to show up, then count.
  await alice.page.waitForTimeout(1500);
  for (const u of [alice, bob]) {
    for (const t of texts) {
      const n = await count(u, t);
      expect(n === 1, `${u.label} shows ${t} once (shows it ${n} times)`);
    }
    const states = await u.page.evaluate(() => [...document.querySelectorAll('#message-list .msg.mine')].map((m) => m.dataset.state));
    expect(states.length === 6 && states.every((s) => s === 'acked'), `${u.label}'s six messages are acknowledged: ${states}`);
    expect(u.errors.length === 0, `${u.label}: no script errors: ${u.errors}`);
  }
  step('every message once on both pages, every own message acknowledged');
});
