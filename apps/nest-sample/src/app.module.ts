import { KeyfobModule } from '@keyfob/nestjs';
import { type DynamicModule, Global, Module } from '@nestjs/common';
import { SAMPLE_CONFIG, type SampleConfig } from './config.js';
import { SampleStats } from './stats.js';
import { UpstreamController } from './upstream.controller.js';

/** Holds the sample's configuration and counters, for KeyfobModule's factory and the controller. */
@Global()
@Module({})
class SampleConfigModule {}

@Module({})
export class AppModule {}

/** The application module, built from the configuration read from the environment. */
export function appModule(config: SampleConfig, stats: SampleStats): DynamicModule {
  return {
    module: AppModule,
    imports: [
      {
        module: SampleConfigModule,
        providers: [
          { provide: SAMPLE_CONFIG, useValue: config },
          { provide: SampleStats, useValue: stats },
        ],
        exports: [SAMPLE_CONFIG, SampleStats],
      },
      // The usual shape: options from a configuration provider, resolved at bootstrap.
      KeyfobModule.forRootAsync({
        inject: [SAMPLE_CONFIG],
        useFactory: (c: SampleConfig) => c.keyfob,
      }),
    ],
    controllers: [UpstreamController],
  };
}
