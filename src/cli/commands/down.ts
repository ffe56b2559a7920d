// `dso down [COMPOSE ARGS]`: `compose down`, then removal of the project's RAM secret storage.
import { splitAnywhere } from '../../compose/args.ts';
import { runCompose } from '../../compose/session.ts';
import type { CompletionSpec } from '../completion.ts';
import type { Cli } from '../context.ts';
import { commandHelp, wantsHelp } from '../help.ts';
import { COMPOSE_DETAILS } from './compose-help.ts';
import { COMPOSE_GLOBAL_FLAGS, STRICT_FLAG } from './passthrough.ts';

export const completion: CompletionSpec = { flags: [...COMPOSE_GLOBAL_FLAGS, STRICT_FLAG] };

export async function run(cli: Cli, argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    cli.stdout.write(
      commandHelp({
        usage: `${cli.prog} down [COMPOSE FLAGS] [DOWN FLAGS]`,
        summary: "Run `compose down`, then remove the project's secret volumes and holder container.",
        details: `Secret files live only in RAM; after down they are gone.\n\n${COMPOSE_DETAILS}`,
      }),
    );
    return 0;
  }
  const { globals, rest } = splitAnywhere(argv);
  return runCompose(cli, { globals, command: ['down', ...rest] });
}
