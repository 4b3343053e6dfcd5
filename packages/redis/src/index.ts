export {
  type IoRedisLikeClient,
  type NodeRedisLikeClient,
  type RedisClientLike,
  RedisTokenStoreError,
} from './client.js';
export { RedisTokenStore, type RedisTokenStoreOptions } from './store.js';
