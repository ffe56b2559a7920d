// `dso doctor [--level basic|full] [--json]`: checks everything DSO needs on this host and says
// how to fix what is wrong. Exit 0 when nothing failed (warnings allowed), 1 otherwise, so a
// provisioning script can gate on it. The checks live in src/doctor/.
import { DsoError } from '../../errors.ts';
import type { CompletionSpec } from '../completion.ts';
import type { Cli } from '../context.ts';
import { parseFlags, type FlagSpec } from '../flags.ts';
import { commandHelp, wantsHelp } from '../help.ts';
import { green, red, useColor, yellow, dim } from '../output.ts';

const FLAGS: FlagSpec[] = [
  { name: 'level', type: 'string', valueName: 'LEVEL', choices: ['basic', 'full'], description: 'basic (default) or full: also log in to each provider and test RAM-backed storage' },
  { name: 'json', type: 'boolean', description: 'Print the report as JSON (schema dso.doctor/v1, see docs/doctor.md)' },
  { name: 'mode', type: 'string', valueName: 'MODE', choices: ['local', 'cloud'], description: 'local or cloud (default: detected, see docs/agent.md)' },
];

export const completion: CompletionSpec = { flags: FLAGS };

export async function run(cli: Cli, argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    cli.stdout.write(
      commandHelp({
        usage: `${cli.prog} doctor [--level basic|full] [--json] [--mode local|cloud]`,
        summary: 'Check the Docker engine, Compose, the vault or agent, providers, permissions, RAM-backed storage, clock and disk.',
        details: 'Every failed check says how to fix it. Exit status: 0 when no check failed (warnings\nallowed), 1 when one did, 2 for a usage error. The JSON form is documented in docs/doctor.md.',
        flags: FLAGS,
      }),
    );
    return 0;
  }
  const { flags, positionals } = parseFlags(argv, FLAGS, 'doctor');
  if (positionals.length) throw new DsoError('USAGE', `doctor takes no arguments (got "${positionals[0]}")`);
  const level = (flags.level as string | undefined) ?? 'basic';
  if (level !== 'basic' && level !== 'full') throw new DsoError('USAGE', '--level must be basic or full', { hint: 'for example: doctor --level full' });

  const { runChecks } = await import('../../doctor/checks.ts');
  const { buildReport, renderReport } = await import('../../doctor/report.ts');
  const { mode, checks } = await runChecks({
    env: cli.env,
    cwd: cli.cwd,
    level,
    ...(typeof flags.mode === 'string' ? { modeFlag: flags.mode } : {}),
    uid: process.getuid?.() ?? -1,
    now: Date.now,
    // Progress goes to a terminal only: a script reading --json gets clean output on both streams.
    progress: (m) => {
      if (cli.stderr.isTTY && !flags.json) cli.stderr.write(`${m}\n`);
    },
  });
  const report = buildReport(level, mode, checks);
  if (flags.json) {
    cli.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    const color = useColor(cli.stdout, cli.env);
    const paint = (status: string, text: string) => (status === 'pass' ? green(text, color) : status === 'warn' ? yellow(text, color) : status === 'fail' ? red(text, color) : dim(text, color));
    cli.stdout.write(renderReport(report, paint));
  }
  return report.ok ? 0 : 1;
}
