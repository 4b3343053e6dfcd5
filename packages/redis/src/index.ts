export type { IoRedisLikeClient, NodeRedisLikeClient, RedisClientLike } from './client.js';
export { RedisTokenStore, type RedisTokenStoreOptions } from './store.js';
