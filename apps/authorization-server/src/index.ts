export type { KeyfobTokenClaims } from './api.js';
export { type BrowserlessLoginOptions, browserlessLogin } from './browserless-login.js';
export { type ClientConfig, DEFAULT_CLIENTS, DPOP_CLIENTS, JWT_BEARER, TOKEN_EXCHANGE } from './clients.js';
export type { DpopApiControl, DpopApiRequest } from './dpop-api.js';
export { createTestPki, type KeyAndCert, type TestPki } from './pki.js';
export {
  type AuthorizationServerOptions,
  type AuthorizationServerStats,
  type RunningAuthorizationServer,
  startAuthorizationServer,
} from './server.js';
