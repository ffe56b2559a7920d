// Logging in as an application (service principal) with a certificate: a PEM file holding its
// private key and certificate, the key optionally encrypted with a password from a variable.
import { readFileSync } from 'node:fs';
import { ClientCertificateCredential, type TokenCredential } from '@azure/identity';
import { ProviderError } from '../../src/providers/contract.ts';
import type { CredentialOptions } from './auth_options.ts';

export interface ClientCertificateAuth {
  tenant_id: string;
  client_id: string;
  certificate_file: string;
  certificate_password_env?: string;
}

export function clientCertificateCredential(auth: ClientCertificateAuth, env: Readonly<Record<string, string>>, options: CredentialOptions): { credential: TokenCredential; secrets: string[] } {
  let pem: string;
  try {
    pem = readFileSync(auth.certificate_file, 'utf8');
  } catch (e) {
    throw new ProviderError('config', `cannot read the certificate file ${auth.certificate_file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  // Checked here so that a wrong file is a config error now, not a vague login failure later.
  if (!pem.includes('-----BEGIN CERTIFICATE-----') || !/-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.test(pem)) {
    throw new ProviderError('config', `the certificate file ${auth.certificate_file} must be PEM holding the private key and the certificate`);
  }
  let password: string | undefined;
  if (auth.certificate_password_env !== undefined) {
    password = env[auth.certificate_password_env];
    if (!password) throw new ProviderError('auth', `the certificate password variable ${auth.certificate_password_env} is not set`);
  }
  const credential = new ClientCertificateCredential(auth.tenant_id, auth.client_id, { certificate: pem, ...(password === undefined ? {} : { certificatePassword: password }) }, options);
  return { credential, secrets: password === undefined ? [] : [password] };
}
