import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

/** How a README marks a TypeScript block (an HTML comment on the line before the fence). */
export type BlockMode = 'check' | 'run' | 'fragment';

export interface ExampleBlock {
  /** The README, relative to the repository root. */
  readme: string;
  /** 1-based line of the opening fence. */
  line: number;
  mode: BlockMode;
  code: string;
  /** The package folder whose dependencies the example may import (root README: `packages/axios`). */
  context: string;
}

/** `<!-- fragment -->`, `<!-- run -->`, `<!-- check -->`, optionally with a note: `<!-- fragment: inside a route -->`. */
const MARKER = /^<!--\s*(fragment|run|check)\b(?:\s*:[^>]*)?\s*-->$/;
const FENCE = /^```(ts|typescript|tsx|mts)\s*$/;

/** README.md of the root, of every package and of every app. */
export function findReadmes(root: string): string[] {
  const out = ['README.md'];
  for (const dir of ['packages', 'apps']) {
    for (const name of readdirSync(join(root, dir)).sort()) {
      const rel = join(dir, name, 'README.md');
      try {
        readFileSync(join(root, rel));
        out.push(rel);
      } catch {
        // a package without a README: nothing to check
      }
    }
  }
  return out;
}

/** Every ```ts block of a README with its mode: `<!-- fragment -->`, `<!-- run -->`, or checked by default. */
export function extractBlocks(root: string, readme: string, rootContext: string): ExampleBlock[] {
  const lines = readFileSync(join(root, readme), 'utf8').split('\n');
  const blocks: ExampleBlock[] = [];
  const context = readme === 'README.md' ? rootContext : dirname(readme);
  for (let i = 0; i < lines.length; i++) {
    if (!FENCE.test(lines[i]!.trim())) continue;
    let j = i - 1;
    while (j >= 0 && lines[j]!.trim() === '') j--;
    const marker = j >= 0 ? MARKER.exec(lines[j]!.trim()) : null;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!.trim()); i++) body.push(lines[i]!);
    blocks.push({
      readme: relative(root, join(root, readme)),
      line: start + 1,
      mode: (marker?.[1] as BlockMode | undefined) ?? 'check',
      code: `${body.join('\n')}\n`,
      context,
    });
  }
  return blocks;
}
