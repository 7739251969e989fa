#!/usr/bin/env node
// Compiles crates/parevm-workloads/contracts/*.sol with the pinned solc-js
// (scripts/node_modules/solc) and writes, per contract <Name>:
//   <out>/<Name>.hex       runtime (deployed) bytecode, lowercase hex, no 0x, no newline
//   <out>/<Name>.abi.json  ABI
// plus <out>/selectors.json ({ "<Name>": { "sig(types)": "xxxxxxxx" } }).
//
// Usage: node scripts/build-contracts.js [--out DIR]   (default: contracts/build)
// Deterministic: fixed compiler, fixed settings, no metadata hash / CBOR tail,
// sorted inputs, sorted JSON keys.
'use strict';

const fs = require('fs');
const path = require('path');

const REPO = path.resolve(__dirname, '..');
const CONTRACTS_DIR = path.join(REPO, 'crates', 'parevm-workloads', 'contracts');
const PINNED = require('./package.json').dependencies.solc;

// Storage layouts that the workload generator relies on: checked on every build.
const EXPECTED_LAYOUT = {
  Erc20: [['balanceOf', 0], ['allowance', 1], ['totalSupply', 2]],
  AmmPair: [['token0', 0], ['token1', 1], ['reserve0', 2], ['reserve1', 3]],
  HotSlot: [['counter', 0], ['lastBump', 1]],
};

function parseArgs(argv) {
  let out = path.join(CONTRACTS_DIR, 'build');
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') out = path.resolve(argv[++i]);
    else throw new Error(`unknown argument: ${argv[i]}`);
  }
  return { out };
}

function sortKeys(v) {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v).sort()) o[k] = sortKeys(v[k]);
    return o;
  }
  return v;
}

function fail(msg) {
  console.error(`build-contracts: ${msg}`);
  process.exit(1);
}

function main() {
  const { out } = parseArgs(process.argv.slice(2));
  const solc = require('solc');
  const version = solc.version();
  if (!version.startsWith(PINNED + '+')) {
    fail(`solc-js ${version} does not match pinned ${PINNED}; run npm ci --prefix scripts`);
  }

  const files = fs.readdirSync(CONTRACTS_DIR).filter((f) => f.endsWith('.sol')).sort();
  if (files.length === 0) fail(`no .sol files in ${CONTRACTS_DIR}`);
  const sources = {};
  for (const f of files) sources[f] = { content: fs.readFileSync(path.join(CONTRACTS_DIR, f), 'utf8') };

  const input = {
    language: 'Solidity',
    sources,
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: 'cancun',
      // No metadata hash / CBOR tail: runtime code depends only on source + settings.
      metadata: { bytecodeHash: 'none', appendCBOR: false },
      outputSelection: {
        '*': {
          '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object', 'evm.methodIdentifiers', 'storageLayout'],
        },
      },
    },
  };

  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  for (const e of output.errors || []) console.error(e.formattedMessage || e.message);
  if (errors.length) fail('compilation failed');

  fs.mkdirSync(out, { recursive: true });
  const selectors = {};
  for (const file of files) {
    for (const [name, c] of Object.entries(output.contracts[file] || {}).sort()) {
      const runtime = c.evm.deployedBytecode.object;
      const creation = c.evm.bytecode.object;
      if (!runtime) continue; // interfaces / abstract contracts
      if (!/^[0-9a-f]+$/.test(runtime)) fail(`${name}: runtime code is not plain hex (unlinked library?)`);
      // Sanity: runtime code is a strict suffix-region of creation code, and is
      // not itself creation code (which would CODECOPY+RETURN the runtime).
      if (runtime === creation || !creation.includes(runtime)) fail(`${name}: unexpected runtime/creation relationship`);

      const want = EXPECTED_LAYOUT[name];
      if (want) {
        const got = c.storageLayout.storage.map((s) => [s.label, Number(s.slot), s.offset]);
        const ok = got.length === want.length && want.every(([l, s], i) => got[i][0] === l && got[i][1] === s && got[i][2] === 0);
        if (!ok) fail(`${name}: storage layout ${JSON.stringify(got)} != expected ${JSON.stringify(want)}`);
      }

      fs.writeFileSync(path.join(out, `${name}.hex`), runtime);
      fs.writeFileSync(path.join(out, `${name}.abi.json`), JSON.stringify(c.abi, null, 2) + '\n');
      selectors[name] = sortKeys(c.evm.methodIdentifiers);
      console.log(`${name}: runtime ${runtime.length / 2} bytes`);
    }
  }
  for (const name of Object.keys(EXPECTED_LAYOUT)) if (!selectors[name]) fail(`contract ${name} not produced`);
  fs.writeFileSync(path.join(out, 'selectors.json'), JSON.stringify(sortKeys(selectors), null, 2) + '\n');
  console.log(`solc ${version}; wrote ${out}`);
}

main();
