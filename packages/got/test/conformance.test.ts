import { Readable } from 'node:stream';
import { type ConformanceRequest, conformance } from '@keyfob/testing';
import got, { HTTPError } from 'got';
import * as vitest from 'vitest';
import { withTokens } from '../src/index.js';

/** The body of a conformance request as got takes it. */
function gotBody(body: ConformanceRequest['body']): { body?: string | Uint8Array | Readable } {
  if (body === undefined) return {};
  switch (body.kind) {
    case 'string':
      return { body: body.data };
    case 'bytes':
      return { body: new TextEncoder().encode(body.data) };
    case 'form':
      return { body: new URLSearchParams(body.data).toString() };
    case 'stream':
      return { body: Readable.from([Buffer.from(body.data)]) };
  }
}

conformance(vitest, {
  name: 'got withTokens',
  create(manager, { base, origins, ...options }) {
    // got's own retries off: the suite counts attempts.
    const client = withTokens(got.extend({ prefixUrl: base, retry: { limit: 0 } }), manager, {
      origins,
      ...options,
    });
    return {
      async request({ method, url, headers, body, keyfob, signal }) {
        try {
          const res = await client(url, {
            prefixUrl: '',
            method: method as 'GET',
            ...gotBody(body),
            ...(headers === undefined ? {} : { headers }),
            ...(keyfob === undefined ? {} : { context: { keyfob } }),
            ...(signal === undefined ? {} : { signal }),
          });
          return { status: res.statusCode, body: res.body };
        } catch (error) {
          if (!(error instanceof HTTPError)) throw error;
          return { status: error.response.statusCode, body: String(error.response.body), error };
        }
      },
    };
  },
});
