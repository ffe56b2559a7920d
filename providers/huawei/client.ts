// The Huawei Cloud CSMS provider: a secret's value by name, at the latest version, a version id
// (v3) or a stage (SYSCURRENT, SYSPREVIOUS or one of yours), with AK/SK-signed requests and no SDK.
import { readFileSync } from 'node:fs';
import { ProviderError, type CreateProvider, type Provider } from '../../src/providers/contract.ts';
import { akskCredentials } from './auth_aksk.ts';
import { metadataCredentials } from './auth_metadata.ts';
import { defaultEndpoint, type HuaweiConfig } from './config.ts';
import type { CredentialSource } from './credentials.ts';
import { CsmsClient } from './csms.ts';

/** CreateSecret's rule for names: ^[a-zA-Z0-9._-]{1,64}$. */
const SECRET_NAME = /^[A-Za-z0-9._-]{1,64}$/;
/** Version ids are v1, v2...; `latest` is the newest version. Anything else is a stage name. */
const VERSION_ID = /^(?:v[0-9]{1,10}|latest)$/;
const STAGE_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const START_TIMEOUT_MS = 10_000;
/**
 * How long the start waits for the first login before it reports ready anyway. The sources are
 * local (variables, files, the instance's own metadata service, which answers in milliseconds):
 * a refusal comes well within this; a login still running is left to the first call's deadline.
 */
const START_LOGIN_WAIT_MS = 500;

export const createProvider: CreateProvider<HuaweiConfig> = async (config, ctx) => {
  const ca = config.tls === undefined ? undefined : readCa(config.tls.ca_cert);
  const credentials: CredentialSource = config.auth.method === 'aksk' ? akskCredentials(config.auth, ctx.env) : metadataCredentials(config.auth);
  // Credentials that cannot be had (a variable not set, an unreadable file, no agency on this
  // instance) fail the start, where DSO reports them once, rather than every call. A login still
  // under way after a moment (a metadata service that hangs) does not hold the start: the first
  // call waits for it within its own deadline, and its timeout then names the metadata service;
  // held here, the start would only end in the host's "not ready" with nothing named.
  const login = credentials.get(AbortSignal.timeout(START_TIMEOUT_MS));
  let waited: ReturnType<typeof setTimeout> | undefined;
  const settled = await Promise.race([login.then(() => true), new Promise<false>((resolve) => (waited = setTimeout(resolve, START_LOGIN_WAIT_MS, false)))])
    .catch((e) => {
      credentials.close();
      throw e;
    })
    .finally(() => clearTimeout(waited));
  // Still under way: a failure is the next call's to report (the call asks again).
  if (!settled) login.catch(() => {});
  const csms = new CsmsClient({ endpoint: config.endpoint ?? defaultEndpoint(config.region), projectId: config.project_id, credentials, ...(ca === undefined ? {} : { ca }) });

  const provider: Provider = {
    capabilities: { list: true, watch: false, versions: true },
    async get(name, options) {
      if (!SECRET_NAME.test(name) || name === '.' || name === '..') {
        throw new ProviderError('config', `${JSON.stringify(name)} is not a CSMS secret name (1 to 64 letters, digits, ".", "_" or "-")`);
      }
      const wanted = options.version ?? 'latest';
      if (VERSION_ID.test(wanted)) return csms.version(name, wanted, options);
      if (!STAGE_NAME.test(wanted)) throw new ProviderError('config', `${JSON.stringify(wanted)} is neither a CSMS version id (v1, v2...) nor a stage name`);
      const versionId = await csms.stage(name, wanted, options.signal);
      return csms.version(name, versionId, options);
    },
    async list(prefix, options) {
      return (await csms.names(options.signal)).filter((n) => n.startsWith(prefix));
    },
    async close() {
      credentials.close();
    },
  };
  return provider;
};

function readCa(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new ProviderError('config', `cannot read the CA file ${path} (tls.ca_cert): ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}
