// The Rust toolchain bundling needs, found or named. cargo-lambda-cdk builds locally when
// `cargo lambda` runs, and otherwise falls back to Docker bundling, which fails far from the
// cause ("docker exited with status 125"). This project never bundles in Docker: it looks for
// cargo-lambda where `make tools` installs it, and stops with what is missing.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as lambda from 'aws-cdk-lib/aws-lambda';

/** Where `make tools` installs cargo-lambda and Zig (a Python venv at the repository root). */
export const TOOLS_BIN = path.join(__dirname, '..', '..', '..', '.tools', 'venv', 'bin');

const checked = new Set<string>();

function runs(command: string, args: string[]): { ok: boolean; stdout: string } {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  return { ok: result.status === 0 && !result.error, stdout: result.stdout ?? '' };
}

/**
 * Makes sure the functions can be built for `architecture` on this machine, or throws an error
 * that says what to install. Puts `toolsBin` (`.tools/venv/bin`) on PATH first, so `npx cdk`
 * in infra/ works without `make`.
 */
export function ensureRustToolchain(architecture: lambda.Architecture, toolsBin: string = TOOLS_BIN): void {
  if (checked.has(architecture.name)) return;
  const pathEntries = (process.env.PATH ?? '').split(path.delimiter);
  if (fs.existsSync(toolsBin) && !pathEntries.includes(toolsBin)) {
    process.env.PATH = [toolsBin, ...pathEntries].join(path.delimiter);
  }
  if (!runs('cargo', ['lambda', '--version']).ok) {
    throw new Error(
      'cargo-lambda is needed to build the functions and was not found: run `make tools` at the ' +
        'repository root (it installs cargo-lambda into .tools/venv), or install cargo-lambda on PATH. ' +
        'Docker bundling is not used.',
    );
  }
  if (architecture === lambda.Architecture.ARM_64) {
    const installed = runs('rustup', ['target', 'list', '--installed']);
    const zig = runs('zig', ['version']).ok || runs('python3', ['-c', 'import ziglang']).ok;
    if (!installed.stdout.split('\n').includes('aarch64-unknown-linux-gnu') || !zig) {
      throw new Error(
        'arm64 functions need the aarch64-unknown-linux-gnu Rust target and Zig: run `make tools-arm64` ' +
          'at the repository root, or deploy with -c fanout:architecture=x86_64.',
      );
    }
  }
  checked.add(architecture.name);
}
