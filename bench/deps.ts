// The benchmark drives the adapters with the same axios and got the packages are developed against,
// imported the way the adapters import them (ESM), so both sides use one copy of each library.
export { axios } from '../packages/axios/bench/axios-module.ts';
export { got } from '../packages/got/bench/got-module.ts';
