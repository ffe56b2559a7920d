// `dso secret set|get|list|rm`: manage the secrets of the local vault. Values enter from a hidden
// prompt, stdin or a file, never argv, and leave only through `get` to stdout.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { DsoError, fsReason } from '../../errors.ts';
import { wipeAll } from '../../secrets/secret-bytes.ts';
import { MAX_VALUE_BYTES as MAX_SECRET_BYTES } from '../../vault/format.ts';
import { validateSecretName } from '../../vault/names.ts';
import type { CompletionSpec } from '../completion.ts';
import { vaultPath, type Cli } from '../context.ts';
import { table, warn } from '../output.ts';
import { PASSPHRASE_FLAG } from '../passphrase.ts';
import { promptHidden } from '../prompt.ts';
import { runSubcommand, type Subcommand } from '../subcommands.ts';
import { openVault } from '../vault-session.ts';

const SUBS: Record<string, Subcommand> = {
  set: {
    usage: 'secret set NAME [--from-file FILE] [--no-rotate]',
    summary: 'Store a secret in the local vault (creating or replacing it), and rotate the containers that use it.',
    details: `The value is read from a hidden prompt when stdin is a terminal, else from stdin
(one trailing newline is removed, so \`echo value | dso secret set NAME\` stores "value"),
or byte for byte from --from-file. It is never taken from the command line.
NAME: segments of [A-Za-z0-9._-] separated by "/", each starting with a letter or digit,
for example app/db_password.
Running containers that use the secret (started by \`docker dso up\`) get the new value at
once, each by its rotation strategy (see \`rotate --help\`), with progress shown; the exit
status is 14 if one could not take it (the original keeps serving). --no-rotate only stores.`,
    flags: [
      { name: 'from-file', type: 'string', valueName: 'FILE', description: 'Read the value from FILE, byte for byte' },
      { name: 'no-rotate', type: 'boolean', description: 'Only store the value; leave running containers as they are' },
      PASSPHRASE_FLAG,
    ],
    run: secretSet,
  },
  get: {
    usage: 'secret get NAME [--reveal]',
    summary: 'Print a secret value to stdout, byte for byte (no newline added).',
    details: `To keep values off screens and terminal scrollback, get refuses to print to a
terminal unless --reveal is given; redirect or pipe it instead.`,
    flags: [{ name: 'reveal', type: 'boolean', description: 'Allow printing the value to a terminal' }, PASSPHRASE_FLAG],
    run: secretGet,
  },
  list: {
    usage: 'secret list [--json]',
    summary: 'List secret names, sizes and update times (never values).',
    flags: [{ name: 'json', type: 'boolean', description: 'Print JSON' }, PASSPHRASE_FLAG],
    run: secretList,
  },
  rm: {
    usage: 'secret rm NAME [--force]',
    summary: 'Remove a secret from the local vault, unless containers use it.',
    details: `Containers started by \`docker dso up\` that use the secret, running or stopped, are
named and nothing is removed: they keep the value they have, but could not be recreated,
rotated or restarted after a reboot without it. Remove them first (\`docker dso down\`), or
add --force to remove the secret anyway (the check is then skipped). When the Docker engine
cannot be reached, the secret is removed with a warning.`,
    flags: [{ name: 'force', short: 'f', type: 'boolean', description: 'Remove it even if containers use it' }, PASSPHRASE_FLAG],
    run: secretRm,
  },
};
const ALIASES: Record<string, string> = { ls: 'list', remove: 'rm', delete: 'rm' };

export const completion: CompletionSpec = { subcommands: SUBS };

export async function run(cli: Cli, argv: string[]): Promise<number> {
  return runSubcommand(cli, argv, { name: 'secret', description: 'Manage the secrets of the local vault.', subs: SUBS, aliases: ALIASES });
}

