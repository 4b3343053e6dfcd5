export {
  type Dispatch,
  type DispatchRequestInfo,
  type TokenInterceptor,
  tokenInterceptor,
} from './token-interceptor.js';
export {
  type FetchLike,
  type FetchRequestInfo,
  type FetchTokenOptions,
  type WithTokens,
  withTokens,
} from './with-tokens.js';
