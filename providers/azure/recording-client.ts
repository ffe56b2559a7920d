// An HTTP client wrapper that remembers, per host, why the last request could not be sent, so
// that errors the identity library reports vaguely can be told apart.
import type { HttpClient } from '@azure/core-rest-pipeline';

export interface RecordingHttpClient extends HttpClient {
  /** Why the last request to `host` failed to be sent (a system code), unless one succeeded since. */
  failureFor(host: string): string | undefined;
}

/**
 * The identity library reports an unreachable login host as MSAL's "endpoints_resolution_error",
 * exactly as it reports a host that is not Entra ID or has no such tenant. What the HTTP client saw
 * tells them apart:
 * the first is `unavailable`, the second `auth`.
 */
export function recordFailures(inner: HttpClient): RecordingHttpClient {
  const failures = new Map<string, string>();
  return {
    async sendRequest(request) {
      const host = new URL(request.url).host;
      try {
        const response = await inner.sendRequest(request);
        failures.delete(host);
        return response;
      } catch (e) {
        const err = e as { name?: string; code?: string; statusCode?: number; message?: string };
        if (err.name === 'RestError' && err.statusCode === undefined) failures.set(host, err.code && err.code !== 'REQUEST_SEND_ERROR' ? err.code : (err.message ?? 'error').slice(0, 120));
        throw e;
      }
    },
    failureFor: (host) => failures.get(host),
  };
}
