import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'

import * as wxlogin from '../wxlogin.js'

const dir = new URL('../', import.meta.url)

test('wxlogin.d.ts declares what wxlogin.js exports, no more', async () => {
  const dts = await readFile(new URL('wxlogin.d.ts', dir), 'utf8')
  const declared = [...dts.matchAll(/^export (?:function|class|const) (\w+)/gm)].map((m) => m[1])
  assert.deepEqual([...new Set(declared)].sort(), Object.keys(wxlogin).sort())
})

test('package.json: an ES module named @wxlogin/web, without dependencies', async () => {
  const pkg = JSON.parse(await readFile(new URL('package.json', dir), 'utf8'))
  assert.equal(pkg.name, '@wxlogin/web')
  assert.equal(pkg.type, 'module')
  assert.equal(pkg.exports['.'].default, './wxlogin.js')
  assert.equal(pkg.exports['.'].types, './wxlogin.d.ts')
  assert.equal(pkg.dependencies, undefined)
  assert.equal(pkg.devDependencies, undefined)
})

test('wxlogin.js imports nothing', async () => {
  const src = await readFile(new URL('wxlogin.js', dir), 'utf8')
  assert.doesNotMatch(src, /^\s*import\b|\bimport\s*\(|\brequire\s*\(/m)
})
