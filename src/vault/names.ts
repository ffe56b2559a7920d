// Secret names: the one rule for what a name in the vault may look like, checked before anything is stored.
//
// Names become paths elsewhere (a file under a tmpfs mount, a key in the agent's cache), so the form is
// strict: `/`-separated segments that each start with a letter or digit. That rules out `.`/`..`, empty
// segments and leading or trailing slashes without a separate check for each.

import { DsoError } from '../errors.ts';

export const MAX_SECRET_NAME_LENGTH = 255;

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const ALLOWED_FORM =
  'use segments of letters, digits, ".", "_" and "-", each starting with a letter or digit, ' +
  'separated by single "/" (for example app/db_password or prod.api-key), at most 255 characters';

/** Throws INVALID_SECRET_NAME saying what is wrong with `name`; returns quietly when it is valid. */
export function validateSecretName(name: string): void {
  const problem = describeProblem(name);
  if (problem === undefined) return;
  throw new DsoError('INVALID_SECRET_NAME', `invalid secret name ${quote(name)}: ${problem}`, {
    hint: ALLOWED_FORM,
  });
}

export function isValidSecretName(name: string): boolean {
  return describeProblem(name) === undefined;
}

function describeProblem(name: string): string | undefined {
  if (name.length === 0) return 'it is empty';
  if (name.length > MAX_SECRET_NAME_LENGTH) {
    return `it is ${name.length} characters long, the limit is ${MAX_SECRET_NAME_LENGTH}`;
  }
  if (name.startsWith('/')) return 'it starts with "/" (names are relative, like app/db_password)';
  if (name.endsWith('/')) return 'it ends with "/"';
  for (const segment of name.split('/')) {
    if (segment === '') return 'it contains an empty segment ("//")';
    if (segment === '.' || segment === '..') return `it contains a "${segment}" segment`;
    if (!SEGMENT.test(segment)) {
      return /^[A-Za-z0-9]/.test(segment)
        ? `segment ${quote(segment)} contains a character other than letters, digits, ".", "_" or "-"`
        : `segment ${quote(segment)} does not start with a letter or digit`;
    }
  }
  return undefined;
}

/** Quotes a name for a message: JSON escaping keeps control characters and newlines from forging output lines. */
function quote(text: string): string {
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 32)}…` : text);
}
