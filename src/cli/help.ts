// Help texts: the top-level command list and a common layout for each command's --help.
import { COMMANDS } from './commands.ts';
import type { FlagSpec } from './flags.ts';

export function topLevelHelp(prog: string): string {
  const groups = ['Secrets', 'Compose', 'Other'] as const;
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  const sections = groups.map((g) => {
    const lines = COMMANDS.filter((c) => c.group === g).map((c) => `  ${c.name.padEnd(width)}${c.summary}`);
    return `${g} commands:\n${lines.join('\n')}`;
  });
  return `Usage: ${prog} COMMAND [ARGS...]

Docker Secret Operator: inject secrets into Docker Compose workloads without leaking them.
In a compose file, \`dso://NAME\` sets an environment variable to the secret and
\`dsofile://NAME\` mounts it as a file in RAM-backed storage (the variable holds the path).

${sections.join('\n\n')}

Environment:
  DSO_HOME         where the local vault lives (default ~/.dso)
  DSO_PASSPHRASE   the vault passphrase, for scripts (prefer --passphrase-file)
  NO_COLOR         disable colour

Run '${prog} COMMAND --help' for more information on a command.
`;
}

export function commandHelp(opts: {
  usage: string;
  summary: string;
  details?: string;
  flags?: readonly FlagSpec[];
}): string {
  const rows: Array<[string, string]> = (opts.flags ?? []).map((f) => [
    `${f.short ? `-${f.short}, ` : '    '}--${f.name}${f.type === 'string' ? ` ${f.valueName ?? 'VALUE'}` : ''}`,
    f.description,
  ]);
  rows.push(['-h, --help', 'Show this help']);
  // One column for every description, two spaces after the longest flag at least.
  const width = Math.max(30, ...rows.map(([names]) => names.length + 2));
  const flagLines = rows.map(([names, description]) => `  ${names.padEnd(width)}${description}`);
  return `Usage: ${opts.usage}

${opts.summary}
${opts.details ? `\n${opts.details.trimEnd()}\n` : ''}
Flags:
${flagLines.join('\n')}
`;
}

export function wantsHelp(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}
