// `dso rotate NAME [--dry-run] [--json]`: gives every container that uses secret NAME its current
// value now, with the safest strategy that works, in depends_on order. --dry-run prints the plan
// and changes nothing. In Cloud Mode the agent does it; in Local Mode this command does.
import { parseSecretId } from '../../compose/references.ts';
import { DsoError } from '../../errors.ts';
import type { CompletionSpec } from '../completion.ts';
import type { Cli } from '../context.ts';
import { parseFlags, type FlagSpec } from '../flags.ts';
import { commandHelp, wantsHelp } from '../help.ts';
import { PASSPHRASE_FLAG } from '../passphrase.ts';

const FLAGS: FlagSpec[] = [
  { name: 'dry-run', type: 'boolean', description: 'Print which containers would rotate, how and in which order; change nothing' },
  { name: 'json', type: 'boolean', description: 'Print the plan and the outcome as JSON' },
  { name: 'mode', type: 'string', valueName: 'MODE', choices: ['local', 'cloud'], description: 'local or cloud (default: detected, see docs/agent.md)' },
  PASSPHRASE_FLAG,
];

export const completion: CompletionSpec = { flags: FLAGS };

export async function run(cli: Cli, argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    cli.stdout.write(
      commandHelp({
        usage: `${cli.prog} rotate NAME [--dry-run] [--json]`,
        summary: 'Give every container that uses secret NAME its current value, now.',
        details: `NAME is a local vault name (app/db_password) or a provider reference (vault:db#password).
Each container rotates with the strategy its labels or dso.yaml ask for (dso.strategy:
rolling, restart, signal or none), downgraded to the safest one that works, and the plan says
why. Services rotate after the services they depend on. See docs/rotation.md.
Exit status: 0 when every container was rotated (or none uses NAME), 14 when one was rolled
back or failed (the original kept serving), 2 for a usage error.`,
        flags: FLAGS,
      }),
    );
    return 0;
  }
  const { flags, positionals } = parseFlags(argv, FLAGS, 'rotate');
  if (positionals.length !== 1) throw new DsoError('USAGE', 'rotate needs exactly one secret NAME', { hint: `usage: ${cli.prog} rotate NAME [--dry-run]` });
  const id = parseSecretId(positionals[0]!, 'rotate').id;
  const { detectMode } = await import('../../config/mode.ts');
  const mode = detectMode(cli.env, typeof flags.mode === 'string' ? { flag: flags.mode } : {});
  const json = flags.json === true;
  const dryRun = flags['dry-run'] === true;

  if (mode.mode === 'cloud') {
    const { agentRotate } = await import('../../agent/client.ts');
    const { agentAdminSocketPath } = await import('../../config/find.ts');
    const socket = await agentAdminSocketPath(cli.env);
    const result = await agentRotate(socket.path, { secret: id, dryRun }, json ? undefined : (line) => cli.stderr.write(`${line}\n`)).catch((e: unknown) => {
      // The admin socket is opened by its own group, not agent.socket.group's.
      if (socket.admin && e instanceof DsoError && e.code === 'AGENT_UNREACHABLE') throw new DsoError('AGENT_UNREACHABLE', e.message, { hint: 'rotation goes through the agent\'s admin socket (agent.socket.admin): run this with sudo, or join agent.socket.admin.group' });
      throw e;
    });
    return report(cli, result, id, json, dryRun);
  }
  const { rotateLocally } = await import('../../rotation/local.ts');
  const { openVault } = await import('../vault-session.ts');
  const result = await rotateLocally(cli, { id, dryRun, json, openVault: () => openVault(cli, flags['passphrase-file'] as string | undefined) });
  return report(cli, result, id, json, dryRun);
}

async function report(cli: Cli, result: import('../../rotation/local.ts').LocalRotationResult, id: string, json: boolean, dryRun: boolean): Promise<number> {
  const { formatPlan } = await import('../../rotation/plan.ts');
  const { summarise } = await import('../../rotation/local.ts');
  const summary = summarise(result, `secret ${id}`);
  if (json) {
    cli.stdout.write(`${JSON.stringify({ secret: id, dryRun, plan: result.plan, outcomes: result.outcomes, ok: dryRun || summary.ok }, null, 2)}\n`);
  } else if (dryRun) {
    cli.stdout.write(formatPlan(result.plan, `secret ${id}`));
  } else {
    cli.stdout.write(summary.text);
  }
  return dryRun || summary.ok ? 0 : 14;
}
