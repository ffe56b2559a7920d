// DSO's one flag among Compose's on pass-through command lines.
import { DsoError } from '../../errors.ts';

export function takePassphraseFlag(argv: readonly string[]): { passphraseFile?: string; rest: string[] } {
  const rest: string[] = [];
  let passphraseFile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    if (a === '--passphrase-file') {
      passphraseFile = argv[++i];
      if (passphraseFile === undefined) throw new DsoError('USAGE', '--passphrase-file needs a FILE');
    } else if (a.startsWith('--passphrase-file=')) {
      passphraseFile = a.slice('--passphrase-file='.length);
    } else {
      rest.push(a);
    }
  }
  return { passphraseFile, rest };
}
