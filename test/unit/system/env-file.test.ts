// The agent's environment file: which variables setup takes (only those the providers name),
// the quoting systemd reads back verbatim (the integration test checks it against a real
// systemd), merging with a file an admin edited, and no value in any error message.
import { describe, expect, test } from 'bun:test';
import { parseConfig } from '../../../src/config/load.ts';
import { DsoError } from '../../../src/errors.ts';
import { assignedNames, envAssignment, mergeEnvFile, providerVariables } from '../../../src/system/env-file.ts';

describe('which variables setup takes', () => {
  test('the required and optional variables of every provider, never HOME or PATH', async () => {
    const config = await parseConfig(
      `providers:
  a:
    type: local
    path: /var/lib/dso/a.enc
    passphrase_env: A_PASS
    env: [HTTPS_PROXY, PATH]
  b:
    type: local
    passphrase_env: A_PASS
`,
      'dso.yaml',
    );
    const v = providerVariables(config);
    // b has no path: it reads DSO_HOME or HOME (optional), and HOME is the service's own.
    expect(v.names).toEqual(['A_PASS', 'DSO_HOME', 'HTTPS_PROXY']);
    expect(Object.fromEntries(v.required)).toEqual({ A_PASS: ['a', 'b'], HTTPS_PROXY: ['a'] });
    expect(v.readHome).toEqual(['b']);
  });
});

describe('one assignment', () => {
  test('single quotes keep $, %, backslashes, double quotes and spaces verbatim', () => {
    expect(envAssignment('T', 'a $HOME %h \\n "x" ` ; # z ')).toBe(`T='a $HOME %h \\n "x" \` ; # z '`);
  });

  test('a single quote switches to double quotes with \\ " $ ` escaped', () => {
    expect(envAssignment('T', `it's "q" \\ $X \`b\``)).toBe(`T="it's \\"q\\" \\\\ \\$X \\\`b\\\`"`);
  });

  test('an empty value is allowed', () => {
    expect(envAssignment('T', '')).toBe("T=''");
  });

  test('a line break or NUL is refused, naming the variable and never the value', () => {
    for (const value of ['line1\nSECRET_PART', 'cr\rSECRET_PART', 'nul\0SECRET_PART']) {
      let error: unknown;
      try {
        envAssignment('VAULT_TOKEN', value);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(DsoError);
      const e = error as DsoError;
      expect(e.message).toContain('VAULT_TOKEN');
      expect(`${e.message} ${e.hint}`).not.toContain('SECRET_PART');
    }
  });

  test('a bad name is refused', () => {
    expect(() => envAssignment('1X', 'v')).toThrow(DsoError);
  });
});

describe('merging with the file on disk', () => {
  test('no file and nothing to set: no file', () => {
    expect(mergeEnvFile(undefined, new Map())).toBeUndefined();
  });

  test('a new file has a header saying what it is, then the variables in order', () => {
    const text = mergeEnvFile(undefined, new Map([['B', '2'], ['A', '1']]))!;
    expect(text.startsWith('# Provider credentials for the DSO agent')).toBe(true);
    expect(text.endsWith("A='1'\nB='2'\n")).toBe(true);
  });

  test('lines an admin wrote stay; a variable given again is replaced, not repeated', () => {
    const old = "# mine\nHTTPS_PROXY=http://proxy:3128\nVAULT_TOKEN='old'\n; note\n";
    const text = mergeEnvFile(old, new Map([['VAULT_TOKEN', 'new']]))!;
    expect(text).toBe("# mine\nHTTPS_PROXY=http://proxy:3128\n; note\nVAULT_TOKEN='new'\n");
    expect(assignedNames(text)).toEqual(new Set(['HTTPS_PROXY', 'VAULT_TOKEN']));
  });

  test('running again with the same values gives the same text (setup is idempotent)', () => {
    const updates = new Map([['VAULT_TOKEN', 's.x']]);
    const once = mergeEnvFile(undefined, updates)!;
    expect(mergeEnvFile(once, updates)).toBe(once);
  });

  test('comments that look like assignments are not counted', () => {
    expect(assignedNames('# A=1\n;B=2\n  C = 3\n')).toEqual(new Set(['C']));
  });
});
