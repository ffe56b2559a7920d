// An HTTP client wrapper that remembers, per host, why the last request could not be sent, and
// what the last answer was, so that errors the identity library reports vaguely can be told apart.
import type { HttpClient, PipelineResponse } from '@azure/core-rest-pipeline';

/** The last answer from a host: its status, and what was wrong with its body, if anything was. */
export interface LastAnswer {
  status: number;
  /** 'not JSON', or 'too large' (refused by the HTTP client), when the body could not be used. */
  unreadable?: string;
}

export interface RecordingHttpClient extends HttpClient {
  /** Why the last request to `host` failed to be sent (a system code), unless one succeeded since. */
  failureFor(host: string): string | undefined;
  /** The last answer `host` gave, unless a later request to it could not be sent. */
  answerFor(host: string): LastAnswer | undefined;
}

/**
 * The identity library reports an unreachable login host as MSAL's "endpoints_resolution_error",
 * exactly as it reports a host that is not Entra ID or has no such tenant, and an answer it cannot
 * read (a proxy's page, a 502) as a "network_error". What the HTTP client saw tells them apart:
 * the first is `unavailable`, the second `auth`, the third `invalid_response` or `unavailable`.
 */
export function recordFailures(inner: HttpClient, options: { valueHost?: string } = {}): RecordingHttpClient {
  const failures = new Map<string, string>();
  const answers = new Map<string, LastAnswer>();
  return {
    async sendRequest(request) {
      const host = new URL(request.url).host;
      try {
        const response = await inner.sendRequest(request);
        failures.delete(host);
        // The vault's answers hold values: not parsed here into one more copy that cannot be wiped.
        answers.set(host, { status: response.status, ...(readableJson(response, host !== options.valueHost) ? {} : { unreadable: 'not JSON' }) });
        return response;
      } catch (e) {
        const err = e as { name?: string; code?: string; statusCode?: number; message?: string };
        if (err.name === 'RestError' && err.code === 'RESPONSE_TOO_LARGE' && err.statusCode !== undefined) {
          answers.set(host, { status: err.statusCode, unreadable: 'too large' });
        } else if (err.name === 'RestError' && err.statusCode === undefined) {
          failures.set(host, err.code && err.code !== 'REQUEST_SEND_ERROR' ? err.code : (err.message ?? 'error').slice(0, 120));
          answers.delete(host);
        }
        throw e;
      }
    },
    failureFor: (host) => failures.get(host),
    answerFor: (host) => answers.get(host),
  };
}

/** Whether an answer is JSON by its type and, when `parse` and its text is at hand, parses (a cut body does not). */
function readableJson(response: PipelineResponse, parse: boolean): boolean {
  if (!/\bjson\b/i.test(response.headers.get('content-type') ?? '')) return false;
  if (!parse || typeof response.bodyAsText !== 'string' || response.bodyAsText === '') return true;
  try {
    JSON.parse(response.bodyAsText);
    return true;
  } catch {
    return false;
  }
}
