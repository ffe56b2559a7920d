// One compose stack whose secrets come from HashiCorp Vault, AWS Secrets Manager, Azure Key
// Vault, Huawei Cloud CSMS and a custom plugin at once, with the compiled binary and the real
// engine: first in Local Mode (the CLI runs the providers, in Workers and child processes), then
// in Cloud Mode through the compiled agent, where the CLI holds no credential at all. The
// backends are moto and the fakes of test/fakes. Then a backend dies: a recreated container
// still gets its secret, from the agent's cache. Every scenario ends with the leak checks.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startFakeAzure, type FakeAzure } from '../fakes/azure/index.ts';
import { startMoto, type Moto } from '../fakes/aws/moto.ts';
import { startCsmsFake, type CsmsFake } from '../fakes/huawei/index.ts';
import { startFakeVault, type FakeVault } from '../fakes/vault/server.ts';
import { DATA_ROOT, DOCKER_HOST, DSO_BIN, TEST_ROOT, canary, docker, dockerOk, dso, sandbox, scanForLeaks, writeFiles, type Sandbox, projectOf } from './support.ts';

const VALUES = {
  vaultPassword: canary('vault-pw'),
  awsApiKey: canary('aws-apikey'),
  awsToken: canary('aws-token'),
  azure: canary('azure'),
  huawei: canary('huawei'),
  plugin: canary('plugin'),
};
/** Injected as files: never in docker inspect or on disk. `awsApiKey` is a dso:// variable, by choice. */
const FILE_VALUES = [VALUES.vaultPassword, VALUES.awsToken, VALUES.azure, VALUES.huawei, VALUES.plugin];
const CREDENTIALS = {
  VAULT_TOKEN: '',
  AWS_ACCESS_KEY_ID: '',
  AWS_SECRET_ACCESS_KEY: '',
  AZURE_CLIENT_SECRET: canary('az-client-secret'),
  HW_AK: 'HWAKTEST0000000000001',
  HW_SK: canary('hw-sk'),
};
const AZ_CLIENT = '0a1b2c3d-0000-4000-8000-00000000c0de';

let sb: Sandbox;
let vault: FakeVault;
let moto: Moto;
let azure: FakeAzure;
let csms: CsmsFake;
let pluginStore: string;
let project: string;

const COMPOSE = `
services:
  app:
    image: dso-test/busybox:latest
    init: true
    command: ["sleep", "3600"]
    environment:
      DB_PASSWORD_FILE: dsofile://vault:app/db#password
      API_KEY: dso://aws:prod/api#key
      AWS_TOKEN_FILE: dsofile://aws:prod/token
      AZURE_KEY_FILE: dsofile://azure:api-key
      SIGNING_KEY_FILE: dsofile://huawei:signing-key
      PLUGIN_TOKEN_FILE: dsofile://files:app/token
`;

function dsoYaml(extra = ''): string {
  const pluginDir = join(sb.dir, 'plugins');
  const hash = createHash('sha256').update(readFileSync(join(pluginDir, 'dso-provider-files'))).digest('hex');
  return `providers:
  vault:
    addr: ${vault.url}
    auth: { method: token, token_env: VAULT_TOKEN }
  aws:
    region: us-east-1
    endpoint: ${moto.url}
    isolation: process
    auth: { method: static, access_key_id_env: AWS_ACCESS_KEY_ID, secret_access_key_env: AWS_SECRET_ACCESS_KEY }
  azure:
    vault_url: ${azure.vaultUrl}
    authority_host: ${azure.authorityHost}
    tls: { ca_cert: ${azure.caFile} }
    auth: { method: client_secret, tenant_id: ${azure.tenantId}, client_id: ${AZ_CLIENT}, client_secret_env: AZURE_CLIENT_SECRET }
  huawei:
    region: cn-north-4
    project_id: ${csms.projectId}
    endpoint: ${csms.url}
    auth: { method: aksk, access_key_env: HW_AK, secret_key_env: HW_SK }
  files:
    type: plugin
    plugin: files
    plugin_dir: ${pluginDir}
    sha256: "${hash}"
    settings: { dir: ${pluginStore} }
${extra}`;
}

async function exec(script: string): Promise<string> {
  return dockerOk(['exec', `${project}-app-1`, 'sh', '-c', script]);
}

