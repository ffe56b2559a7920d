// What a user reads when something is wrong: unknown commands and flags suggest what was meant,
// help columns stay apart, file errors are words rather than errno codes, and `status` fails
// when what it reports on cannot be reached.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closest, editDistance } from '../../../src/cli/suggest.ts';
import { LocalVault } from '../../../src/vault/vault.ts';
import { runCli } from './run-cli.ts';

let home: string;
beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'dso-cli-messages-'));
  const vault = await LocalVault.create(join(home, 'vault.enc'), new TextEncoder().encode('the right passphrase'), { kdf: { memoryKiB: 1024, iterations: 1, parallelism: 1 } });
  vault.close();
});
afterAll(() => rmSync(home, { recursive: true, force: true }));

describe('unknown commands say what was probably meant', () => {
  test('a typo of a DSO command suggests it', async () => {
    const r = await runCli(['upp']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('error: unknown command "upp"\n  hint: did you mean `dso up`?\n');
    expect((await runCli(['scret'])).stderr).toContain('did you mean `dso secret`?');
    expect((await runCli(['stauts'])).stderr).toContain('did you mean `dso status` or `dso compose stats`?');
  });

  test('a Compose command points to `compose`, as a plugin too', async () => {
    for (const name of ['ps', 'logs', 'exec', 'restart']) {
      const r = await runCli([name]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`\`${name}\` is a Compose command: run \`dso compose ${name}\``);
    }
    const plugin = await runCli(['dso', 'logs', '-f'], { argv0: '/usr/lib/docker/cli-plugins/docker-dso' });
    expect(plugin.stderr).toContain('run `docker dso compose logs`');
    expect((await runCli(['lgos'])).stderr).toContain('did you mean `dso compose logs`?');
  });

  test('nothing close: only the pointer to --help', async () => {
    const r = await runCli(['frobnicate']);
    expect(r.stderr).toBe('error: unknown command "frobnicate"\n  hint: run `dso --help` to see the commands\n');
  });

  test('subcommands and flags get the same help', async () => {
    expect((await runCli(['secret', 'lsit'])).stderr).toContain('did you mean `dso secret list`?');
    expect((await runCli(['secret', 'list', '--passphrase', 'x'])).stderr).toContain('did you mean --passphrase-file?');
  });

  test('closest: one edit for short words, two for longer ones, every word on a tie', () => {
    expect(editDistance('upp', 'up')).toBe(1);
    expect(editDistance('lsit', 'list')).toBe(1);
    expect(closest('upp', ['up', 'down'])).toEqual(['up']);
    expect(closest('dwn', ['up', 'down'])).toEqual(['down']);
    expect(closest('xyz', ['up', 'down'])).toEqual([]);
    expect(closest('sta', ['status', 'start'])).toEqual([]);
    expect(closest('sec', ['secret', 'status'])).toEqual(['secret']);
    expect(closest('statsu', ['status', 'stats'])).toEqual(['status', 'stats']);
  });
});

test('help keeps two spaces between a long flag and its description, in one column', async () => {
  const r = await runCli(['agent', '--help']);
  expect(r.code).toBe(0);
  expect(r.stdout).not.toContain('HOST:PORTServe');
  const lines = r.stdout.split('\n').filter((l) => /^ {2}(-\w, |    )--/.test(l));
  expect(lines.length).toBeGreaterThanOrEqual(5);
  // Where each description starts: after the first run of two or more spaces that follows the flag.
  const columns = lines.map((l) => /^ {2}[ -].*?\S {2,}(?=\S)/.exec(l)?.[0].length);
  expect(columns).not.toContain(undefined);
  expect(new Set(columns).size).toBe(1);
  expect(r.stdout).toContain('--metrics-address HOST:PORT  Serve /metrics');
});

describe('file errors and vault errors read like every other error', () => {
  test('a missing passphrase file says so in words', async () => {
    const r = await runCli(['secret', 'list', '--passphrase-file', join(home, 'no-such-file')], { env: { DSO_HOME: home } });
    expect(r.code).toBe(4);
    expect(r.stderr).toBe(`error: cannot read the passphrase file ${join(home, 'no-such-file')}: no such file or directory\n  hint: check the path and its permissions\n`);
  });

  test('a directory given as the passphrase file', async () => {
    const r = await runCli(['secret', 'list', '--passphrase-file', home], { env: { DSO_HOME: home } });
    expect(r.stderr).toContain(`cannot read the passphrase file ${home}: it is a directory`);
    expect(r.stderr).not.toContain('EISDIR');
  });

  test('a wrong passphrase: lower case, no full stop, like the rest', async () => {
    const r = await runCli(['secret', 'list'], { env: { DSO_HOME: home, DSO_PASSPHRASE: 'not the passphrase' } });
    expect(r.code).toBe(4);
    expect(r.stderr).toBe(`error: wrong passphrase for vault ${join(home, 'vault.enc')}\n  hint: try again with the passphrase the vault was created with\n`);
  });

  test('an invalid secret name', async () => {
    const r = await runCli(['secret', 'rm', '../x'], { env: { DSO_HOME: home } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: invalid secret name "\.\.\/x": [^\n]*[^.]\n {2}hint: use segments [^\n]*characters\n$/);
  });
});

describe('status exits non-zero when it cannot reach what it reports on', () => {
  const unreachable = { DSO_HOME: '/nonexistent/dso-home', DOCKER_HOST: 'unix:///nonexistent/docker.sock', DSO_MODE: 'local' };

  test('the engine unreachable: exit 8, human and --json, the report still printed', async () => {
    const human = await runCli(['status'], { env: unreachable });
    expect(human.code).toBe(8);
    expect(human.stdout).toContain('Docker engine not reachable');
    const json = await runCli(['status', '--json'], { env: unreachable });
    expect(json.code).toBe(8);
    expect(JSON.parse(json.stdout).docker.reachable).toBe(false);
  });
});
