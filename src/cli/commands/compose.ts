// `dso compose [GLOBAL FLAGS] COMMAND [ARGS]`: any Compose command on the DSO-resolved model.
import { splitLeading } from '../../compose/args.ts';
import { runCompose } from '../../compose/session.ts';
import { DsoError } from '../../errors.ts';
import type { CompletionSpec } from '../completion.ts';
import type { Cli } from '../context.ts';
import { COMPOSE_COMMANDS } from '../suggest.ts';
import { commandHelp } from '../help.ts';
import { COMPOSE_DETAILS } from './compose-help.ts';
import { COMPOSE_GLOBAL_FLAGS, DSO_PASSTHROUGH_FLAGS, takeDsoFlags } from './passthrough.ts';

/** Compose commands to offer after `compose`, each completed with the project's services. */
const COMPOSE_SUBCOMMANDS = ['up', 'down', ...COMPOSE_COMMANDS, 'version'].sort();
const WITHOUT_SERVICES = new Set(['config', 'cp', 'down', 'ls', 'version']);

export const completion: CompletionSpec = {
  flags: [...DSO_PASSTHROUGH_FLAGS, ...COMPOSE_GLOBAL_FLAGS],
  subcommands: Object.fromEntries(COMPOSE_SUBCOMMANDS.map((c) => [c, { args: WITHOUT_SERVICES.has(c) ? 'none' : 'services' }])),
};

export async function run(cli: Cli, argv: string[]): Promise<number> {
  const { passphraseFile, mode, rest } = takeDsoFlags(argv);
  const { globals, command, rest: args } = splitLeading(rest);
  if (command === undefined || command === '--help' || command === '-h') {
    cli.stdout.write(
      commandHelp({
        usage: `${cli.prog} compose [COMPOSE FLAGS] COMMAND [ARGS...]`,
        summary: 'Run any Compose command; up, create and run get their secrets resolved first.',
        details: `Examples: ${cli.prog} compose ps, ${cli.prog} compose logs -f web, ${cli.prog} compose run web sh\n\n${COMPOSE_DETAILS}`,
        flags: DSO_PASSTHROUGH_FLAGS,
      }),
    );
    return command === undefined ? 2 : 0;
  }
  if (command === 'help') throw new DsoError('USAGE', 'use `docker compose help` for Compose help, or `docker dso compose --help`');
  return runCompose(cli, { globals, command: [command, ...args], passphraseFile, mode });
}
