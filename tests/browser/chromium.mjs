// The Chromium the browser tests drive: $CHROMIUM, or Debian's package on the PATH.

import { execFileSync } from 'node:child_process';

export function chromiumPath() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  try {
    return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('chromium is not installed (deploy/bin/setup --test installs it)');
  }
}
