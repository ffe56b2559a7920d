// The AWS case of automatic rotation: a secret updated in Secrets Manager (moto, the real
// emulator, through the real SDK) reaches the container that uses it, by the agent's polling,
// without anything else touching the stack; and nothing of it leaks.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startMoto, type Moto } from '../fakes/aws/moto.ts';
import { DATA_ROOT, DOCKER_HOST, DSO_BIN, canary, dockerOk, dso, sandbox, scanForLeaks, writeFiles, type Sandbox, projectOf } from './support.ts';

let sb: Sandbox;
let project: string;
let moto: Moto;
let agent: ReturnType<typeof Bun.spawn>;
let socket: string;
const log: string[] = [];
const V1 = canary('aws-v1');
const V2 = canary('aws-v2');

const COMPOSE = `
services:
  app:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "3600"]
    environment:
      TOKEN_FILE: dsofile://aws:prod/token
    labels: { dso.strategy: rolling }
`;

beforeAll(async () => {
  sb = sandbox('rotation-aws');
  project = projectOf(sb);
  moto = await startMoto({ region: 'us-east-1' });
  await moto.putSecret('prod/token', V1);
  writeFiles(sb.dir, {
    'compose.yaml': COMPOSE,
    'agent.yaml': `providers:
  aws:
    region: us-east-1
    endpoint: ${moto.url}
    auth: { method: static, access_key_id_env: AWS_ACCESS_KEY_ID, secret_access_key_env: AWS_SECRET_ACCESS_KEY }
agent:
  watch: { polling_interval: 1s, debounce_window: 500ms }
  health_check: { timeout: 15s, interval: 1s }
`,
  });
  socket = join(sb.dir, 'run', 'dso.sock');
  agent = Bun.spawn([DSO_BIN, 'agent', '--config', join(sb.dir, 'agent.yaml'), '--socket', socket, '--metrics-address', 'off', '--state-dir', join(sb.dir, 'state')], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', AWS_ACCESS_KEY_ID: moto.admin.accessKeyId, AWS_SECRET_ACCESS_KEY: moto.admin.secretAccessKey, DOCKER_HOST },
    stdout: 'ignore',
    stderr: 'pipe',
  });
  void (async () => {
    for await (const chunk of agent.stderr as ReadableStream<Uint8Array>) log.push(new TextDecoder().decode(chunk));
  })();
  for (let i = 0; i < 100 && !existsSync(socket); i++) await Bun.sleep(100);
  const up = await dso(sb, ['up', '-d'], { env: { DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket } });
  expect(up.code, up.stderr).toBe(0);
});

afterAll(async () => {
  await dso(sb, ['down'], { env: { DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket } }).catch(() => {});
  agent?.kill('SIGTERM');
  await agent?.exited;
  await moto?.stop();
  sb.cleanup();
});

test('a new version in Secrets Manager reaches the app by polling alone', async () => {
  expect(await dockerOk(['exec', `${project}-app-1`, 'cat', '/run/secrets/aws/prod/token'])).toBe(V1);
  const before = (await dockerOk(['inspect', '-f', '{{.Id}}', `${project}-app-1`])).trim();
  await moto.putSecret('prod/token', V2);
  const end = Date.now() + 30_000;
  let now = '';
  while (Date.now() < end) {
    now = await dockerOk(['exec', `${project}-app-1`, 'cat', '/run/secrets/aws/prod/token']).catch(() => '');
    if (now === V2) break;
    await Bun.sleep(250);
  }
  expect(now).toBe(V2);
  expect((await dockerOk(['inspect', '-f', '{{.Id}}', `${project}-app-1`])).trim()).not.toBe(before);
  expect(scanForLeaks([DATA_ROOT, sb.dir], [V1, V2])).toEqual([]);
  for (const v of [V1, V2, moto.admin.secretAccessKey]) expect(log.join('')).not.toContain(v);
});
