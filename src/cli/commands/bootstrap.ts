// `dso bootstrap local`: the seed's name for `dso init`. `dso bootstrap agent`: a production
// host's first step: a commented /etc/dso/dso.yaml when there is none (never replacing one),
// checked, then everything `system setup` does.
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { DsoError } from '../../errors.ts';
import type { CompletionSpec } from '../completion.ts';
import type { Cli } from '../context.ts';
import { parseFlags } from '../flags.ts';
import { commandHelp, wantsHelp } from '../help.ts';

export async function completion(): Promise<CompletionSpec> {
  const [{ PASSPHRASE_FLAG }, { SETUP_FLAGS }] = await Promise.all([import('../passphrase.ts'), import('./system.ts')]);
  return {
    subcommands: {
      local: { summary: 'Create the encrypted local vault (the same as init)', flags: [PASSPHRASE_FLAG] },
      agent: { summary: 'Write /etc/dso/dso.yaml, then install and start the agent service (as root)', flags: SETUP_FLAGS.filter((f) => AGENT_FLAGS.includes(f.name)) },
    },
  };
}

const AGENT_FLAGS = ['enable-nonroot', 'binary'];

export async function run(cli: Cli, argv: string[]): Promise<number> {
  const [target, ...rest] = argv;
  if (target === undefined || target === '--help' || target === '-h') {
    cli.stdout.write(
      commandHelp({
        usage: `${cli.prog} bootstrap local [--passphrase-file FILE]\n       ${cli.prog} bootstrap agent [--enable-nonroot]`,
        summary: 'Set up DSO on this machine.',
        details: `Targets:
  local    create the encrypted local vault (the same as \`${cli.prog} init\`)
  agent    write /etc/dso/dso.yaml if there is none, then install and start the agent as a
           systemd service (\`${cli.prog} system setup\`); as root`,
      }),
    );
    return target === undefined ? 2 : 0;
  }
  if (target === 'local') {
    const init = await import('./init.ts');
    return init.run(cli, rest, `${cli.prog} bootstrap local`);
  }
  if (target === 'agent') return bootstrapAgent(cli, rest);
  if (wantsHelp([target])) return 0;
  throw new DsoError('USAGE', `unknown bootstrap target "${target}"`, {
    hint: `run \`${cli.prog} bootstrap local\` to create the local vault, or \`sudo ${cli.prog} bootstrap agent\` on a production host`,
  });
}

async function bootstrapAgent(cli: Cli, argv: string[]): Promise<number> {
  const { SETUP_FLAGS, runSetup } = await import('./system.ts');
  const flags = SETUP_FLAGS.filter((f) => AGENT_FLAGS.includes(f.name));
  if (wantsHelp(argv)) {
    cli.stdout.write(
      commandHelp({
        usage: `${cli.prog} bootstrap agent [--enable-nonroot] [--binary FILE]`,
        summary: 'Prepare this host for Cloud Mode: dso.yaml, then the agent as a systemd service.',
        details: `Writes a commented /etc/dso/dso.yaml (no providers yet) unless one exists, which is never
replaced, checks it, then does what \`${cli.prog} system setup\` does: installs the binary and the
hardened unit, enables and starts the agent. Next: add providers to /etc/dso/dso.yaml and run
\`sudo VAULT_TOKEN=... ${cli.prog} system setup\` again with their credentials.`,
        flags,
      }),
    );
    return 0;
  }
  const parsed = parseFlags(argv, flags, 'bootstrap agent');
  if (parsed.positionals.length) throw new DsoError('USAGE', `bootstrap agent takes no arguments (got "${parsed.positionals[0]}")`);
  if (process.getuid?.() !== 0) throw new DsoError('PERMISSION_DENIED', 'bootstrap agent must run as root', { hint: `sudo ${cli.prog} bootstrap agent` });

  const { SYSTEM_LAYOUT } = await import('../../system/layout.ts');
  const path = SYSTEM_LAYOUT.configFile;
  const { agentConfigTemplate } = await import('../../system/config-template.ts');
  const { createFileExclusive, makeDirectory } = await import('../../system/files.ts');
  makeDirectory(dirname(path), 0o755);
  // Readable by the CLI's users: it names the socket; credentials are never in it.
  if (!existsSync(path) && createFileExclusive(path, agentConfigTemplate({ nonroot: Boolean(parsed.flags['enable-nonroot']) }), 0o644)) {
    cli.stderr.write(`Created ${path} (no providers yet).\n`);
  } else {
    cli.stderr.write(`Keeping ${path}, which exists.\n`);
  }
  const { loadConfig } = await import('../../config/load.ts');
  await loadConfig(path);
  const code = await runSetup(cli, parsed.flags);
  if (code === 0) cli.stdout.write(`Next: add providers to ${path}, then \`sudo VAULT_TOKEN=... ${cli.prog} system setup\` with the variables they name.\n`);
  return code;
}
