// A throwaway certificate authority for the fake Vault over HTTPS, made with openssl at test time:
// a CA and a server certificate signed by it for 127.0.0.1, localhost and vault.dso.test (a name
// only reachable through tls.server_name). Nothing here is trusted outside the test that made it.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A name in the server certificate that no resolver knows: tests reach it with tls.server_name. */
export const CERT_ONLY_NAME = 'vault.dso.test';

export interface VaultTestCa {
  dir: string;
  /** The CA certificate's path, what dso.yaml's tls.ca_cert points at. */
  caFile: string;
  serverCert: string;
  serverKey: string;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  const run = Bun.spawnSync(['openssl', ...args], { cwd, stdout: 'pipe', stderr: 'pipe', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  if (run.exitCode !== 0) throw new Error(`openssl ${args[0]} failed: ${run.stderr.toString().slice(0, 400)}`);
}

export function makeVaultTestCa(): VaultTestCa {
  if (!Bun.which('openssl')) throw new Error('the fake Vault over HTTPS needs openssl (apt-get install openssl)');
  const dir = mkdtempSync(join(tmpdir(), 'dso-fake-vault-ca-'));
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=DSO fake Vault CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost'], dir);
  writeFileSync(join(dir, 'server.ext'), `subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:${CERT_ONLY_NAME}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n`);
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext'], dir);
  return {
    dir,
    caFile: join(dir, 'ca.pem'),
    serverCert: readFileSync(join(dir, 'server.pem'), 'utf8'),
    serverKey: readFileSync(join(dir, 'server.key'), 'utf8'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
