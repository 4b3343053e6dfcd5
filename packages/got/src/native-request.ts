import { REDACTED } from '@keyfob/core';

/**
 * Node's `ClientRequest` keeps what it sent: the rendered head (`_header`) and the header map behind
 * `getHeader()` (symbol `kOutHeaders`). got's responses (`response.req`) and errors (`error.request`,
 * `error.response.req`) reach it, so once the head is out keyfob's header values are replaced with
 * `[REDACTED]` there. Sending no longer needs them: a retry or a redirect is a new `ClientRequest`.
 *
 * The same scrub as `@keyfob/axios` applies to the requests its transport made (values replaced in
 * place, so `headersSent` and the header names stay as they were).
 */

/**
 * The names keyfob may put on a request (core's `RequestPolicy.headerNames`, with DPoP on). Read from
 * the request's own header map: keyfob's values replace any the caller set under these names.
 */
const NAMES = ['authorization', 'dpop'] as const;

type NativeRequest = Record<string | symbol, unknown> & {
  _header?: unknown;
  on(event: 'finish', listener: (this: NativeRequest) => void): unknown;
};

let kOutHeaders: symbol | undefined;

/**
 * Arms a native request keyfob put its headers on (a Node `ClientRequest`; anything else is left
 * alone): scrubbed once its head has been written (`finish`). One listener without a closure:
 * nothing is allocated for it per request. The other moments are the adapter's, from events it
 * handles anyway: a response ({@link scrubSentRequest}; a server may answer before the body is sent)
 * and a failure ({@link scrubAbandonedRequest}).
 */
export function guardNativeRequest(request: unknown): void {
  if (request !== null && typeof request === 'object' && '_header' in request) {
    const r = request as NativeRequest;
    if (typeof r.on === 'function') r.on('finish', scrubSent);
  }
}

/** A response arrived for `request`: its head was sent. */
export function scrubSentRequest(request: unknown): void {
  if (request !== null && typeof request === 'object' && '_header' in request) {
    scrub(request as NativeRequest, false);
  }
}

/**
 * A request got has given up on (its error is on the way to the caller): scrubbed now, including the
 * head still waiting to be written (refused, or still waiting for a socket or a connection: Node may
 * report such a request's end much later).
 */
export function scrubAbandonedRequest(request: unknown): void {
  if (request !== null && typeof request === 'object' && '_header' in request) {
    scrub(request as NativeRequest, true);
  }
}

function scrubSent(this: NativeRequest): void {
  scrub(this, false);
}

function scrub(r: NativeRequest, abandoned: boolean): void {
  kOutHeaders ??= Object.getOwnPropertySymbols(r).find((s) => s.description === 'kOutHeaders');
  const out = kOutHeaders === undefined ? undefined : (r[kOutHeaders] as Record<string, unknown> | null);
  if (out === null || out === undefined || typeof out !== 'object') return;
  for (const name of NAMES) {
    const entry = out[name];
    if (!Array.isArray(entry)) continue;
    const value = entry[1];
    if (typeof value !== 'string' || value === REDACTED || value === '') continue;
    entry[1] = REDACTED;
    if (typeof r._header === 'string') r._header = redacted(r._header, value);
    if (abandoned) scrubQueued(r, value);
  }
}

/** The head not written yet: on the request before it has a socket, on a socket still connecting. */
function scrubQueued(r: NativeRequest, value: string): void {
  scrubChunks(r.outputData, 'data', value);
  const socket = r.socket as Record<string, unknown> | null | undefined;
  if (socket === null || socket === undefined || socket._pendingData == null) return;
  if (typeof socket._pendingData === 'string') socket._pendingData = redactedAll(socket._pendingData, value);
  else scrubChunks(socket._pendingData, 'chunk', value);
}

function scrubChunks(chunks: unknown, key: string, value: string): void {
  if (!Array.isArray(chunks)) return;
  for (const c of chunks) {
    if (c !== null && typeof c === 'object' && typeof c[key] === 'string')
      c[key] = redactedAll(c[key], value);
  }
}

/** `text` with `value` replaced: the head names each header once, so one search and two slices. */
function redacted(text: string, value: string): string {
  const i = text.indexOf(value);
  return i === -1 ? text : text.slice(0, i) + REDACTED + text.slice(i + value.length);
}

/** Every occurrence, for what was never sent (not on the hot path). */
function redactedAll(text: string, value: string): string {
  return text.includes(value) ? text.replaceAll(value, REDACTED) : text;
}
