// `dso completion bash|zsh|fish`: prints the shell completion script for the `dso` binary.
// (`docker dso` is completed by the Docker CLI's own `docker completion SHELL`, which asks this
// binary through the hidden `__complete` command, see ../completion.ts.)
import { DsoError } from '../../errors.ts';
import type { CompletionSpec } from '../completion.ts';
import { SHELLS, completionScript, type Shell } from '../completion-scripts.ts';
import type { Cli } from '../context.ts';
import { parseFlags } from '../flags.ts';
import { commandHelp, wantsHelp } from '../help.ts';
import { closest, orList } from '../suggest.ts';

export const completion: CompletionSpec = { args: SHELLS };

export async function run(cli: Cli, argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    cli.stdout.write(
      commandHelp({
        usage: `${cli.prog} completion bash|zsh|fish`,
        summary: 'Print the shell completion script for the dso command.',
        details: `Load it in the current shell:
  bash:  source <(dso completion bash)
  zsh:   source <(dso completion zsh)
  fish:  dso completion fish | source
Or install it for every new shell:
  bash:  dso completion bash > ~/.local/share/bash-completion/completions/dso
  zsh:   dso completion zsh > "\${fpath[1]}/_dso"
  fish:  dso completion fish > ~/.config/fish/completions/dso.fish

\`docker dso\` is completed by Docker's own completion, which asks the plugin: the bash
completion Docker's packages install, or \`docker completion bash|zsh|fish\` (Docker CLI 23
or newer). Nothing to install for it here.`,
      }),
    );
    return 0;
  }
  const { positionals } = parseFlags(argv, [], 'completion');
  const [shell, ...extra] = positionals;
  if (shell === undefined || extra.length > 0) {
    throw new DsoError('USAGE', 'completion needs one shell: bash, zsh or fish', { hint: `for example: ${cli.prog} completion bash` });
  }
  if (!(SHELLS as readonly string[]).includes(shell)) {
    const meant = closest(shell, SHELLS);
    throw new DsoError('USAGE', `no completion for the shell "${shell}"`, {
      hint: meant.length > 0 ? `did you mean ${orList(meant)}?` : 'the shells are bash, zsh and fish',
    });
  }
  cli.stdout.write(completionScript(shell as Shell));
  return 0;
}