async function expectValuesInApp(): Promise<void> {
  expect(await exec('cat "$DB_PASSWORD_FILE"')).toBe(VALUES.vaultPassword);
  expect(await exec('printf %s "$API_KEY"')).toBe(VALUES.awsApiKey);
  expect(await exec('cat "$AWS_TOKEN_FILE"')).toBe(VALUES.awsToken);
  expect(await exec('cat "$AZURE_KEY_FILE"')).toBe(VALUES.azure);
  expect(await exec('cat "$SIGNING_KEY_FILE"')).toBe(VALUES.huawei);
  expect(await exec('cat "$PLUGIN_TOKEN_FILE"')).toBe(VALUES.plugin);
}

/** docker inspect, the engine's data root and the project directory hold no file secret and no credential. */
async function expectNoLeaks(outputs: string[]): Promise<void> {
  const inspect = await dockerOk(['inspect', `${project}-app-1`]);
  for (const v of FILE_VALUES) expect(inspect).not.toContain(v);
  for (const c of Object.values(CREDENTIALS)) expect(inspect).not.toContain(c);
  const needles = [...FILE_VALUES, ...Object.values(CREDENTIALS).filter((c) => c.length > 12)];
  expect(scanForLeaks([DATA_ROOT, sb.dir], needles)).toEqual([]);
  // What DSO printed: no value (not even the dso:// one) and no credential.
  for (const out of outputs) for (const n of [...Object.values(VALUES), ...needles]) expect(out).not.toContain(n);
}

beforeAll(async () => {
  sb = sandbox('cloud-providers');
  project = projectOf(sb);

  vault = await startFakeVault();
  vault.putSecret('app/db', { user: 'app', password: VALUES.vaultPassword });
  CREDENTIALS.VAULT_TOKEN = vault.createToken({ paths: ['secret/data/app/*'] });

  moto = await startMoto({ region: 'us-east-1' });
  await moto.putSecret('prod/api', JSON.stringify({ key: VALUES.awsApiKey, region: 'us-east-1' }));
  await moto.putSecret('prod/token', VALUES.awsToken);
  CREDENTIALS.AWS_ACCESS_KEY_ID = moto.admin.accessKeyId;
  CREDENTIALS.AWS_SECRET_ACCESS_KEY = moto.admin.secretAccessKey;

  azure = await startFakeAzure();
  azure.entra.addClientSecret(AZ_CLIENT, CREDENTIALS.AZURE_CLIENT_SECRET);
  azure.vault.setSecret('api-key', VALUES.azure);

  csms = startCsmsFake({ region: 'cn-north-4' });
  csms.addCredential({ ak: CREDENTIALS.HW_AK, sk: CREDENTIALS.HW_SK });
  csms.putString('signing-key', VALUES.huawei);

  // The example plugin, installed as a user would, serving files from a store of its own. Run by
  // root, DSO starts it as nobody (docs/providers.md): the store is nobody's, and the plugin
  // directory within its reach.
  chmodSync(sb.dir, 0o711);
  const pluginDir = join(sb.dir, 'plugins');
  mkdirSync(pluginDir, { mode: 0o755 });
  copyFileSync(new URL('../../providers/plugin/examples/dso-provider-files', import.meta.url).pathname, join(pluginDir, 'dso-provider-files'));
  chmodSync(join(pluginDir, 'dso-provider-files'), 0o755);
  pluginStore = join(TEST_ROOT, `plugin-store-${project}`);
  mkdirSync(join(pluginStore, 'app'), { recursive: true, mode: 0o700 });
  writeFileSync(join(pluginStore, 'app', 'token'), VALUES.plugin, { mode: 0o600 });
  for (const p of [pluginStore, join(pluginStore, 'app'), join(pluginStore, 'app', 'token')]) chownSync(p, 65534, 65534);

  writeFiles(sb.dir, { 'compose.yaml': COMPOSE, 'dso.yaml': dsoYaml() });
});

afterAll(async () => {
  await dso(sb, ['down'], { env: { DSO_MODE: 'local' } }).catch(() => {});
  vault?.stop();
  azure?.stop();
  await csms?.stop();
  await moto?.stop();
  sb.cleanup();
  if (pluginStore) Bun.spawnSync(['rm', '-rf', pluginStore], { env: {} });
});

