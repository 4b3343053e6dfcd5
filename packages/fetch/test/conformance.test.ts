import { Readable } from 'node:stream';
import { type ConformanceRequest, conformance } from '@keyfob/testing';
import { Agent, interceptors, request as undiciRequest } from 'undici';
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
