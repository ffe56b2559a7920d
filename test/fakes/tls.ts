// A throwaway certificate authority for fake HTTPS backends, made with openssl at test time: a CA,
// a server certificate for 127.0.0.1 and localhost (and any extra names) signed by it, and (on
// demand) client certificates for certificate-based logins. Shared by the Vault, Azure and Huawei fakes. Nothing here is trusted outside the test that made it.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCa {
  dir: string;
  /** The CA certificate, PEM, and its path (what a client is told to trust). */
  caPem: string;
  caFile: string;
  /** The server's certificate and key, PEM, for Bun.serve({ tls }). */
  serverCert: string;
  serverKey: string;
  /** A self-signed RSA certificate and its key in one PEM file, for a certificate login. */
  clientCertificate(name: string): { pemFile: string; certPem: string };
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  const run = Bun.spawnSync(['openssl', ...args], { cwd, stdout: 'pipe', stderr: 'pipe', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  if (run.exitCode !== 0) throw new Error(`openssl ${args[0]} failed: ${run.stderr.toString().slice(0, 400)}`);
}

/** Throws a clear error when openssl is missing rather than failing half-way. */
export function makeTestCa(options: { extraNames?: string[] } = {}): TestCa {
  if (!Bun.which('openssl')) throw new Error('the fake HTTPS backends need openssl (apt-get install openssl)');
  const dir = mkdtempSync(join(tmpdir(), 'dso-fake-ca-'));
  // Others may reach ca.pem (a CA certificate is public, like those in /etc/ssl/certs): a provider
  // process of a root DSO runs as nobody. The keys stay 0600, root's.
  chmodSync(dir, 0o711);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=DSO fake test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost'], dir);
  const names = ['DNS:localhost', 'IP:127.0.0.1', ...(options.extraNames ?? []).map((n) => `DNS:${n}`)].join(',');
  writeFileSync(join(dir, 'server.ext'), `subjectAltName=${names}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n`);
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext'], dir);
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  return {
    dir,
    caPem: read('ca.pem'),
    caFile: join(dir, 'ca.pem'),
    serverCert: read('server.pem'),
    serverKey: read('server.key'),
    clientCertificate(name) {
      openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`], dir);
      const certPem = read(`${name}.crt`);
      const pemFile = join(dir, `${name}.pem`);
      writeFileSync(pemFile, read(`${name}.key`) + certPem, { mode: 0o600 });
      return { pemFile, certPem };
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
