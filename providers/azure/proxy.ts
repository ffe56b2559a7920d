// Which proxy a request from the fetch-based HTTP client goes through, from HTTPS_PROXY,
// HTTP_PROXY and NO_PROXY in the provider's own environment. Bun's fetch reads those variables
// from the real process environment, not from a Worker's, so the client must be told.

export interface ProxySettings {
  httpsProxy?: string;
  httpProxy?: string;
  noProxy: string[];
}

/** The proxy variables of `env`, upper or lower case, as curl and the Azure SDK read them. */
export function proxySettings(env: Readonly<Record<string, string>>): ProxySettings {
  const pick = (name: string) => env[name] || env[name.toLowerCase()] || undefined;
  const httpsProxy = pick('HTTPS_PROXY');
  const httpProxy = pick('HTTP_PROXY');
  return {
    ...(httpsProxy === undefined ? {} : { httpsProxy }),
    ...(httpProxy === undefined ? {} : { httpProxy }),
    noProxy: (pick('NO_PROXY') ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean),
  };
}

/** The proxy for `url`, or undefined to connect directly. */
export function proxyFor(url: URL, settings: ProxySettings): string | undefined {
  const proxy = url.protocol === 'https:' ? (settings.httpsProxy ?? settings.httpProxy) : settings.httpProxy;
  if (proxy === undefined || bypassed(url, settings.noProxy)) return undefined;
  return proxy;
}

function bypassed(url: URL, noProxy: string[]): boolean {
  const host = url.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  const hostPort = `${host}:${url.port || (url.protocol === 'https:' ? '443' : '80')}`;
  return noProxy.some((entry) => {
    if (entry === '*') return true;
    if (entry.includes(':') && !entry.startsWith('[') && entry.split(':').length === 2) return entry === hostPort;
    const name = entry.replace(/^\*?\./, '');
    return host === name || host.endsWith(`.${name}`);
  });
}
