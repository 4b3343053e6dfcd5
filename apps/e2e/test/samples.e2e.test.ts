import { describe, expect, it } from 'vitest';
import { type AdapterReport, runDemo } from '../../../scripts/demo.ts';

// The demo scenario, shortened: each sample app against the real authorization server (oidc-provider,
// JWT access tokens checked against its JWKS), across token expiries and a mass revocation.
describe('sample apps against apps/authorization-server', () => {
  const lines: string[] = [];
  let reports: AdapterReport[] = [];

  it('runs every adapter through expiries and a mass revocation without a failed request', async () => {
    reports = await runDemo({
      durationMs: 5_000,
      tokenTtlSeconds: 2,
      concurrency: 4,
      log: (l) => lines.push(l),
      quiet: true,
    });
    expect(reports.map((r) => r.adapter)).toEqual(['axios', 'got', 'fetch', 'nest', 'express']);
    for (const r of reports) {
      expect({ adapter: r.adapter, failed: r.failed, notes: r.notes }).toEqual({
        adapter: r.adapter,
        failed: 0,
        notes: undefined,
      });
      expect(r.requests).toBeGreaterThan(20);
      // 5 s of 2 s tokens plus one revocation: a handful of token requests, never one per call.
      expect(r.tokenRequests).toBeGreaterThanOrEqual(2);
      expect(r.tokenRequests).toBeLessThan(20);
    }
    // The revocation was felt and recovered from (each adapter saw 401s and still failed nothing).
    expect(reports.every((r) => r.recovered401 > 0)).toBe(true);
  });

  it('the diagnostics channels saw what the authorization server saw', () => {
    for (const r of reports.filter((x) => x.adapter === 'axios' || x.adapter === 'got')) {
      expect({ adapter: r.adapter, seen: r.metrics?.tokenRequests }).toEqual({
        adapter: r.adapter,
        seen: r.tokenRequests,
      });
    }
    for (const r of reports) {
      expect(r.metrics?.lookups).toBeGreaterThan(0);
      expect(r.metrics!.hits / r.metrics!.lookups).toBeGreaterThan(0.5);
      expect(r.metrics?.p50Ms).toBeTypeOf('number');
    }
  });

  it('renews per-user tokens with their refresh tokens in the login flow', () => {
    const express = reports.find((r) => r.adapter === 'express');
    expect(express?.refreshes).toBeGreaterThan(0);
  });
});
