// DSO's own flags (--passphrase-file, --mode) among Compose's on pass-through command lines.
import { DsoError } from '../../errors.ts';
import type { FlagSpec } from '../flags.ts';

/** For help: the DSO flags that up, compose and down accept among Compose's. */
export const DSO_PASSTHROUGH_FLAGS: FlagSpec[] = [
  { name: 'passphrase-file', type: 'string', valueName: 'FILE', description: 'Read the vault passphrase from FILE' },
  { name: 'mode', type: 'string', valueName: 'MODE', description: 'local (providers run by the CLI) or cloud (through the agent); default: see docs/agent.md' },
  { name: 'strict', type: 'boolean', description: 'Refuse values that look like mistyped references (dso:x, DSOFILE://x) instead of warning' },
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
