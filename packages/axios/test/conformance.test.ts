import { Readable } from 'node:stream';
import { attachTokens } from '@keyfob/axios';
import { type ConformanceRequest, conformance } from '@keyfob/testing';
import axios from 'axios';
import * as vitest from 'vitest';

/** The body of a conformance request as axios takes it. */
function axiosBody(body: ConformanceRequest['body']): unknown {
  if (body === undefined) return undefined;
  switch (body.kind) {
    case 'string':
      return body.data;
    case 'bytes':
      return new TextEncoder().encode(body.data);
    case 'form':
      return new URLSearchParams(body.data);
    case 'stream':
      return Readable.from([Buffer.from(body.data)]);
  }
}

conformance(vitest, {
  name: 'axios attachTokens',
  create(manager, { base, origins, ...options }) {
    const instance = axios.create({ baseURL: base });
    attachTokens(instance, manager, { origins, ...options });
    return {
      async request({ method, url, headers, body, keyfob, signal }) {
        const config = {
          method,
          url,
          data: axiosBody(body),
          responseType: 'text' as const,
          ...(headers === undefined ? {} : { headers }),
          ...(keyfob === undefined ? {} : { keyfob }),
          ...(signal === undefined ? {} : { signal }),
        };
        try {
          const res = await instance.request<string>(config);
          return { status: res.status, body: res.data };
        } catch (error) {
          if (!axios.isAxiosError(error) || !error.response) throw error;
          return { status: error.response.status, body: String(error.response.data ?? ''), error };
        }
      },
    };
  },
});
