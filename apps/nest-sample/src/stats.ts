/** Counters the sample exposes through `stats()` (and the e2e tests assert on). */
export class SampleStats {
  requests = 0;
  upstreamOk = 0;
  upstreamFailed = 0;
  tokensFetched = 0;
  tokensRefreshed = 0;
  tokensInvalidated = 0;

  snapshot(): NestSampleStats {
    return {
      requests: this.requests,
      upstreamOk: this.upstreamOk,
      upstreamFailed: this.upstreamFailed,
      tokensFetched: this.tokensFetched,
      tokensRefreshed: this.tokensRefreshed,
      tokensInvalidated: this.tokensInvalidated,
    };
  }
}

export interface NestSampleStats {
  /** GET /upstream requests served. */
  requests: number;
  upstreamOk: number;
  upstreamFailed: number;
  /** First tokens obtained (per cache key). */
  tokensFetched: number;
  /** Tokens replaced (refresh-ahead, expiry, after a 401). */
  tokensRefreshed: number;
  /** Tokens dropped after the API rejected them. */
  tokensInvalidated: number;
}
