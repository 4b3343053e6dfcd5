import { isKeyfobError } from '@keyfob/core';
import { InjectKeyfobHttp } from '@keyfob/nestjs';
import type { HttpService } from '@nestjs/axios';
import { BadGatewayException, Controller, Get, Inject, Logger } from '@nestjs/common';
import { isAxiosError } from 'axios';
import { firstValueFrom } from 'rxjs';
import { SAMPLE_CONFIG, type SampleConfig } from './config.js';
import { SampleStats } from './stats.js';

@Controller()
export class UpstreamController {
  readonly #logger = new Logger(UpstreamController.name);

  constructor(
    // Explicit tokens everywhere: works with or without emitDecoratorMetadata (tsx/esbuild do not emit it).
    @InjectKeyfobHttp() private readonly http: HttpService,
    @Inject(SAMPLE_CONFIG) private readonly config: SampleConfig,
    @Inject(SampleStats) private readonly stats: SampleStats,
  ) {}

  /** Fetches the protected upstream resource (the token is attached by @keyfob/nestjs) and returns its JSON. */
  @Get('upstream')
  async upstream(): Promise<unknown> {
    this.stats.requests++;
    try {
      const res = await firstValueFrom(this.http.get<unknown>(this.config.upstreamPath));
      this.stats.upstreamOk++;
      return res.data;
    } catch (e) {
      this.stats.upstreamFailed++;
      // Never echo the axios error itself: its config carries the Authorization header.
      const detail = isKeyfobError(e)
        ? { error: e.code, message: e.message }
        : isAxiosError(e)
          ? {
              error: 'upstream_error',
              status: e.response?.status ?? null,
              message: `upstream call failed (${e.code ?? e.response?.status ?? 'error'})`,
            }
          : { error: 'internal_error', message: 'upstream call failed' };
      this.#logger.warn(`GET /upstream failed: ${detail.message}`);
      throw new BadGatewayException(detail);
    }
  }

  @Get('health')
  health(): { ok: true } {
    return { ok: true };
  }
}
