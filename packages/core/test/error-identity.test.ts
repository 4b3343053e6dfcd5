import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Options } from 'tsup';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConfigurationError,
  isKeyfobError,
  KeyfobError,
  LoginRequiredError,
  TokenEndpointError,
  TokenResponseError,
} from '../src/index.js';
import packageConfig from '../tsup.config.ts';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
let outDir = '';

// The published ESM and CJS builds, made from this source with the package's own tsup config
// (into a temporary directory, so no one's dist/ is touched), then loaded in one Node process.
beforeAll(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'keyfob-core-build-'));
  const config = packageConfig as Options;
  await build({
    ...config,
    entry: [join(packageDir, 'src/index.ts')],
    tsconfig: join(packageDir, 'tsconfig.build.json'),
    outDir,
    dts: false,
    sourcemap: false,
    clean: false,
    silent: true,
    config: false,
  });
}, 60_000);
afterAll(async () => {
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

describe('one error identity across copies of core', () => {
  it('instanceof and isKeyfobError agree between the ESM and CJS builds in one process', async () => {
    const script = join(outDir, 'check.mjs');
    await writeFile(
      script,
      `import { createRequire } from 'node:module';
const esm = await import(${JSON.stringify(join(outDir, 'index.js'))});
const cjs = createRequire(import.meta.url)(${JSON.stringify(join(outDir, 'index.cjs'))});
const fromCjs = new cjs.TokenEndpointError('x', { status: 401 });
const fromEsm = new esm.ConfigurationError('y');
console.log(JSON.stringify({
  twoCopies: esm.KeyfobError !== cjs.KeyfobError,
  esmIsCjsError: esm.isKeyfobError(fromCjs),
  cjsIsEsmError: cjs.isKeyfobError(fromEsm),
  cjsInstanceofEsmBase: fromCjs instanceof esm.KeyfobError,
  cjsInstanceofEsmClass: fromCjs instanceof esm.TokenEndpointError,
  cjsInstanceofEsmOther: fromCjs instanceof esm.TokenResponseError,
  esmInstanceofCjsBase: fromEsm instanceof cjs.KeyfobError,
  esmInstanceofCjsClass: fromEsm instanceof cjs.ConfigurationError,
  esmInstanceofCjsOther: fromEsm instanceof cjs.LoginRequiredError,
  plainError: esm.isKeyfobError(new Error('z')) || new Error('z') instanceof cjs.KeyfobError,
  code: fromCjs.code,
}));
`,
    );
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [script], { timeout: 30_000 }, (error, stdout, stderr) =>
        error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout),
      );
    });
    expect(JSON.parse(out)).toEqual({
      twoCopies: true,
      esmIsCjsError: true,
      cjsIsEsmError: true,
      cjsInstanceofEsmBase: true,
      cjsInstanceofEsmClass: true,
      cjsInstanceofEsmOther: false,
      esmInstanceofCjsBase: true,
      esmInstanceofCjsClass: true,
      esmInstanceofCjsOther: false,
      plainError: false,
      code: 'KEYFOB_TOKEN_ENDPOINT',
    });
  });

  it('within one copy, instanceof keeps its usual meaning', () => {
    const e = new TokenEndpointError('x');
    expect(e).toBeInstanceOf(KeyfobError);
    expect(e).toBeInstanceOf(TokenEndpointError);
    expect(e instanceof TokenResponseError).toBe(false);
    expect(new LoginRequiredError('l') instanceof ConfigurationError).toBe(false);
    expect(isKeyfobError(e)).toBe(true);
    expect(isKeyfobError(new Error('x'))).toBe(false);
    expect(isKeyfobError({ code: 'KEYFOB_CONFIGURATION', message: 'look-alike' })).toBe(false);
    expect(Object.keys(e)).not.toContain('undefined');
    expect(JSON.stringify(e)).not.toContain('error-kinds');
  });

  it('a subclass defined outside core is recognised by instanceof', () => {
    class AppError extends KeyfobError {}
    const e = new AppError('app');
    expect(e).toBeInstanceOf(AppError);
    expect(e).toBeInstanceOf(KeyfobError);
    expect(new KeyfobError('k') instanceof AppError).toBe(false);
  });
});
