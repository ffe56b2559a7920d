// Shell completion as users get it: `docker dso <TAB>` through the Docker CLI's own completion
// (`docker completion bash|fish`, which asks the plugin with `__complete dso ARGS...`, and the
// script the docker.io package installs, which asks `__completeNoDesc ARGS...`), and the scripts of
// `dso completion bash|zsh|fish` in real bash (with and without bash-completion), zsh and fish.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DOCKER_CONFIG, DSO_BIN, run, sandbox, type Sandbox } from './support.ts';

let sb: Sandbox;
let env: Record<string, string>;

beforeAll(() => {
  sb = sandbox('completion');
  // `dso` on PATH, and a Docker config whose plugins are DSO and Compose.
  const bin = join(sb.dir, 'bin');
  const config = join(sb.dir, 'docker-config');
  mkdirSync(bin);
  mkdirSync(join(config, 'cli-plugins'), { recursive: true });
  symlinkSync(DSO_BIN, join(bin, 'dso'));
  symlinkSync(DSO_BIN, join(config, 'cli-plugins', 'docker-dso'));
  const compose = join(DOCKER_CONFIG, 'cli-plugins', 'docker-compose');
  if (existsSync(compose)) symlinkSync(readlinkSync(compose), join(config, 'cli-plugins', 'docker-compose'));
  env = { ...sb.env, PATH: `${bin}:${sb.env.PATH}`, DOCKER_CONFIG: config, HOME: sb.dir };
  writeFileSync(join(sb.dir, 'compose.yaml'), 'services:\n  web: {image: x}\n  db: {image: y}\n');
  writeFileSync(join(sb.dir, 'passphrase.txt'), 'not used\n');
});
afterAll(() => sb.cleanup());

