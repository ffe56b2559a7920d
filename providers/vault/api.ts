// The part of node-vault the provider uses, and the request options DSO adds to every call: the
// token (node-vault keeps none, see client.ts), the call's signal and a cap on the answer's size.
import type NodeVault from 'node-vault';
import { ProviderError } from '../../src/providers/contract.ts';
import { SMALL_ANSWER_BYTES, type CallOptions } from './transport.ts';

export type VaultApi = Pick<NodeVault.client, 'read' | 'list' | 'tokenLookupSelf' | 'tokenRenewSelf' | 'approleLogin' | 'kubernetesLogin' | 'jwtLogin'>;

export function callOptions(token: string | undefined, signal: AbortSignal, maxBodyBytes = SMALL_ANSWER_BYTES): CallOptions {
  return { headers: token ? { 'X-Vault-Token': token } : {}, signal, maxBodyBytes };
}

/** A token and how long it lives, from a login, a renewal or a lookup. */
export interface TokenLease {
  token: string;
  /** Seconds left; 0 means it never expires (a root token). */
  ttlSeconds: number;
  renewable: boolean;
}

/** The `auth` block of a login or renew-self answer, checked. */
export function leaseFromAuth(body: unknown, doing: string): TokenLease {
  const auth = (body as { auth?: { client_token?: unknown; lease_duration?: unknown; renewable?: unknown } } | undefined)?.auth;
  if (!auth || typeof auth.client_token !== 'string' || auth.client_token === '' || typeof auth.lease_duration !== 'number' || auth.lease_duration < 0) {
    throw new ProviderError('invalid_response', `${doing}: Vault's answer has no auth.client_token and auth.lease_duration`);
  }
  return { token: auth.client_token, ttlSeconds: Math.floor(auth.lease_duration), renewable: auth.renewable === true };
}

/** `data.ttl` and `data.renewable` of a lookup-self answer, checked. */
export function lifetimeFromLookup(body: unknown, doing: string): { ttlSeconds: number; renewable: boolean } {
  const data = (body as { data?: { ttl?: unknown; renewable?: unknown } } | undefined)?.data;
  if (!data || typeof data.ttl !== 'number' || data.ttl < 0) throw new ProviderError('invalid_response', `${doing}: Vault's answer has no data.ttl`);
  return { ttlSeconds: Math.floor(data.ttl), renewable: data.renewable === true };
}
