/**
 * A redirect's `Location` arrives as one character per byte (latin-1). Followers read bytes outside
 * printable ASCII differently: fetch (https://fetch.spec.whatwg.org/#concept-response-location-url,
 * as undici implements it, and as browsers and got do) reads them as UTF-8, so a byte that is not
 * valid UTF-8 becomes U+FFFD (`%EF%BF%BD` in the URL); undici 7's redirect handler reads them as
 * latin-1 (`0xFC` becomes `%C3%BC`). The readings, fetch's first: one for a printable-ASCII value.
 */
export function locationReadings(location: string): readonly string[] {
  for (let i = 0; i < location.length; i++) {
    const code = location.charCodeAt(i);
    if (code > 0x7e || code < 0x20) return [Buffer.from(location, 'latin1').toString('utf8'), location];
  }
  return [location];
}

/**
 * A redirect's target as fetch computes it from the `Location` header and the response's URL (see
 * {@link locationReadings}). Throws the URL parser's `TypeError` for a target that cannot be parsed.
 */
export function locationUrl(location: string, base: string | URL): URL {
  return new URL(locationReadings(location)[0]!, base);
}
