// The benchmark drives the adapters with the same axios and got the packages are developed against.
import { createRequire } from 'node:module';

const fromAxios = createRequire(new URL('../packages/axios/package.json', import.meta.url));
const fromGot = createRequire(new URL('../packages/got/package.json', import.meta.url));

export const axios = (await import(fromAxios.resolve('axios'))).default as typeof import('axios').default;
export const got = (await import(fromGot.resolve('got'))).default as typeof import('got').default;
