import { readFileSync } from 'node:fs';
import { keyfobTsup } from '../../tsup.base.ts';

const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as {
  version: string;
};

// VERSION (src/version.ts) is package.json's version, fixed at build time.
export default keyfobTsup({ define: { __KEYFOB_VERSION__: JSON.stringify(version) } });
