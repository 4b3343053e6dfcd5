import { keyfobTsup } from '../../tsup.base.ts';

// bin.ts is ESM only: the `keyfob` binary is run by node, never required.
export default [
  keyfobTsup(),
  keyfobTsup({ entry: ['src/bin.ts'], format: ['esm'], dts: false, clean: false }),
];
