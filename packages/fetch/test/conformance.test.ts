import { Readable } from 'node:stream';
import { type ConformanceRequest, conformance } from '@keyfob/testing';
import { Agent, type Dispatcher, interceptors, request as undiciRequest } from 'undici';
import * as vitest from 'vitest';
import { tokenInterceptor, withTokens } from '../src/index.js';

/** The body of a conformance request as fetch takes it. */
function fetchBody(body: ConformanceRequest['body']): RequestInit['body'] | undefined {
  if (body === undefined) return undefined;
  switch (body.kind) {
    case 'string':
      return body.data;
    case 'bytes':
      return new TextEncoder().encode(body.data);
    case 'form':
      return new URLSearchParams(body.data);
    case 'stream':
      return new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode(body.data));
          controller.close();
        },
      });
  }
}

conformance(vitest, {
  name: 'withTokens(globalThis.fetch)',
  create(manager, { base, origins, ...options }) {
    const send = withTokens(fetch, manager, { origins: [base, ...origins], ...options });
    return {
      async request({ method, url, headers, body, keyfob, signal }) {
        const init: RequestInit = { method, headers, body: fetchBody(body), keyfob, signal };
        if (body?.kind === 'stream') (init as { duplex?: string }).duplex = 'half';
        const res = await send(url, init);
        return { status: res.status, body: await res.text() };
      },
    };
  },
});

/** The body of a conformance request as undici.request takes it. */
function undiciBody(body: ConformanceRequest['body']) {
  if (body === undefined) return undefined;
  switch (body.kind) {
    case 'string':
      return body.data;
    case 'bytes':
      return Buffer.from(body.data);
    case 'form':
      return new URLSearchParams(body.data).toString();
    case 'stream':
      return Readable.from([Buffer.from(body.data)]);
  }
}

conformance(vitest, {
  name: 'tokenInterceptor with undici.request (redirect interceptor outside)',
  create(manager, { base, origins, ...options }) {
    // Redirects followed outside (after) keyfob's interceptor: every hop is dispatched through it.
    const dispatcher = new Agent().compose(
      tokenInterceptor(manager, { origins: [base, ...origins], ...options }),
      interceptors.redirect({ maxRedirections: 5 }),
    );
    return {
      async request({ method, url, headers, body, keyfob, signal }) {
        const res = await undiciRequest(url, {
          dispatcher,
          method: method as 'GET',
          headers,
          body: undiciBody(body),
          signal,
          keyfob,
        } as Parameters<typeof undiciRequest>[1]);
        return { status: res.statusCode, body: await res.body.text() };
      },
      close: () => dispatcher.close(),
    };
  },
});

conformance(vitest, {
  name: 'tokenInterceptor with fetch(url, { dispatcher }) (Node`s global fetch)',
  // fetch hands every body to the dispatcher as a stream: a 401 to a request with a body is returned.
  bodiesStream: true,
  keyfobError: (error) => (error instanceof TypeError ? error.cause : error),
  create(manager, { base, origins, ...options }) {
    // fetch follows redirects itself, above the dispatcher: every hop reaches the interceptor.
    const dispatcher = new Agent().compose(
      tokenInterceptor(manager, { origins: [base, ...origins], ...options }),
    );
    return {
      async request({ method, url, headers, body, keyfob, signal }) {
        const init: RequestInit & { dispatcher: Dispatcher } = {
          dispatcher,
          method,
          ...(headers === undefined ? {} : { headers }),
          ...(signal === undefined ? {} : { signal }),
        };
        const b = fetchBody(body);
        if (b !== undefined) init.body = b;
        if (body?.kind === 'stream') (init as { duplex?: string }).duplex = 'half';
        // fetch cannot pass options to a dispatcher: a per-request keyfob option cannot reach it.
        if (keyfob !== undefined)
          return keyfobThroughUndiciRequest(dispatcher, { method, url, headers, keyfob });
        const res = await fetch(url, init);
        return { status: res.status, body: await res.text() };
      },
      close: () => dispatcher.close(),
    };
  },
});

/** Per-request keyfob options exist only for undici.request / stream / pipeline (fetch has no way to pass them). */
async function keyfobThroughUndiciRequest(
  dispatcher: Dispatcher,
  req: Pick<ConformanceRequest, 'method' | 'url' | 'headers' | 'keyfob'>,
) {
  const res = await undiciRequest(req.url, {
    dispatcher,
    method: req.method as 'GET',
    headers: req.headers,
    keyfob: req.keyfob,
  } as Parameters<typeof undiciRequest>[1]);
  return { status: res.statusCode, body: await res.body.text() };
}