describe('Local Mode: the CLI runs every provider itself', () => {
  const outputs: string[] = [];

  test('the stack comes up with the right value from each of the five providers', async () => {
    const r = await dso(sb, ['up', '-d'], { env: { ...CREDENTIALS, DSO_MODE: 'local' } });
    outputs.push(r.stdout, r.stderr);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('API_KEY'); // the dso:// warning names the variable
    await expectValuesInApp();
  });

  test('no file secret and no credential in docker inspect, on disk, or in what DSO printed', async () => {
    await expectNoLeaks(outputs);
  });

  test('a provider whose credential is missing fails alone, named, and starts nothing', async () => {
    await dso(sb, ['down'], { env: { DSO_MODE: 'local' } });
    const { AZURE_CLIENT_SECRET: _, ...rest } = CREDENTIALS;
    const r = await dso(sb, ['up', '-d'], { env: { ...rest, DSO_MODE: 'local' } });
    expect(r.code).toBe(10);
    expect(r.stderr).toContain('azure:api-key');
    expect(r.stderr).toContain('AZURE_CLIENT_SECRET');
    expect(r.stderr).not.toContain('vault:app/db');
    expect(await dockerOk(['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`])).toBe('');
  });
});

describe('Cloud Mode: through the compiled agent, then with a backend down', () => {
  let agent: ReturnType<typeof Bun.spawn>;
  let socket: string;
  const agentLog: string[] = [];
  const outputs: string[] = [];
  const cloudEnv = () => ({ DSO_MODE: 'cloud', DSO_AGENT_SOCKET: socket });

  beforeAll(async () => {
    // Values go stale after 1 s; the agent may serve them for an hour while a provider is down.
    writeFileSync(join(sb.dir, 'agent.yaml'), dsoYaml('agent:\n  cache:\n    ttl: 1s\n    max_stale: 1h\n'));
    socket = join(sb.dir, 'run', 'dso.sock');
    agent = Bun.spawn([DSO_BIN, 'agent', '--config', join(sb.dir, 'agent.yaml'), '--socket', socket, '--metrics-address', 'off', '--state-dir', join(sb.dir, 'agent-state')], {
      // The credentials live with the agent only.
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...CREDENTIALS, DOCKER_HOST },
      stdout: 'ignore',
      stderr: 'pipe',
    });
    void (async () => {
      for await (const chunk of agent.stderr as ReadableStream<Uint8Array>) agentLog.push(new TextDecoder().decode(chunk));
    })();
    for (let i = 0; i < 200 && !existsSync(socket); i++) await Bun.sleep(50);
    expect(existsSync(socket)).toBe(true);
  });

  afterAll(async () => {
    agent?.kill('SIGTERM');
    await agent?.exited;
  });

  test('docker dso up with no credential in the CLI\'s environment gets every value through the agent', async () => {
    const r = await dso(sb, ['up', '-d'], { env: cloudEnv() });
    outputs.push(r.stdout, r.stderr);
    expect(r.code, r.stderr).toBe(0);
    await expectValuesInApp();
  });

  test('a container restarted by docker keeps its secret files (held in RAM by DSO)', async () => {
    await dockerOk(['restart', `${project}-app-1`]);
    await expectValuesInApp();
  });

  test('with the Vault backend down, a recreated container still gets its secret from the agent\'s cache', async () => {
    vault.stop();
    await Bun.sleep(1200); // past the 1 s ttl: the agent must ask Vault, fail, and fall back
    const r = await dso(sb, ['up', '-d', '--force-recreate'], { env: cloudEnv() });
    outputs.push(r.stdout, r.stderr);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('vault:app/db#password: the agent served a cached value');
    await expectValuesInApp();
    const status = JSON.parse((await dso(sb, ['status', '--json'], { env: cloudEnv() })).stdout);
    expect(status.agent.status.cache.staleServed).toBeGreaterThanOrEqual(1);
    // Status says the provider is down, and why, while its cached values are served.
    const vaultHealth = status.agent.status.providers.find((p: { name: string }) => p.name === 'vault');
    expect(vaultHealth).toMatchObject({ healthy: false });
    expect(vaultHealth.lastError).toMatch(/^(unavailable|timeout): /);
    expect(status.agent.status.providers.find((p: { name: string }) => p.name === 'aws')).toMatchObject({ healthy: true });
    const human = await dso(sb, ['status'], { env: cloudEnv() });
    expect(human.stdout).toMatch(/vault \(vault, worker\): UNHEALTHY \((unavailable|timeout): /);
  });

  test('no leak in Cloud Mode either: inspect, disk, CLI output and the agent\'s log', async () => {
    await expectNoLeaks([...outputs, agentLog.join('')]);
    expect(agentLog.join('')).toContain('Served a cached value');
  });

  test('down removes the stack and its secret storage', async () => {
    const r = await dso(sb, ['down'], { env: cloudEnv() });
    expect(r.code, r.stderr).toBe(0);
    expect((await docker(['ps', '-aq', '--filter', `label=dso.project=${project}`])).stdout).toBe('');
  });
});
