// Where the vault passphrase comes from, in order: --passphrase-file, DSO_PASSPHRASE, a hidden
// prompt on the terminal. Never from argv: a value on the command line is visible in `ps`.
import { readFileSync } from 'node:fs';
import { DsoError, fsReason } from '../errors.ts';
import { wipeAll } from '../secrets/secret-bytes.ts';
import { passphraseFromFileContent } from '../vault/passphrase.ts';
import type { Cli } from './context.ts';
import type { FlagSpec } from './flags.ts';
import { promptHidden } from './prompt.ts';

export const PASSPHRASE_FLAG: FlagSpec = {
  name: 'passphrase-file',
  type: 'string',
  valueName: 'FILE',
  description: 'Read the vault passphrase from FILE (first line)',
};

export const MIN_PASSPHRASE_BYTES = 8;

export async function readPassphrase(
  cli: Cli,
  file: string | undefined,
  opts: { confirm?: boolean } = {},
): Promise<Uint8Array> {
  let pass: Uint8Array;
  if (file !== undefined) {
    pass = fromFile(file);
  } else if (cli.env.DSO_PASSPHRASE !== undefined && cli.env.DSO_PASSPHRASE !== '') {
    pass = new TextEncoder().encode(cli.env.DSO_PASSPHRASE);
  } else {
    pass = await promptHidden(opts.confirm ? 'New vault passphrase: ' : 'Vault passphrase: ');
    if (opts.confirm) {
      const again = await promptHidden('Repeat passphrase: ');
      const same = again.length === pass.length && again.every((b, i) => b === pass[i]);
      wipeAll(again);
      if (!same) {
        wipeAll(pass);
        throw new DsoError('PASSPHRASE_MISMATCH', 'the two passphrases differ; nothing was created', {
          hint: 'run the command again and type the same passphrase twice',
        });
      }
    }
  }
  if (pass.length === 0) {
    throw new DsoError('PASSPHRASE_REQUIRED', 'the passphrase is empty', {
      hint: 'give a non-empty passphrase',
    });
  }
  if (opts.confirm && pass.length < MIN_PASSPHRASE_BYTES) {
    wipeAll(pass);
    throw new DsoError('PASSPHRASE_REQUIRED', `the passphrase is shorter than ${MIN_PASSPHRASE_BYTES} characters`, {
      hint: 'choose a longer passphrase; a few random words make a good one',
    });
  }
  return pass;
}

function fromFile(file: string): Uint8Array {
  let raw: Uint8Array;
  try {
    raw = readFileSync(file);
  } catch (e) {
    throw new DsoError('PASSPHRASE_REQUIRED', `cannot read the passphrase file ${file}: ${fsReason(e)}`, {
      hint: 'check the path and its permissions',
    });
  }
  return passphraseFromFileContent(raw);
}
