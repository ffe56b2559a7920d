// Reading one credential (a token, a secret id, a JWT) from the variable or the file dso.yaml
// names, at the moment it is needed: files are read again at every login, so a rotated secret
// id or a refreshed Kubernetes service account token is picked up without a restart.
import { readFileSync } from 'node:fs';
import { ProviderError } from '../../src/providers/contract.ts';

export type CredentialSource = { env: string; key: string } | { file: string; key: string };

/** Vault tokens, role ids, secret ids and JWTs are printable ASCII without spaces. */
const PRINTABLE = /^[\x21-\x7e]+$/;

/**
 * The credential's text. `what` names it for messages ("the Vault token"). The file's bytes are
 * wiped once decoded; the string returned cannot be (node-vault needs a string to send).
 */
export function readCredential(source: CredentialSource, env: Readonly<Record<string, string>>, what: string): string {
  let text: string;
  let from: string;
  if ('env' in source) {
    from = `the variable ${source.env} (${source.key})`;
    text = (env[source.env] ?? '').trim();
    if (text === '') throw new ProviderError('auth', `${what} is missing: ${from} is not set or empty`);
  } else {
    from = `${source.key} ${source.file}`;
    let bytes: Buffer;
    try {
      bytes = readFileSync(source.file);
    } catch (e) {
      throw new ProviderError('config', `cannot read ${what} from ${from} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    text = bytes.toString('utf8').trim();
    bytes.fill(0);
    if (text === '') throw new ProviderError('auth', `${what} is missing: ${from} is empty`);
  }
  // Checked here because a bad character would otherwise surface in an HTTP library's error,
  // which may quote the header value.
  if (!PRINTABLE.test(text)) throw new ProviderError('auth', `${what} from ${from} contains spaces, line breaks or other characters a credential cannot have`);
  return text;
}
