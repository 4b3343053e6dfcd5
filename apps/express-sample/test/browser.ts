/** A minimal browser for one origin: cookie jar (honours deletion), manual redirects. */
export class Browser {
  readonly jar = new Map<string, string>();

  constructor(readonly origin: string) {}

  async request(path: string, init: { method?: string; accept?: string } = {}) {
    const headers: Record<string, string> = { accept: init.accept ?? 'application/json' };
    if (this.jar.size) headers.cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const response = await fetch(new URL(path, this.origin), {
      method: init.method ?? 'GET',
      headers,
      redirect: 'manual',
    });
    for (const line of response.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const expired = /max-age=0\b/i.test(line) || /expires=Thu, 01 Jan 1970/i.test(line);
      if (expired) this.jar.delete(name);
      else this.jar.set(name, pair.slice(eq + 1).trim());
    }
    const text = await response.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: response.status, location: response.headers.get('location') ?? undefined, text, json };
  }
}
