// `dso bootstrap local`: the seed's name for `dso init`.
import { DsoError } from '../../errors.ts';
import type { Cli } from '../context.ts';
import { commandHelp, wantsHelp } from '../help.ts';

export async function run(cli: Cli, argv: string[]): Promise<number> {
  const [target, ...rest] = argv;
  if (target === undefined || target === '--help' || target === '-h') {
    cli.stdout.write(
      commandHelp({
        usage: `${cli.prog} bootstrap local [--passphrase-file FILE]`,
        summary: 'Set up DSO on this machine.',
        details: `Targets:
  local    create the encrypted local vault (the same as \`${cli.prog} init\`)`,
      }),
    );
    return target === undefined ? 2 : 0;
  }
  if (target === 'local') {
    const init = await import('./init.ts');
    return init.run(cli, rest, `${cli.prog} bootstrap local`);
  }
  if (wantsHelp([target])) return 0;
  throw new DsoError('USAGE', `unknown bootstrap target "${target}"`, {
    hint: `run \`${cli.prog} bootstrap local\` to create the local vault`,
  });
}
