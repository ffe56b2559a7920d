// `dso init` (also `dso bootstrap local`): creates the encrypted local vault.
import { DsoError } from '../../errors.ts';
import { wipeAll } from '../../secrets/secret-bytes.ts';
import { LocalVault } from '../../vault/vault.ts';
import type { CompletionSpec } from '../completion.ts';
import { vaultPath, type Cli } from '../context.ts';
import { parseFlags, type FlagSpec } from '../flags.ts';
import { commandHelp, wantsHelp } from '../help.ts';
import { PASSPHRASE_FLAG, readPassphrase } from '../passphrase.ts';
import { existsSync } from 'node:fs';

const FLAGS: FlagSpec[] = [PASSPHRASE_FLAG];

export const completion: CompletionSpec = { flags: FLAGS };

export function initHelp(cli: Cli, usage = `${cli.prog} init`): string {
  return commandHelp({
    usage: `${usage} [--passphrase-file FILE]`,
    summary: 'Create the encrypted local vault at $DSO_HOME/vault.enc (default ~/.dso/vault.enc).',
    details: `The vault is encrypted with AES-256-GCM under a key derived from your passphrase with
argon2id. The passphrase is asked twice on the terminal, or taken from --passphrase-file
or DSO_PASSPHRASE. Nothing is overwritten: an existing vault is an error.`,
    flags: FLAGS,
  });
}

export async function run(cli: Cli, argv: string[], usage?: string): Promise<number> {
  if (wantsHelp(argv)) {
    cli.stdout.write(initHelp(cli, usage));
    return 0;
  }
  const { flags, positionals } = parseFlags(argv, FLAGS, 'init');
  if (positionals.length > 0) throw new DsoError('USAGE', `init takes no arguments (got "${positionals[0]}")`);
  const path = vaultPath(cli.env);
  if (existsSync(path)) {
    throw new DsoError('VAULT_EXISTS', `a vault already exists at ${path}; nothing was changed`, {
      hint: `use it with \`${cli.prog} secret list\`, or set DSO_HOME to create another one elsewhere`,
    });
  }
  const pass = await readPassphrase(cli, flags['passphrase-file'] as string | undefined, { confirm: true });
  try {
    const vault = await LocalVault.create(path, pass);
    vault.close();
  } finally {
    wipeAll(pass);
  }
  cli.stderr.write(`Created ${path} (AES-256-GCM, key derived with argon2id)\n`);
  cli.stderr.write(`Next: store a secret with \`${cli.prog} secret set app/db_password\`\n`);
  return 0;
}
