export {
  type GotLike,
  type GotRequestOptions,
  type KeyfobContext,
  type KeyfobGotHooks,
  keyfobErrorOf,
  type TokenHooksOptions,
  tokenHooks,
  withTokens,
} from './token-hooks.js';