function oneName(args: string[], command: string): string {
  if (args.length !== 1) {
    throw new DsoError('USAGE', `secret ${command} needs exactly one NAME${args.length > 1 ? ` (got ${args.length} arguments; values are never taken from the command line)` : ''}`, {
      hint: `usage: dso ${SUBS[command]!.usage}`,
    });
  }
  validateSecretName(args[0]!);
  return args[0]!;
}

async function secretSet(cli: Cli, flags: Record<string, unknown>, args: string[]): Promise<number> {
  const name = oneName(args, 'set');
  const fromFile = flags['from-file'] as string | undefined;
  if (fromFile !== undefined) checkValueFile(fromFile);
  const vault = await openVault(cli, flags['passphrase-file'] as string | undefined);
  let value: Uint8Array | undefined;
  try {
    value = await readValue(cli, name, fromFile);
    if (value.length === 0) {
      throw new DsoError('USAGE', `the value for ${name} is empty; nothing was stored`, {
        hint: 'pipe the value on stdin, type it at the prompt, or use --from-file FILE',
      });
    }
    if (value.length > MAX_SECRET_BYTES) {
      throw new DsoError('USAGE', `the value for ${name} is ${value.length} bytes, over the ${MAX_SECRET_BYTES}-byte limit; nothing was stored`, {
        hint: 'store large material (archives, keystores) elsewhere and keep its key in DSO',
      });
    }
    const existed = vault.has(name);
    await vault.set(name, value);
    cli.stderr.write(`${existed ? 'Updated' : 'Stored'} ${name} (${value.length} bytes)\n`);
    wipeAll(value);
    if (flags['no-rotate'] === true || !existed) return 0;
    return await rotateUsers(cli, name, vault);
  } finally {
    wipeAll(value);
    vault.close();
  }
}

/**
 * After an update: the running containers that use the secret get it now. The value is stored
 * whatever happens here; an engine that cannot be reached only earns a warning.
 */
async function rotateUsers(cli: Cli, name: string, vault: import('../../vault/vault.ts').LocalVault): Promise<number> {
  const { rotateLocally, summarise } = await import('../../rotation/local.ts');
  let result: Awaited<ReturnType<typeof rotateLocally>>;
  try {
    result = await rotateLocally(cli, { id: name, dryRun: false, json: false, vault, openVault: async () => vault });
  } catch (e) {
    if (e instanceof DsoError && e.code === 'DOCKER_UNREACHABLE') {
      cli.stderr.write(`warning: the value is stored, but running containers could not be checked (${e.message}); run \`${cli.prog} rotate ${name}\` later\n`);
      return 0;
    }
    throw e;
  }
  if (result.plan.rotations.length === 0 && result.plan.skipped.length === 0) return 0;
  const summary = summarise(result, `secret ${name}`);
  cli.stderr.write(summary.text);
  return summary.ok ? 0 : 14;
}

function checkValueFile(file: string): void {
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new DsoError('USAGE', `--from-file ${file} is not a regular file`);
    if (st.size > MAX_SECRET_BYTES) {
      throw new DsoError('USAGE', `--from-file ${file} is ${st.size} bytes, over the ${MAX_SECRET_BYTES}-byte limit`);
    }
  } catch (e) {
    if (e instanceof DsoError) throw e;
    throw new DsoError('USAGE', `cannot read --from-file ${file}: ${fsReason(e)}`, {
      hint: 'check the path and its permissions',
    });
  }
}

async function readValue(cli: Cli, name: string, fromFile: string | undefined): Promise<Uint8Array> {
  if (fromFile !== undefined) return new Uint8Array(readFileSync(fromFile));
  if (cli.stdinIsTTY) return promptHidden(`Value for ${name} (input hidden): `);
  const raw = await cli.readStdin();
  let end = raw.length;
  if (end > 0 && raw[end - 1] === 0x0a) end--;
  if (end > 0 && raw[end - 1] === 0x0d) end--;
  if (end === raw.length) return raw;
  const value = raw.slice(0, end);
  raw.fill(0);
  return value;
}

