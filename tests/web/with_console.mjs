// A browser user (URL: node a) and a TCP user (PEER, logged in on node b by the Rust test)
// chat both ways.
import { run, person, register, login, addFriend, open, say, sees, ask, expect, step } from './lib.mjs';

const peer = Number(process.env.PEER);

await run(async (browser) => {
  const me = await person(browser, process.env.URL, 'browser');
  await register(me, 'web-' + Date.now().toString(36).slice(-6) + Math.floor(Math.random() * 1e4));
  await login(me);
  await addFriend(me, peer);
  await me.page.waitForSelector(`#friends li[data-key="u:${peer}"] .dot.online`);
  step(`browser user ${me.id}; the TCP user ${peer} shows online`);
  await open(me, `u:${peer}`);
  await say(me, 'hello console, from a browser');
  const answer = await ask(`sent ${me.id}`);
  expect(answer === 'replied', `the test's answer: ${answer}`);
  await sees(me, 'hello browser, from TCP');
  step('the TCP user\'s reply shows');
  expect(me.dialogs.length === 0 && me.errors.length === 0, `no dialogs or script errors: ${me.errors}`);
});
