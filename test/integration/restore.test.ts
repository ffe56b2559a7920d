// After a reboot (or an engine restart) RAM is empty: a container with a restart policy starts
// again, but its secret volume is empty. It must not start its application without its secrets:
// the entrypoint wrapper (dso-holder await) waits until DSO has put them back (`docker dso up`
// in Local Mode, the agent in Cloud Mode), then runs the application as PID 1, as before.
// Here the reboot is reproduced by what it does to a tmpfs volume: the last container using it
// goes away (the holder is removed while the application is stopped), so its content is gone.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { canary, docker, dockerOk, dso, sandbox, writeFiles, type Sandbox, projectOf } from './support.ts';

let sb: Sandbox;
let project: string;
const SECRET = canary('restore');

const COMPOSE = `
services:
  app:
    image: dso-test/busybox:latest
    restart: unless-stopped
    command: ["sh", "-c", "test -s /run/secrets/app/token || { echo STARTED-WITHOUT-SECRET; exit 3; }; echo app-started; exec sleep 3600"]
    environment:
      TOKEN_FILE: dsofile://app/token
  plain:
    image: dso-test/noshell:latest
    environment:
      TOKEN_FILE: dsofile://app/token
`;

beforeAll(async () => {
  sb = sandbox('restore');
  project = projectOf(sb);
  writeFiles(sb.dir, { 'compose.yaml': COMPOSE });
  expect((await dso(sb, ['init'])).code).toBe(0);
  expect((await dso(sb, ['secret', 'set', 'app/token'], { input: SECRET })).code).toBe(0);
  const up = await dso(sb, ['up', '-d']);
  expect(up.code, up.stderr).toBe(0);
});

afterAll(async () => {
  await dso(sb, ['down']).catch(() => {});
  sb.cleanup();
});

test('the application runs as PID 1 through the wrapper, from the image\'s own entrypoint and command', async () => {
  const entrypoint = JSON.parse(await dockerOk(['inspect', '-f', '{{json .Config.Entrypoint}}', `${project}-app-1`]));
  expect(entrypoint.slice(0, 3)).toEqual(['/run/dso-bin/dso-holder', 'await', '/run/secrets/.dso-ready']);
  expect((await dockerOk(['exec', `${project}-app-1`, 'cat', '/proc/1/cmdline'])).split('\0')[0]).toBe('sleep');
  expect(await dockerOk(['logs', `${project}-app-1`])).toContain('app-started');
  // An image without a shell, whose entrypoint comes from the image: the wrapper execs it.
  const plain = JSON.parse(await dockerOk(['inspect', '-f', '{{json .Config.Entrypoint}} {{json .State.Running}}', `${project}-plain-1`]).then((s) => `[${s.trim().replace(' ', ',')}]`));
  expect(plain[0].slice(0, 2)).toEqual(['/run/dso-bin/dso-holder', 'await']);
  expect(plain[1]).toBe(true);
});

test('with its secrets gone from RAM, a restarted container waits for them instead of starting without', async () => {
  const holder = (await dockerOk(['ps', '-aq', '--filter', 'label=dso.role=holder', '--filter', `label=dso.project=${project}`])).trim();
  await dockerOk(['stop', '-t', '1', `${project}-app-1`, `${project}-plain-1`]);
  await dockerOk(['rm', '-f', holder]);
  await dockerOk(['start', `${project}-app-1`]);
  await Bun.sleep(1500);
  const logs = await docker(['logs', `${project}-app-1`]);
  expect(logs.stdout + logs.stderr).toContain('dso: waiting for secrets');
  expect(logs.stdout).not.toContain('STARTED-WITHOUT-SECRET');
  expect((await dockerOk(['inspect', '-f', '{{.State.Running}} {{.RestartCount}}', `${project}-app-1`])).trim()).toBe('true 0');

  // docker dso up puts the secrets back; the waiting application then starts, with them.
  const up = await dso(sb, ['up', '-d']);
  expect(up.code, up.stderr).toBe(0);
  for (let i = 0; i < 40; i++) {
    if ((await docker(['logs', `${project}-app-1`])).stdout.split('app-started').length > 2) break;
    await Bun.sleep(100);
  }
  expect((await docker(['logs', `${project}-app-1`])).stdout.split('app-started').length).toBe(3);
  expect(await dockerOk(['exec', `${project}-app-1`, 'cat', '/run/secrets/app/token'])).toBe(SECRET);
  expect((await dockerOk(['exec', `${project}-app-1`, 'cat', '/proc/1/cmdline'])).split('\0')[0]).toBe('sleep');
});