async function secretGet(cli: Cli, flags: Record<string, unknown>, args: string[]): Promise<number> {
  const name = oneName(args, 'get');
  if (cli.stdout.isTTY && !flags.reveal) {
    throw new DsoError('REFUSED', `not printing ${name} to a terminal`, {
      hint: `pipe or redirect the output, or add --reveal to show it on screen`,
    });
  }
  const vault = await openVault(cli, flags['passphrase-file'] as string | undefined);
  try {
    if (!vault.has(name)) throw notFound(cli, name);
    const value = vault.get(name);
    try {
      cli.stdout.write(value.expose());
    } finally {
      value.wipe();
    }
    return 0;
  } finally {
    vault.close();
  }
}

async function secretList(cli: Cli, flags: Record<string, unknown>, args: string[]): Promise<number> {
  if (args.length > 0) throw new DsoError('USAGE', 'secret list takes no arguments');
  const vault = await openVault(cli, flags['passphrase-file'] as string | undefined);
  try {
    const entries = vault.list();
    if (flags.json) {
      const out = entries.map((e) => ({
        name: e.name,
        size: e.size,
        createdAt: e.createdAt.toISOString(),
        updatedAt: e.updatedAt.toISOString(),
      }));
      cli.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    } else if (entries.length === 0) {
      cli.stderr.write(`The vault is empty. Add a secret with \`${cli.prog} secret set NAME\`.\n`);
    } else {
      const rows = entries.map((e) => [e.name, `${e.size} B`, e.updatedAt.toISOString().replace(/\.\d+Z$/, 'Z')]);
      cli.stdout.write(table(rows, ['NAME', 'SIZE', 'UPDATED']));
    }
    return 0;
  } finally {
    vault.close();
  }
}

async function secretRm(cli: Cli, flags: Record<string, unknown>, args: string[]): Promise<number> {
  const name = oneName(args, 'rm');
  // Before the passphrase is asked: a refusal should not cost typing it.
  if (flags.force !== true) await refuseIfUsed(cli, name);
  const vault = await openVault(cli, flags['passphrase-file'] as string | undefined);
  try {
    if (!(await vault.remove(name))) throw notFound(cli, name);
    cli.stderr.write(`Removed ${name}\n`);
    return 0;
  } finally {
    vault.close();
  }
}

/**
 * Refuses to remove a secret that containers started from this vault use (their labels say so,
 * see rotation/inventory.ts). An engine that cannot be reached only earns a warning: the vault
 * is usable without Docker.
 */
async function refuseIfUsed(cli: Cli, name: string): Promise<void> {
  const path = vaultPath(cli.env);
  if (!existsSync(path)) return; // openVault says there is no vault
  const { vaultIdOf } = await import('../../vault/vault-id.ts');
  const { loadManaged, sameSource } = await import('../../rotation/inventory.ts');
  const { connectEngine } = await import('../../docker/engine.ts');
  let users: Awaited<ReturnType<typeof loadManaged>>;
  try {
    users = (await loadManaged(await connectEngine(cli.env))).filter((c) => sameSource(c, name, { vaultId: vaultIdOf(path) }));
  } catch (e) {
    if (!(e instanceof DsoError) || e.code !== 'DOCKER_UNREACHABLE') throw e;
    warn(cli, `could not check which containers use ${name} (${e.message}); removing it anyway`);
    return;
  }
  if (users.length === 0) return;
  const names = users.map((c) => `${c.name}${c.running ? '' : ' (stopped)'}`);
  throw new DsoError('REFUSED', `${name} is used by ${users.length === 1 ? 'a container' : `${users.length} containers`}: ${names.join(', ')}; nothing was removed`, {
    hint: `they keep the value they have, but could not be recreated, rotated or restarted after a reboot without it: remove them first (\`${cli.prog} down\` in their project), or add --force`,
  });
}

function notFound(cli: Cli, name: string): DsoError {
  return new DsoError('SECRET_NOT_FOUND', `no secret named ${name} in the local vault`, {
    hint: `see the names with \`${cli.prog} secret list\``,
  });
}
