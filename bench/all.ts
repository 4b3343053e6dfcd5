import { writeFileSync } from 'node:fs';
import { benchHotPath, formatHotPath } from './hot-path.ts';

const sections: string[] = [`# keyfob benchmarks\n\nNode ${process.version}, ${new Date().toISOString()}\n`];
function section(title: string, body: string) {
  const text = `## ${title}\n\n${body}\n`;
  console.log(text);
  sections.push(text);
}

console.log('1/1 hot path: cached getToken() vs Map.get + Date.now() ...');
section('1. Hot path: cached getToken()', formatHotPath(await benchHotPath()));

writeFileSync(new URL('./results.md', import.meta.url), sections.join('\n'));
console.log('written to bench/results.md');
