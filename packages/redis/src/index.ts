export {
  type IoRedisLikeClient,
  type NodeRedisClusterLikeClient,
  type NodeRedisLikeClient,
  type RedisClientLike,
  RedisTokenStoreError,
} from './client.js';
export { RedisTokenStore, type RedisTokenStoreOptions } from './store.js';
