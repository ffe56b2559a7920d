// Commands made of subcommands (`secret set`, `config show`...): dispatch, help and usage
// errors in one place, each subcommand with its own flags and --help.
import { DsoError } from '../errors.ts';
import type { Cli } from './context.ts';
import { parseFlags, type FlagSpec } from './flags.ts';
import { commandHelp, wantsHelp } from './help.ts';
import { closest, orList } from './suggest.ts';

export interface Subcommand {
  usage: string;
  summary: string;
  details?: string;
  flags: FlagSpec[];
  run(cli: Cli, flags: Record<string, unknown>, args: string[]): Promise<number>;
}

export interface SubcommandGroup {
  /** The parent command, like `secret`. */
  name: string;
  /** One paragraph under the usage line. */
  description: string;
  subs: Record<string, Subcommand>;
  aliases?: Record<string, string>;
}

export async function runSubcommand(cli: Cli, argv: string[], group: SubcommandGroup): Promise<number> {
  const [name, ...rest] = argv;
  const subName = name === undefined ? undefined : (group.aliases?.[name] ?? name);
  const sub = subName === undefined ? undefined : group.subs[subName];
  if (!sub) {
    if (name === undefined || name === '--help' || name === '-h') {
      cli.stdout.write(groupHelp(cli, group));
      return name === undefined ? 2 : 0;
    }
    const meant = closest(name, [...Object.keys(group.subs), ...Object.keys(group.aliases ?? {})]).map((m) => `\`${cli.prog} ${group.name} ${m}\``);
    throw new DsoError('USAGE', `unknown ${group.name} command "${name}"`, {
      hint: meant.length > 0 ? `did you mean ${orList(meant)}?` : `run \`${cli.prog} ${group.name} --help\``,
    });
  }
  if (wantsHelp(rest)) {
    cli.stdout.write(commandHelp({ ...sub, usage: `${cli.prog} ${sub.usage}` }));
    return 0;
  }
  const { flags, positionals } = parseFlags(rest, sub.flags, `${group.name} ${subName}`);
  return sub.run(cli, flags, positionals);
}

function groupHelp(cli: Cli, group: SubcommandGroup): string {
  const width = Math.max(...Object.keys(group.subs).map((n) => n.length)) + 2;
  const lines = Object.entries(group.subs).map(([n, s]) => `  ${n.padEnd(width)}${s.summary}`);
  return `Usage: ${cli.prog} ${group.name} COMMAND

${group.description}

Commands:
${lines.join('\n')}

Run '${cli.prog} ${group.name} COMMAND --help' for more information on a command.
`;
}
