// `dso config show|validate|edit`: look at, check and safely change dso.yaml. Showing masks any
// value that could be a credential; editing happens on a private copy that replaces the file
// only once it is valid.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { configCandidates, findConfigPath } from '../../config/find.ts';
import { ConfigInvalidError, parseConfig, type DsoConfig } from '../../config/load.ts';
import { DsoError, fsReason } from '../../errors.ts';
import { writeFileAtomic } from '../../vault/atomic-write.ts';
import type { CompletionSpec } from '../completion.ts';
import type { Cli } from '../context.ts';
import type { FlagSpec } from '../flags.ts';
import { warn } from '../output.ts';
import { promptLine } from '../prompt.ts';
import { runSubcommand, type Subcommand } from '../subcommands.ts';

const FILE_FLAG: FlagSpec = { name: 'file', short: 'f', type: 'string', valueName: 'FILE', description: 'The dso.yaml to use (default: $DSO_CONFIG, /etc/dso/dso.yaml, ./dso.yaml)' };
const JSON_FLAG: FlagSpec = { name: 'json', type: 'boolean', description: 'Print JSON' };

const SUBS: Record<string, Subcommand> = {
  show: {
    usage: 'config show [--file FILE] [--json]',
    summary: 'Print the effective configuration, defaults included, credentials masked.',
    details: 'Durations are shown in milliseconds and sizes in bytes, as DSO uses them.\nAny value of a key that names a token, secret, password, passphrase or key is masked.',
    flags: [FILE_FLAG, JSON_FLAG],
    run: show,
  },
  validate: {
    usage: 'config validate [--file FILE] [--json]',
    summary: 'Check dso.yaml; exit 0 when valid, 2 with every problem listed when not.',
    flags: [FILE_FLAG, JSON_FLAG],
    run: validate,
  },
  edit: {
    usage: 'config edit [--file FILE]',
    summary: 'Edit dso.yaml in $VISUAL or $EDITOR; it is replaced only if the result is valid.',
    details: 'The editor works on a private copy. When the result is not valid, the problems are shown\nand you can edit again; the original file is never left half-written or invalid.',
    flags: [FILE_FLAG],
    run: edit,
  },
};

export const completion: CompletionSpec = { subcommands: SUBS };

export async function run(cli: Cli, argv: string[]): Promise<number> {
  return runSubcommand(cli, argv, { name: 'config', description: 'Show, validate and edit the DSO configuration file (dso.yaml).', subs: SUBS });
}

function configPath(cli: Cli, flags: Record<string, unknown>, mustExist: boolean): string {
  const given = flags.file as string | undefined;
  const path = given === undefined ? findConfigPath(cli.env, cli.cwd) : resolve(cli.cwd, given);
  if (path === undefined || (mustExist && !existsSync(path))) {
    throw new DsoError('CONFIG_NOT_FOUND', path === undefined ? `no dso.yaml found (looked for ${configCandidates(cli.env, cli.cwd).join(' and ')})` : `no configuration file at ${path}`, {
      hint: `create one with \`${cli.prog} config edit --file PATH\`, or set DSO_CONFIG`,
    });
  }
  return path;
}

async function load(path: string): Promise<DsoConfig> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new DsoError('CONFIG_INVALID', `cannot read ${path}: ${fsReason(e)}`, { hint: 'check the file\'s permissions (reading /etc/dso/dso.yaml may need sudo)' });
  }
  return parseConfig(text, path);
}

async function validate(cli: Cli, flags: Record<string, unknown>): Promise<number> {
  const path = configPath(cli, flags, true);
  try {
    const config = await load(path);
    const providers = [...config.providers.values()].map((p) => ({ name: p.name, kind: p.kind, isolation: p.isolation }));
    if (flags.json) cli.stdout.write(`${JSON.stringify({ valid: true, path, providers, problems: [] }, null, 2)}\n`);
    else cli.stdout.write(`${path} is valid: ${providers.length} provider${providers.length === 1 ? '' : 's'}${providers.length ? ` (${providers.map((p) => `${p.name}: ${p.kind}`).join(', ')})` : ''}\n`);
    return 0;
  } catch (e) {
    if (flags.json && e instanceof ConfigInvalidError) {
      cli.stdout.write(`${JSON.stringify({ valid: false, path, providers: [], problems: e.problems }, null, 2)}\n`);
      return e.exitCode;
    }
    throw e;
  }
}

