// The compiled binary as users meet it: installed as a Docker CLI plugin, help on every command,
// the vault commands with hidden prompts on a real terminal (tmux), and concurrent writers.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PASSPHRASE, DOCKER_CONFIG, DSO_BIN, canary, dso, run, sandbox, type Sandbox } from './support.ts';

const ROOT = join(import.meta.dir, '..', '..');
let sb: Sandbox;

beforeAll(() => {
  sb = sandbox('cli');
});
afterAll(() => sb.cleanup());

describe('the Docker CLI plugin', () => {
  test('install.sh installs it, docker lists it, and `docker dso` runs it', async () => {
    const config = join(sb.dir, 'docker-config');
    mkdirSync(join(config, 'cli-plugins'), { recursive: true });
    // Keep Compose reachable from this config too.
    const compose = join(DOCKER_CONFIG, 'cli-plugins', 'docker-compose');
    if (existsSync(compose)) symlinkSync(readlinkSync(compose).startsWith('/') ? readlinkSync(compose) : compose, join(config, 'cli-plugins', 'docker-compose'));
    const env = { ...sb.env, DOCKER_CONFIG: config, HOME: sb.dir };
    const inst = await run(['sh', join(ROOT, 'scripts', 'install.sh'), DSO_BIN], { env });
    expect(inst.code, inst.stderr).toBe(0);
    expect(existsSync(join(config, 'cli-plugins', 'docker-dso'))).toBe(true);
    expect(readlinkSync(join(sb.dir, '.local', 'bin', 'dso'))).toBe(join(config, 'cli-plugins', 'docker-dso'));

    const meta = await run([join(config, 'cli-plugins', 'docker-dso'), 'docker-cli-plugin-metadata'], { env });
    expect(JSON.parse(meta.stdout)).toMatchObject({ SchemaVersion: '0.1.0', Vendor: 'DSO' });

    const help = await run(['docker', 'dso', '--help'], { env });
    expect(help.code).toBe(0);
    for (const cmd of ['init', 'secret', 'up', 'down', 'compose', 'version']) expect(help.stdout).toContain(`  ${cmd}`);
    expect(help.stdout).toContain('Usage: docker dso');

    const version = await run(['docker', 'dso', 'version'], { env });
    expect(version.stdout).toMatch(/^Docker Secret Operator v\d+\.\d+\.\d+/);
    const listed = await run(['docker', '--help'], { env });
    expect(listed.stdout).toContain('dso*');
  });

  test('with the test engine of scripts/test-env.sh, `docker dso` works whether install.sh ran before or after sourcing it', async () => {
    // A new user's shells: no DOCKER_CONFIG of their own, HOME their home; the profile's
    // settings, so the sourced environment is this run's engine (reused, not restarted).
    const base: Record<string, string> = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' };
    for (const [name, value] of Object.entries(process.env)) if (name.startsWith('DSO_TEST') && value) base[name] = value;
    const testEnv = join(ROOT, 'scripts', 'test-env.sh');
    const install = join(ROOT, 'scripts', 'install.sh');
    const shell = (home: string, script: string) => run(['bash', '-c', script, 'bash', testEnv, install, DSO_BIN], { env: { ...base, HOME: home } });
    const sourced = 'source "$1" >/dev/null 2>&1 || exit 90; ';
    // Sourcing rewrites the shared private config's pointer to the user's plugins: put it back.
    const kept = ['config.json', 'dso-test-env'].filter((name) => existsSync(join(DOCKER_CONFIG, name))).map((name) => [name, readFileSync(join(DOCKER_CONFIG, name))] as const);
    try {
      // install.sh first, then the test engine.
      const before = join(sb.dir, 'home-before');
      mkdirSync(before);
      const inst = await shell(before, 'sh "$2" "$3"');
      expect(inst.code, inst.stderr).toBe(0);
      const then = await shell(before, `${sourced}docker dso version && docker compose version --short`);
      expect(then.code, then.stderr).toBe(0);
      expect(then.stdout).toMatch(/^Docker Secret Operator v\d+\.\d+\.\d+/);
      // The test engine's Compose still wins over whatever the user has.
      const compose = await run(['docker', 'compose', 'version', '--short'], { env: { ...base, HOME: before, DOCKER_CONFIG } });
      expect(then.stdout.trim().split('\n').pop()).toBe(compose.stdout.trim());

      // The test engine first, then install.sh in the same shell: the plugin lands in the user's
      // own directory (the private one goes with the engine), and works there and in a new shell.
      const after = join(sb.dir, 'home-after');
      mkdirSync(after);
      const same = await shell(after, `${sourced}sh "$2" "$3" && docker dso version`);
      expect(same.code, same.stderr).toBe(0);
      expect(same.stdout).toMatch(/Docker Secret Operator v\d+\.\d+\.\d+/);
      expect(existsSync(join(after, '.docker', 'cli-plugins', 'docker-dso'))).toBe(true);
      expect(existsSync(join(DOCKER_CONFIG, 'cli-plugins', 'docker-dso'))).toBe(false);
      expect(readlinkSync(join(after, '.local', 'bin', 'dso'))).toBe(join(after, '.docker', 'cli-plugins', 'docker-dso'));
      const fresh = await shell(after, 'docker dso version');
      expect(fresh.code, fresh.stderr).toBe(0);
      expect(fresh.stdout).toMatch(/^Docker Secret Operator v\d+\.\d+\.\d+/);
    } finally {
      for (const [name, content] of kept) writeFileSync(join(DOCKER_CONFIG, name), content);
    }
  });

  test('install.sh refuses a binary whose checksum does not match', async () => {
    const dir = join(sb.dir, 'dl');
    mkdirSync(dir, { recursive: true });
    const bin = join(dir, 'dso-linux-x64');
    writeFileSync(bin, readFileSync(DSO_BIN));
    writeFileSync(`${bin}.sha256`, `${'0'.repeat(64)}  dso-linux-x64\n`);
    const r = await run(['sh', join(ROOT, 'scripts', 'install.sh'), bin], { env: { ...sb.env, DOCKER_CONFIG: join(dir, 'cfg'), HOME: dir } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('checksum mismatch');
    expect(existsSync(join(dir, 'cfg', 'cli-plugins', 'docker-dso'))).toBe(false);
  });
});

describe('help', () => {
  test('every command answers --help with exit 0', async () => {
    for (const args of [['--help'], ['init', '--help'], ['bootstrap', '--help'], ['secret', '--help'], ['secret', 'set', '--help'], ['secret', 'get', '--help'], ['secret', 'list', '--help'], ['secret', 'rm', '--help'], ['up', '--help'], ['down', '--help'], ['compose', '--help'], ['version', '--help'], ['bootstrap', 'agent', '--help'], ['system', '--help'], ['system', 'setup', '--help'], ['system', 'status', '--help'], ['system', 'logs', '--help'], ['completion', '--help']]) {
      const r = await dso(sb, args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toContain('Usage:');
    }
  });

  test('unknown commands and flags are usage errors', async () => {
    const r = await dso(sb, ['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown command "frobnicate"');
    const f = await dso(sb, ['secret', 'list', '--bogus']);
    expect(f.code).toBe(2);
    expect(f.stderr).toContain('unknown flag --bogus');
  });
});

describe('vault commands', () => {
  let home: Sandbox;
  beforeAll(async () => {
    home = sandbox('vaultcli');
    expect((await dso(home, ['init'])).code).toBe(0);
  });
  afterAll(() => home.cleanup());

  test('init refuses to overwrite an existing vault', async () => {
    const before = readFileSync(join(home.home, 'vault.enc'));
    const r = await dso(home, ['init']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('already exists');
    expect(readFileSync(join(home.home, 'vault.enc')).equals(before)).toBe(true);
  });

  test('set never takes a value from argv', async () => {
    const r = await dso(home, ['secret', 'set', 'app/x', 'value-on-argv']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('never taken from the command line');
  });

  test('set from stdin, --from-file, get, list --json, rm', async () => {
    const v = canary('cli');
    expect((await dso(home, ['secret', 'set', 'app/one'], { input: `${v}\n` })).code).toBe(0);
    const file = join(home.dir, 'cert.bin');
    writeFileSync(file, new Uint8Array([0, 1, 2, 255, 10]));
    expect((await dso(home, ['secret', 'set', 'app/cert', '--from-file', file])).code).toBe(0);
    expect((await dso(home, ['secret', 'get', 'app/one'])).stdout).toBe(v);
    const list = JSON.parse((await dso(home, ['secret', 'list', '--json'])).stdout) as Array<Record<string, unknown>>;
    expect(list.map((e) => e.name)).toEqual(['app/cert', 'app/one']);
    expect(list[0]).toMatchObject({ name: 'app/cert', size: 5 });
    expect(JSON.stringify(list)).not.toContain(v);
    const rm = await dso(home, ['secret', 'rm', 'app/one']);
    expect(rm.code).toBe(0);
    const gone = await dso(home, ['secret', 'get', 'app/one']);
    expect(gone.code).toBe(3);
  });

  test('a passphrase file holds the same passphrase as DSO_PASSPHRASE, and only it', async () => {
    // A regression test: the first line of the file was once copied with Buffer.slice (a view)
    // and then wiped, so every file gave an all-zero passphrase of the same length.
    const sb = sandbox('passfile');
    try {
      writeFileSync(join(sb.dir, 'pass'), `${PASSPHRASE}\nignored second line\n`);
      writeFileSync(join(sb.dir, 'other'), `${'x'.repeat(PASSPHRASE.length)}\n`);
      const noEnv = { DSO_PASSPHRASE: '' };
      expect((await dso(sb, ['init', '--passphrase-file', join(sb.dir, 'pass')], { env: noEnv })).code).toBe(0);
      expect((await dso(sb, ['secret', 'list'])).code).toBe(0);
      const other = await dso(sb, ['secret', 'list', '--passphrase-file', join(sb.dir, 'other')], { env: noEnv });
      expect(other.code).toBe(4);
      expect((await dso(sb, ['secret', 'list', '--passphrase-file', join(sb.dir, 'pass')], { env: noEnv })).code).toBe(0);
    } finally {
      sb.cleanup();
    }
  });

  test('20 concurrent `secret set` of different names keep all 20', async () => {
    const values = Array.from({ length: 20 }, (_, i) => [`conc/s${i}`, canary(`c${i}`)] as const);
    const results = await Promise.all(values.map(([n, v]) => dso(home, ['secret', 'set', n], { input: v })));
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    for (const [n, v] of values) expect((await dso(home, ['secret', 'get', n])).stdout).toBe(v);
  });

  test('a wrong passphrase, a truncated file, a tampered file: distinct errors, nothing changed', async () => {
    const path = join(home.home, 'vault.enc');
    const good = readFileSync(path);
    const wrong = await dso(home, ['secret', 'list'], { env: { DSO_PASSPHRASE: 'wrong passphrase' } });
    expect(wrong.code).toBe(4);
    expect(wrong.stderr.toLowerCase()).toContain('passphrase');

    writeFileSync(path, good.subarray(0, good.length - 7));
    const truncated = await dso(home, ['secret', 'list']);
    expect(truncated.code).toBe(5);
    expect(truncated.stderr.toLowerCase()).toContain('truncated');

    const tampered = Buffer.from(good);
    tampered[tampered.length - 30]! ^= 0x01;
    writeFileSync(path, tampered);
    const t = await dso(home, ['secret', 'set', 'app/new'], { input: 'x' });
    expect(t.code).toBe(5);
    expect(t.stderr.toLowerCase()).toMatch(/tamper|modified|authenticat/);
    expect(readFileSync(path).equals(tampered)).toBe(true);
    writeFileSync(path, good);
    expect((await dso(home, ['secret', 'list'])).code).toBe(0);
  });
});

interface Terminal {
  waitFor(text: string): Promise<void>;
  /** Types a line and presses Enter. */
  send(keys: string): Promise<void>;
  /** The screen once the command has exited. */
  screen(): Promise<string>;
  done(): Promise<void>;
}

/**
 * Runs the binary on a real terminal (tmux) with exactly `env`, for hidden-prompt tests. Each
 * terminal has a tmux server of its own (-S): a session started right after the last one of a
 * shared server was killed can reach that server while it exits, and be lost with it (seen once
 * in CI: an empty screen for 10 s).
 */
async function terminal(args: string[], env: Record<string, string>): Promise<Terminal> {
  const name = `dso-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const socket = join(tmpdir(), `${name}.tmux`);
  const tmux = (...a: string[]) => ['tmux', '-S', socket, ...a];
  const quote = (a: string) => `'${a.replaceAll("'", "'\\''")}'`;
  const envArgs = Object.entries(env).map(([k, v]) => quote(`${k}=${v}`));
  const shell = `env -i ${envArgs.join(' ')} ${args.map(quote).join(' ')}; echo "[exit $?]"; sleep 30`;
  const base = { env: { PATH: process.env.PATH ?? '', HOME: env.HOME ?? '/root', TERM: 'xterm' } };
  const started = await run(tmux('new-session', '-d', '-s', name, '-x', '160', '-y', '20', shell), base);
  if (started.code !== 0) throw new Error(`tmux could not start a terminal (exit ${started.code}): ${started.stderr}`);
  const capture = async () => {
    const r = await run(tmux('capture-pane', '-p', '-t', name), base);
    return r.code === 0 ? r.stdout : `(tmux capture-pane failed, exit ${r.code}: ${r.stderr.trim()})`;
  };
  const waitFor = async (text: string) => {
    for (let i = 0; i < 100; i++) {
      if ((await capture()).includes(text)) return;
      await Bun.sleep(100);
    }
    throw new Error(`timed out waiting for "${text}" on screen:\n${await capture()}`);
  };
  return {
    waitFor,
    send: async (keys) => {
      await run(tmux('send-keys', '-t', name, '-l', keys), base);
      await run(tmux('send-keys', '-t', name, 'Enter'), base);
    },
    screen: async () => {
      await waitFor('[exit ');
      return capture();
    },
    done: async () => {
      await run(tmux('kill-server'), base);
      rmSync(socket, { force: true });
    },
  };
}

describe('on a terminal', () => {
  test('init asks twice with echo off; set prompts hidden; get refuses a terminal without --reveal', async () => {
    const t = sandbox('tty');
    const env = { PATH: process.env.PATH ?? '', HOME: t.dir, DSO_HOME: t.home, TERM: 'xterm', NO_COLOR: '1' };
    const pass = 'typed-passphrase-123';
    const value = canary('typed');
    try {
      const init = await terminal([DSO_BIN, 'init'], env);
      await init.waitFor('New vault passphrase:');
      await init.send(pass);
      await init.waitFor('Repeat passphrase:');
      await init.send(pass);
      const s1 = await init.screen();
      await init.done();
      expect(s1).toContain('[exit 0]');
      expect(s1).not.toContain(pass);

      const set = await terminal([DSO_BIN, 'secret', 'set', 'app/typed'], env);
      await set.waitFor('Vault passphrase:');
      await set.send(pass);
      await set.waitFor('Value for app/typed');
      await set.send(value);
      const s2 = await set.screen();
      await set.done();
      expect(s2).toContain('[exit 0]');
      expect(s2).not.toContain(value);
      expect(s2).not.toContain(pass);

      const get = await terminal([DSO_BIN, 'secret', 'get', 'app/typed'], { ...env, DSO_PASSPHRASE: pass });
      const s3 = await get.screen();
      await get.done();
      expect(s3).toContain('not printing app/typed to a terminal');
      expect(s3).not.toContain(value);

      const got = await run([DSO_BIN, 'secret', 'get', 'app/typed'], { env: { ...env, DSO_PASSPHRASE: pass } });
      expect(got.stdout).toBe(value);
    } finally {
      t.cleanup();
    }
  });

  test('mismatched passphrases on init create nothing', async () => {
    const t = sandbox('tty2');
    const env = { PATH: process.env.PATH ?? '', HOME: t.dir, DSO_HOME: t.home, TERM: 'xterm', NO_COLOR: '1' };
    try {
      const init = await terminal([DSO_BIN, 'init'], env);
      await init.waitFor('New vault passphrase:');
      await init.send('first-passphrase');
      await init.waitFor('Repeat passphrase:');
      await init.send('other-passphrase');
      const s = await init.screen();
      await init.done();
      expect(s).toContain('the two passphrases differ');
      expect(s).toContain('[exit 4]');
      expect(existsSync(join(t.home, 'vault.enc'))).toBe(false);
    } finally {
      t.cleanup();
    }
  });
});
