// `dso version`: the version, and with --json the build facts a bug report needs.
import { VERSION } from '../../version.ts';
import type { CompletionSpec } from '../completion.ts';
import type { Cli } from '../context.ts';
import { parseFlags, type FlagSpec } from '../flags.ts';
import { commandHelp, wantsHelp } from '../help.ts';

const FLAGS: FlagSpec[] = [{ name: 'json', type: 'boolean', description: 'Print JSON' }];

export const completion: CompletionSpec = { flags: FLAGS };

export async function run(cli: Cli, argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    cli.stdout.write(commandHelp({ usage: `${cli.prog} version [--json]`, summary: 'Print the DSO version.', flags: FLAGS }));
    return 0;
  }
  const { flags } = parseFlags(argv, FLAGS, 'version');
  if (flags.json) {
    cli.stdout.write(
      `${JSON.stringify({ version: VERSION, bun: Bun.version, os: process.platform, arch: process.arch })}\n`,
    );
  } else {
    cli.stdout.write(`Docker Secret Operator v${VERSION}\n`);
  }
  return 0;
}
