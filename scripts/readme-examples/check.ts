// `pnpm test:readme`: every ```ts block of every README (root, packages/*, apps/*) is type-checked as a
// user's module would be (strict, exactOptionalPropertyTypes, NodeNext, against the packages' public
// entry points), and the blocks marked <!-- run --> are run against local servers. Blocks marked
// <!-- fragment --> are only listed. The convention is in CONTRIBUTING.md ("README examples").
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { type ExampleBlock, extractBlocks, findReadmes } from './extract.ts';
import { startExampleServers } from './servers.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
/** The root README's imports (core, axios) resolve from here. */
const ROOT_CONTEXT = 'packages/axios';
const OUT = '.readme-examples';
const RUN_TIMEOUT_MS = 60_000;

/**
 * `@keyfob/*` resolve to each workspace package's public entry point: `src/index.ts` (the barrel the
 * build publishes) for packages, the `main` of each app.
 */
function workspaceEntries(): Record<string, string[]> {
  const paths: Record<string, string[]> = {};
  for (const dir of ['packages', 'apps']) {
    for (const name of readdirSync(join(root, dir))) {
      const pkgFile = join(root, dir, name, 'package.json');
      if (!existsSync(pkgFile)) continue;
      const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as { name: string; main?: string };
      const entry = dir === 'packages' ? 'src/index.ts' : (pkg.main ?? 'src/index.ts');
      if (existsSync(join(root, dir, name, entry))) paths[pkg.name] = [join(root, dir, name, entry)];
    }
  }
  return paths;
}

export const compilerOptions: ts.CompilerOptions = {
  strict: true,
  exactOptionalPropertyTypes: true,
  noUncheckedIndexedAccess: false,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  target: ts.ScriptTarget.ES2022,
  lib: ['lib.es2023.d.ts'],
  types: ['node'],
  typeRoots: [join(root, 'node_modules/@types')],
  experimentalDecorators: true,
  emitDecoratorMetadata: true,
  esModuleInterop: true,
  skipLibCheck: true,
  noEmit: true,
  allowImportingTsExtensions: true,
  paths: workspaceEntries(),
};

interface Written extends ExampleBlock {
  file: string;
}

function write(blocks: ExampleBlock[]): Written[] {
  const dirs = new Set(blocks.map((b) => join(root, b.context, OUT)));
  for (const d of dirs) {
    rmSync(d, { recursive: true, force: true });
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'package.json'), '{ "type": "module", "private": true }\n');
    writeFileSync(
      join(d, 'tsconfig.json'),
      // For tsx: decorators in the examples and in the workspace sources they import (tsx applies a tsconfig
      // only to the files it includes).
      `${JSON.stringify(
        {
          compilerOptions: { experimentalDecorators: true, paths: compilerOptions.paths },
          include: ['./**/*', join(root, 'packages/**/*'), join(root, 'apps/**/*')],
        },
        null,
        2,
      )}\n`,
    );
  }
  return blocks.map((b) => {
    const name = `${b.readme === 'README.md' ? 'ROOT' : basename(dirname(b.readme))}-L${b.line}.ts`;
    const file = join(root, b.context, OUT, name);
    writeFileSync(file, `// ${b.readme}:${b.line}\n${b.code}`);
    return { ...b, file };
  });
}

export function typecheck(examples: Pick<Written, 'file' | 'readme' | 'line'>[]): Map<string, string[]> {
  const program = ts.createProgram(
    examples.map((e) => e.file),
    compilerOptions,
  );
  const problems = new Map<string, string[]>();
  for (const e of examples) {
    const sf = program.getSourceFile(e.file)!;
    const diagnostics = [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)];
    const lines = diagnostics.map((d) => {
      const { line } = d.start === undefined ? { line: 0 } : sf.getLineAndCharacterOfPosition(d.start);
      // The first line of the file is the "// README:line" comment: line N of the file is line N of the block.
      return `  ${e.readme}:${e.line + line} TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n    ')}`;
    });
    if (lines.length) problems.set(e.file, lines);
  }
  return problems;
}

function runOne(file: string, env: Record<string, string>): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', basename(file)],
      {
        cwd: dirname(file),
        env: { PATH: process.env.PATH ?? '', ...env },
        timeout: RUN_TIMEOUT_MS,
        killSignal: 'SIGKILL',
      },
      (error, stdout, stderr) =>
        resolve({
          code: error ? (typeof error.code === 'number' ? error.code : -1) : 0,
          output: `${stdout}${stderr}`.trim(),
        }),
    );
  });
}

async function main() {
  const only = process.argv.slice(2);
  const readmes = findReadmes(root).filter((r) => only.length === 0 || only.some((o) => r.includes(o)));
  const blocks = readmes.flatMap((r) => extractBlocks(root, r, ROOT_CONTEXT));
  const examples = write(blocks.filter((b) => b.mode !== 'fragment'));
  const fragments = blocks.filter((b) => b.mode === 'fragment');
  const failures: string[] = [];

  // Fixtures: user code the READMEs do not show but the types must accept (see fixtures/*.ts).
  const fixtureDir = join(root, 'scripts/readme-examples/fixtures');
  const fixtures = only.length
    ? []
    : readdirSync(fixtureDir)
        .filter((f) => f.endsWith('.ts'))
        .map((f) => ({
          file: join(fixtureDir, f),
          readme: `scripts/readme-examples/fixtures/${f}`,
          line: 0,
        }));
  const problems = typecheck([...examples, ...fixtures]);
  for (const f of fixtures) {
    const p = problems.get(f.file);
    if (p) failures.push(`${f.readme} does not compile:\n${p.join('\n')}`);
  }
  for (const e of examples) {
    const p = problems.get(e.file);
    if (p) failures.push(`${e.readme}:${e.line} does not compile:\n${p.join('\n')}`);
  }

  const runnable = examples.filter((e) => e.mode === 'run' && !problems.has(e.file));
  if (runnable.length) {
    const servers = await startExampleServers();
    try {
      for (const e of runnable) {
        const runFile = e.file.replace(/\.ts$/, '.run.ts');
        writeFileSync(runFile, servers.rewrite(`// ${e.readme}:${e.line}\n${e.code}`));
        const r = await runOne(runFile, servers.env);
        if (r.code !== 0)
          failures.push(
            `${e.readme}:${e.line} failed when run (exit ${r.code}):\n  ${r.output.split('\n').slice(0, 15).join('\n  ')}`,
          );
      }
    } finally {
      await servers.close();
    }
  }

  const checked = examples.length + fixtures.length;
  process.stdout.write(
    `README examples: ${checked} type-checked, ${runnable.length} run, ${fragments.length} fragments not checked (${readmes.length} READMEs)\n`,
  );
  for (const f of fragments) process.stdout.write(`  fragment ${f.readme}:${f.line}\n`);
  if (failures.length) {
    process.stdout.write(`\n${failures.length} failing:\n\n${failures.join('\n\n')}\n`);
    process.exitCode = 1;
  } else {
    process.stdout.write('all pass\n');
  }
  process.stdout.write(
    `(sources written to <package>/${OUT}/, e.g. ${relative(root, examples[0]?.file ?? OUT)})\n`,
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
