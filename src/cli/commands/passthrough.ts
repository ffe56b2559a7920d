// DSO's own flags (--passphrase-file, --mode) among Compose's on pass-through command lines.
import { DsoError } from '../../errors.ts';
import type { FlagSpec } from '../flags.ts';

export const STRICT_FLAG: FlagSpec = { name: 'strict', type: 'boolean', description: 'Refuse values that look like mistyped references (dso:x, DSOFILE://x) instead of warning' };

/** For help: the DSO flags that up, compose and down accept among Compose's. */
export const DSO_PASSTHROUGH_FLAGS: FlagSpec[] = [
  { name: 'passphrase-file', type: 'string', valueName: 'FILE', description: 'Read the vault passphrase from FILE' },
  { name: 'mode', type: 'string', valueName: 'MODE', choices: ['local', 'cloud'], description: 'local (providers run by the CLI) or cloud (through the agent); default: see docs/agent.md' },
  STRICT_FLAG,
];

/** The Compose global flags DSO reads itself (compose/args.ts), for shell completion. */
export const COMPOSE_GLOBAL_FLAGS: FlagSpec[] = [
  { name: 'file', short: 'f', type: 'string', valueName: 'FILE', multiple: true, description: 'Compose configuration file' },
  { name: 'project-name', short: 'p', type: 'string', valueName: 'NAME', description: 'Project name' },
  { name: 'project-directory', type: 'string', valueName: 'DIR', description: 'Project working directory' },
  { name: 'profile', type: 'string', valueName: 'PROFILE', multiple: true, description: 'Profile to enable' },
  { name: 'env-file', type: 'string', valueName: 'FILE', multiple: true, description: 'Environment file' },
];

/** DSO's own flags among Compose's: --passphrase-file FILE and --mode local|cloud (not Compose flags). */
export function takeDsoFlags(argv: readonly string[]): { passphraseFile?: string; mode?: string; rest: string[] } {
  const rest: string[] = [];
  const found: { passphraseFile?: string; mode?: string } = {};
  const flags: Record<string, 'passphraseFile' | 'mode'> = { '--passphrase-file': 'passphraseFile', '--mode': 'mode' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    const eq = a.indexOf('=');
    const name = eq === -1 ? a : a.slice(0, eq);
    const key = flags[name];
    if (key === undefined) {
      rest.push(a);
      continue;
    }
    const value = eq === -1 ? argv[++i] : a.slice(eq + 1);
    if (value === undefined) throw new DsoError('USAGE', `${name} needs a value`, { hint: name === '--mode' ? '--mode local or --mode cloud' : `${name} FILE` });
    found[key] = value;
  }
  return { ...found, rest };
}
