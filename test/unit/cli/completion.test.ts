// The `__complete` protocol as the Docker CLI and the scripts of `dso completion` ask it:
// candidates (with descriptions unless __completeNoDesc), then `:DIRECTIVE`.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './run-cli.ts';

let project: string;
beforeAll(() => {
  project = mkdtempSync(join(tmpdir(), 'dso-completion-'));
  writeFileSync(join(project, 'compose.yaml'), 'services:\n  web: {image: x}\n  db: {image: y}\n');
  writeFileSync(join(project, 'other.yaml'), 'services:\n  cache: {image: z}\n');
});
afterAll(() => rmSync(project, { recursive: true, force: true }));

/** The answer's candidates (values only) and directive. */
async function ask(words: string[], opts: { plugin?: boolean; descriptions?: boolean } = {}) {
  const argv = [opts.descriptions === false ? '__completeNoDesc' : '__complete', ...(opts.plugin ? ['dso'] : []), ...words];
  const r = await runCli(argv, { cwd: project, ...(opts.plugin ? { argv0: '/root/.docker/cli-plugins/docker-dso', env: { DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND: '/usr/bin/docker' } } : {}) });
  expect(r.code).toBe(0);
  expect(r.stdout.endsWith('\n')).toBe(true);
  const lines = r.stdout.trimEnd().split('\n');
  const directive = lines.pop()!;
  expect(directive).toMatch(/^:\d+$/);
  return { lines, values: lines.map((l) => l.split('\t')[0]), directive: Number(directive.slice(1)) };
}

describe('__complete', () => {
  test('commands, with their summaries, no file names', async () => {
    const r = await ask(['']);
    expect(r.values).toEqual(['init', 'bootstrap', 'secret', 'up', 'down', 'compose', 'rotate', 'status', 'doctor', 'agent', 'system', 'config', 'completion', 'version', 'help']);
    expect(r.lines).toContain('up\tResolve dso:// and dsofile:// secrets and run `compose up`');
    expect(r.directive).toBe(4);
    expect((await ask(['s'])).values).toEqual(['secret', 'status', 'system']);
  });

  test('as the Docker CLI asks a plugin: `__complete dso ARGS... WORD`', async () => {
    expect((await ask(['se'], { plugin: true })).values).toEqual(['secret']);
    expect((await ask(['up', '--pa'], { plugin: true })).values).toEqual(['--passphrase-file']);
  });

  test('__completeNoDesc leaves the descriptions out', async () => {
    const r = await ask(['secret', ''], { descriptions: false });
    expect(r.lines).toEqual(['set', 'get', 'list', 'rm']);
  });

  test('subcommands, then their own flags, without the ones already given', async () => {
    expect((await ask(['secret', ''])).values).toEqual(['set', 'get', 'list', 'rm']);
    expect((await ask(['secret', 'set', '--'])).values).toEqual(['--from-file', '--no-rotate', '--passphrase-file', '--help']);
    expect((await ask(['secret', 'set', '--no-rotate', '--'])).values).toEqual(['--from-file', '--passphrase-file', '--help']);
    expect((await ask(['system', 'logs', '-'])).values).toEqual(['--follow', '--lines', '--help']);
    expect((await ask(['secret', 'get', ''])).directive).toBe(4);
  });

  test('flag values: choices, files, directories, or nothing', async () => {
    expect(await ask(['up', '--mode', ''])).toMatchObject({ values: ['local', 'cloud'], directive: 4 });
    expect((await ask(['doctor', '--level', 'f'])).values).toEqual(['full']);
    expect((await ask(['status', '--mode=c'])).values).toEqual(['--mode=cloud']);
    expect(await ask(['secret', 'set', '--from-file', ''])).toEqual({ lines: [], values: [], directive: 0 });
    expect((await ask(['agent', '--state-dir', ''])).directive).toBe(16);
    expect(await ask(['system', 'logs', '-n', ''])).toEqual({ lines: [], values: [], directive: 4 });
  });

  test('Compose services after up and after a compose command, from -f files too', async () => {
    expect((await ask(['up', '-d', ''])).values).toEqual(['db', 'web']);
    expect((await ask(['up', 'web', ''])).values).toEqual(['db']);
    expect((await ask(['compose', 'logs', 'w'])).values).toEqual(['web']);
    expect((await ask(['compose', '-f', 'other.yaml', 'restart', ''])).values).toEqual(['cache']);
    expect((await ask(['compose', 'l'])).values).toEqual(['logs', 'ls']);
    expect((await ask(['compose', 'config', ''])).values).toEqual([]);
  });

  test('the shells for completion; nothing for unknown commands; files after --', async () => {
    expect((await ask(['completion', ''])).values).toEqual(['bash', 'zsh', 'fish']);
    expect(await ask(['frobnicate', ''])).toEqual({ lines: [], values: [], directive: 4 });
    expect((await ask(['compose', 'run', 'web', '--', ''])).directive).toBe(0);
  });
});

describe('completion SHELL', () => {
  test('prints a script for each shell', async () => {
    for (const [shell, marker] of [['bash', 'complete -F _dso_complete dso'], ['zsh', '#compdef dso'], ['fish', "complete -c dso -f -a '(__dso_candidates)'"]] as const) {
      const r = await runCli(['completion', shell]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(marker);
      expect(r.stdout).toContain('__complete');
    }
  });

  test('an unknown or missing shell is a usage error that names the shells', async () => {
    const r = await runCli(['completion', 'fsh']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('error: no completion for the shell "fsh"\n  hint: did you mean zsh or fish?\n');
    expect((await runCli(['completion'])).stderr).toContain('completion needs one shell: bash, zsh or fish');
  });
});