/** Keys whose values may be credentials; `*_env` and `*_file` keys hold names and paths. */
const SENSITIVE = /token|secret|password|passphrase|credential|private|(^|_)key$|^sk$|^ak$/i;

export function mask(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) return value.map((v) => mask(v, key));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mask(v, k)]));
  if (key && SENSITIVE.test(key) && !/_(env|file|path)$/.test(key) && (typeof value === 'string' || typeof value === 'number')) return '********';
  return value;
}

async function show(cli: Cli, flags: Record<string, unknown>): Promise<number> {
  const path = configPath(cli, flags, true);
  const config = await load(path);
  const view = {
    providers: Object.fromEntries(
      [...config.providers.values()].map((p) => [
        p.name,
        { type: p.kind, isolation: p.isolation, timeout_ms: p.timeoutMs, env: p.env, optional_env: p.optionalEnv, user: p.user ? `${p.user.uid}:${p.user.gid}` : 'as DSO', ...(mask(p.config) as Record<string, unknown>) },
      ]),
    ),
    agent: { ...config.agent, socket: { ...config.agent.socket, mode: `0${config.agent.socket.mode.toString(8)}` } },
    defaults: config.defaults,
  };
  if (flags.json) cli.stdout.write(`${JSON.stringify({ path, ...view }, null, 2)}\n`);
  else cli.stdout.write(`# ${path} (effective: defaults filled in, durations in ms, sizes in bytes, credentials masked)\n${stringify(view)}`);
  return 0;
}

const TEMPLATE = `# DSO configuration: see docs/configuration.md and docs/providers.md.
providers: {}
#  vault:
#    addr: https://vault.example.com:8200
#    auth: { method: token, token_env: VAULT_TOKEN }
agent:
  cache:
    ttl: 1h
    max_secret_size: 10Mi
`;

async function edit(cli: Cli, flags: Record<string, unknown>): Promise<number> {
  const path = configPath(cli, flags, false);
  const exists = existsSync(path);
  const original = exists ? readFileSync(path) : undefined;
  const mode = exists ? statSync(path).mode & 0o777 : 0o644;
  const editor = (cli.env.VISUAL || cli.env.EDITOR || 'vi').split(/\s+/).filter(Boolean);
  const dir = mkdtempSync(join(tmpdir(), 'dso-config-'));
  const copy = join(dir, 'dso.yaml');
  try {
    writeFileSync(copy, original ?? TEMPLATE, { mode: 0o600 });
    for (;;) {
      const proc = Bun.spawn([...editor, copy], { stdio: ['inherit', 'inherit', 'inherit'], env: cli.env as Record<string, string> });
      const code = await proc.exited;
      if (code !== 0) {
        cli.stderr.write(`the editor exited with code ${code}; ${path} was not changed\n`);
        return 1;
      }
      const edited = readFileSync(copy);
      if (original && Buffer.compare(edited, original) === 0) {
        cli.stderr.write(`no changes; ${path} was not changed\n`);
        return 0;
      }
      try {
        await parseConfig(edited.toString('utf8'), path);
      } catch (e) {
        if (!(e instanceof DsoError)) throw e;
        cli.stderr.write(`${e.message}\n`);
        if (!cli.stdinIsTTY || !/^(y|yes|)$/i.test((await promptLine('Edit again? [Y/n] ')).trim())) {
          cli.stderr.write(`${path} was not changed\n`);
          return e.exitCode;
        }
        continue;
      }
      await writeFileAtomic(path, edited, { mode });
      cli.stderr.write(`${exists ? 'Updated' : 'Created'} ${path}\n`);
      if (path === '/etc/dso/dso.yaml') warn(cli, `a running agent reads the new file on \`${cli.prog} system restart\` or SIGHUP`);
      return 0;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
