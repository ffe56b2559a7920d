// `dso up [COMPOSE ARGS]`: `compose up` with the project's secrets resolved and delivered.
import { splitAnywhere } from '../../compose/args.ts';
import { runCompose } from '../../compose/session.ts';
import type { CompletionSpec } from '../completion.ts';
import type { Cli } from '../context.ts';
import { commandHelp, wantsHelp } from '../help.ts';
import { COMPOSE_GLOBAL_FLAGS, DSO_PASSTHROUGH_FLAGS, takeDsoFlags } from './passthrough.ts';
import { COMPOSE_DETAILS } from './compose-help.ts';

export const completion: CompletionSpec = {
  flags: [...DSO_PASSTHROUGH_FLAGS, ...COMPOSE_GLOBAL_FLAGS, { name: 'detach', short: 'd', type: 'boolean', description: 'Run containers in the background' }],
  args: 'services',
};

export async function run(cli: Cli, argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    cli.stdout.write(
      commandHelp({
        usage: `${cli.prog} up [COMPOSE FLAGS] [UP FLAGS] [SERVICE...]`,
        summary: 'Resolve the secrets of a Compose project from the local vault and run `compose up`.',
        details: `Example: ${cli.prog} up -d\n\n${COMPOSE_DETAILS}`,
        flags: DSO_PASSTHROUGH_FLAGS,
      }),
    );
    return 0;
  }
  const { passphraseFile, mode, rest } = takeDsoFlags(argv);
  const { globals, rest: upArgs } = splitAnywhere(rest);
  return runCompose(cli, { globals, command: ['up', ...upArgs], passphraseFile, mode });
}
