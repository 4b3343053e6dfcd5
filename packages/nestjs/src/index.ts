export {
  type KeyfobErrorResponse,
  KeyfobExceptionFilter,
  keyfobErrorResponse,
} from './exception-filter.js';
export {
  KeyfobHealthIndicator,
  type KeyfobHealthOptions,
  type KeyfobHealthResult,
  type KeyfobManagerHealth,
} from './health.js';
export {
  KeyfobModule,
  type KeyfobModuleAsyncOptions,
  type KeyfobModuleForRootOptions,
} from './keyfob.module.js';
export type {
  KeyfobHttpOptions,
  KeyfobModuleExtras,
  KeyfobModuleOptions,
  KeyfobOptionsFactory,
} from './options.js';
export {
  DEFAULT_KEYFOB_NAME,
  getKeyfobHttpToken,
  getTokenManagerToken,
  InjectKeyfobHttp,
  InjectTokenManager,
} from './tokens.js';