async function shell(argv: string[], script: string): Promise<string> {
  const r = await run([...argv, script], { cwd: sb.dir, env });
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

// Calls the function bash registered for the command, as bash does on TAB, and prints COMPREPLY.
const BASH_DRIVER = `
comp() {
  COMP_LINE="$1"; COMP_POINT=\${#COMP_LINE}; COMP_TYPE=9
  read -ra COMP_WORDS <<<"$COMP_LINE"
  [[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
  COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 ))
  COMPREPLY=()
  local fn; fn=$(complete -p "\${COMP_WORDS[0]}" | sed -E 's/.*-F ([^ ]+).*/\\1/')
  "$fn" "\${COMP_WORDS[0]}" "\${COMP_WORDS[COMP_CWORD]}" "\${COMP_WORDS[COMP_CWORD-1]}" 2>/dev/null
  printf '%s|' "\${COMPREPLY[@]%%$'\\t'*}"; echo
}
`;

describe('docker dso <TAB>: the Docker CLI asks the plugin', () => {
  test('docker __complete dso ...: the protocol answer, through docker itself', async () => {
    const top = await run(['docker', '__complete', 'dso', ''], { cwd: sb.dir, env });
    expect(top.code, top.stderr).toBe(0);
    const lines = top.stdout.trimEnd().split('\n');
    expect(lines.at(-1)).toBe(':4');
    expect(lines).toContain('secret\tSet, get, list and remove secrets in the local vault');
    const services = await run(['docker', '__complete', 'dso', 'compose', 'logs', ''], { cwd: sb.dir, env });
    expect(services.stdout).toBe('db\nweb\n:4\n');
    const mode = await run(['docker', '__complete', 'dso', 'up', '--mode', 'c'], { cwd: sb.dir, env });
    expect(mode.stdout).toBe('cloud\n:4\n');
  });

  test('docker completion bash (with bash-completion)', async () => {
    const out = await shell(['bash', '-c'], `source /usr/share/bash-completion/bash_completion; source <(docker completion bash)\n${BASH_DRIVER}
comp "docker ds"
comp "docker dso secr"
comp "docker dso secret l"
comp "docker dso up --pass"
comp "docker dso compose logs w"`);
    expect(out.split('\n')).toEqual(['dso|', 'secret|', 'list|', '--passphrase-file|', 'web|', '']);
  });

  test("the docker.io package's own bash completion, which asks plugins with `__completeNoDesc ARGS...`", async () => {
    const out = await shell(['bash', '-c'], `source /usr/share/bash-completion/bash_completion; source /usr/share/bash-completion/completions/docker\n${BASH_DRIVER}
comp "docker dso secr"
comp "docker dso up --mo"
comp "docker dso compose logs "`);
    expect(out.split('\n')).toEqual(['secret|', '--mode|', 'db|web|', '']);
  });

  test('docker completion zsh', async () => {
    // zsh's completion functions, recorded instead of drawn (zsh runs without a terminal).
    const out = await shell(['zsh', '-f', '-c'], `
  _describe() { local a; for a in "$@"; do [[ $a == completions ]] && { print -rl -- "\${completions[@]}"; return 0; }; done; }
  compadd() { print -r -- "compadd $*"; }
  _arguments() { print -r -- "arguments $*"; }
  compdef() { :; }
  source <(docker completion zsh)
  words=(docker dso sec); CURRENT=3; _docker
  words=(docker dso up --mo); CURRENT=4; _docker`);
    expect(out.split('\n')).toEqual(['secret:Set, get, list and remove secrets in the local vault', '--mode:local (providers run by the CLI) or cloud (through the agent); default\\: see docs/agent.md', '']);
  });

  test('docker completion fish', async () => {
    const out = await shell(['fish', '-c'], 'docker completion fish | source; complete -C "docker dso sec"; complete -C "docker dso secret "');
    expect(out).toContain('secret\tSet, get, list and remove secrets in the local vault');
    for (const sub of ['set', 'get', 'list', 'rm']) expect(out).toMatch(new RegExp(`^${sub}\\t`, 'm'));
  });
});

describe('dso completion SHELL', () => {
  test('bash, without bash-completion', async () => {
    const out = await shell(['bash', '--norc', '-c'], `source <(dso completion bash)\n${BASH_DRIVER}
comp "dso sec"
comp "dso up --mode "
comp "dso status --mode=c"
comp "dso up --passphrase-file pass"
comp "dso compose restart "
comp "dso secret get "`);
    expect(out.split('\n')).toEqual(['secret|', 'local|cloud|', 'cloud|', 'passphrase.txt|', 'db|web|', '|', '']);
  });

  test('zsh: candidates with their descriptions', async () => {
    // The completion system's functions, recorded instead of drawn (zsh runs without a terminal).
    const out = await shell(['zsh', '-f', '-c'], `
_describe() { print -r -- "describe \${@[5,-1]}"; print -rl -- "\${(@P)4}"; }
_files() { print -r -- files; }
_path_files() { print -r -- "dirs $*"; }
compdef() { print -r -- "compdef $*"; }
source <(dso completion zsh)
words=(dso sec); CURRENT=2; _dso
words=(dso up --mode ''); CURRENT=4; _dso
words=(dso up --passphrase-file ''); CURRENT=4; _dso
words=(dso agent --state-dir ''); CURRENT=4; _dso`);
    expect(out.split('\n')).toEqual(['compdef _dso dso', 'describe ', 'secret:Set, get, list and remove secrets in the local vault', 'describe ', 'local', 'cloud', 'files', 'dirs -/', '']);
  });

  test('fish: candidates with descriptions, and files where a flag takes one', async () => {
    const out = await shell(['fish', '--no-config', '-c'], 'dso completion fish | source; complete -C "dso sec"; echo ==; complete -C "dso up --mode "; echo ==; complete -C "dso secret set --from-file pass"');
    expect(out.split('==\n')).toEqual(['secret\tSet, get, list and remove secrets in the local vault\n', 'cloud\nlocal\n', 'passphrase.txt\n']);
  });
});
