export type { KeyfobTokenClaims } from './api.js';
export { type BrowserlessLoginOptions, browserlessLogin } from './browserless-login.js';
export { type ClientConfig, DEFAULT_CLIENTS } from './clients.js';
export {
  type AuthorizationServerOptions,
  type AuthorizationServerStats,
  type RunningAuthorizationServer,
  startAuthorizationServer,
} from './server.js';
