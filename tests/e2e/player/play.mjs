#!/usr/bin/env node
// Play one live stream in headless Debian Chromium with a real player and print ONE JSON line of stats.
//
//   node play.mjs --kind hls|dash|shaka --src URL [--seconds 20] [--low-latency] [--live-delay S]
//                 [--timeout S] [--screenshot out.png] [--chromium /usr/bin/chromium] [--verbose]
//   node play.mjs --probe     # launch only: print Chromium's version and MSE codec support
//
// The page and the player libraries are served from this directory on their own 127.0.0.1 port, so
// the stream's origin is a different origin and CORS is exercised. Waits until --seconds of wall time
// have passed since playback started (or --timeout since launch), then prints window.__snapshot().
// Exit codes: 0 stats printed (whatever they say), 1 browser/page failure, 2 bad arguments,
// 3 overall timeout hit while tearing down.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const FILES = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/player.js': ['player.js', 'text/javascript; charset=utf-8'],
  '/lib/hls.min.js': ['node_modules/hls.js/dist/hls.min.js', 'text/javascript; charset=utf-8'],
  '/lib/dash.all.min.js': ['node_modules/dashjs/dist/modern/umd/dash.all.min.js', 'text/javascript; charset=utf-8'],
  '/lib/shaka-player.compiled.js': ['node_modules/shaka-player/dist/shaka-player.compiled.js', 'text/javascript; charset=utf-8'],
};
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
  // Keep timers and media running at full speed in a page nobody looks at.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

function parse() {
  const { values } = parseArgs({
    options: {
      kind: { type: 'string' },
      src: { type: 'string' },
      seconds: { type: 'string', default: '20' },
      'low-latency': { type: 'boolean', default: false },
      'live-delay': { type: 'string' },
      timeout: { type: 'string' },
      screenshot: { type: 'string' },
      chromium: { type: 'string', default: '/usr/bin/chromium' },
      verbose: { type: 'boolean', default: false },
      probe: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const seconds = Number(values.seconds);
  if (values.probe) return { ...values, kind: 'probe', src: '', seconds: 0, timeout: 30 };
  if (!['hls', 'dash', 'shaka'].includes(values.kind) || !values.src || !(seconds > 0)) {
    throw new Error('usage: node play.mjs --kind hls|dash|shaka --src URL [--seconds N] [--low-latency]');
  }
  const timeout = values.timeout === undefined ? seconds + 40 : Number(values.timeout);
  return { ...values, seconds, timeout };
}

function serve() {
  const server = createServer(async (request, response) => {
    const path = new URL(request.url, 'http://localhost').pathname;
    if (path === '/favicon.ico') {
      response.writeHead(204);
      response.end();
      return;
    }
    if (path === '/time') {
      // dash.js's fallback clock (urn:mpeg:dash:utc:http-xsdate:2014): same machine, same clock.
      response.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-store' });
      response.end(new Date().toISOString());
      return;
    }
    const entry = FILES[path];
    if (!entry) {
      response.writeHead(404, { 'Content-Type': 'text/plain' });
      response.end('not found');
      return;
    }
    try {
      const body = await readFile(join(HERE, entry[0]));
      response.writeHead(200, { 'Content-Type': entry[1], 'Cache-Control': 'no-store' });
      response.end(body);
    } catch (error) {
      response.writeHead(500, { 'Content-Type': 'text/plain' });
      response.end(`cannot read ${entry[0]}: ${error.message} (run scripts/setup.sh)`);
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function watch(page, options, log) {
  const deadline = Date.now() + options.timeout * 1000;
  let snapshot = null;
  while (Date.now() < deadline) {
    snapshot = await page.evaluate(() => window.__snapshot());
    if (snapshot.playbackStartedEpochMs !== null && snapshot.watchedS >= options.seconds) break;
    if (snapshot.fatalErrors.length > 0 && snapshot.playbackStartedEpochMs === null) break;
    await sleep(500);
  }
  log(`stopped watching after ${(snapshot?.watchedS ?? 0).toFixed(1)} s of playback`);
  return snapshot;
}

async function main() {
  let options;
  try {
    options = parse();
  } catch (error) {
    process.stderr.write(`${error.message}\n`);
    return 2;
  }
  const log = (message) => options.verbose && process.stderr.write(`play.mjs: ${message}\n`);
  // Whatever happens below, this process ends: the hard stop fires a little after the watch timeout.
  const hardStop = setTimeout(() => {
    process.stderr.write('play.mjs: overall timeout, exiting\n');
    process.exit(3);
  }, (options.timeout + 30) * 1000);
  hardStop.unref();

  const server = await serve();
  const pagePort = server.address().port;
  const userDataDir = await mkdtemp(join(tmpdir(), 'headwater-chromium-'));
  let context = null;
  const consoleLines = [];
  const httpErrors = []; // responses >= 400 and failed requests, e.g. segments asked for too early
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: options.chromium,
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: { width: 1000, height: 620 },
      timeout: 30_000,
    });
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (message) => {
      if (['error', 'warning'].includes(message.type()) && consoleLines.length < 50) {
        consoleLines.push(`${message.type()}: ${message.text()}`.slice(0, 300));
      }
    });
    page.on('response', (response) => {
      if (response.status() >= 400 && httpErrors.length < 50) httpErrors.push(`${response.status()} ${response.url()}`);
    });
    page.on('requestfailed', (request) => {
      if (httpErrors.length < 50) httpErrors.push(`failed ${request.url()}: ${request.failure()?.errorText}`);
    });
    page.on('pageerror', (error) => consoleLines.length < 50 && consoleLines.push(`pageerror: ${error.message}`));
    const query = new URLSearchParams({
      kind: options.kind,
      src: options.src,
      lowLatency: options['low-latency'] ? '1' : '0',
    });
    if (options['live-delay'] !== undefined) query.set('liveDelay', options['live-delay']);
    const url = `http://127.0.0.1:${pagePort}/index.html?${query}`;
    log(`opening ${url}`);
    await page.goto(url, { waitUntil: 'load', timeout: 15_000 });
    if (options.probe) {
      const probe = await page.evaluate(() => ({
        userAgent: navigator.userAgent,
        codecSupport: window.__stats.codecSupport,
      }));
      process.stdout.write(`${JSON.stringify(probe)}\n`);
      return 0;
    }
    const snapshot = await watch(page, options, log);
    if (options.screenshot) await page.screenshot({ path: options.screenshot });
    const result = {
      ...snapshot,
      userAgent: await page.evaluate(() => navigator.userAgent),
      pageOrigin: `http://127.0.0.1:${pagePort}`,
      console: consoleLines,
      httpErrors,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`play.mjs: ${error.stack || error}\n`);
    return 1;
  } finally {
    if (context) await context.close().catch(() => {});
    server.close();
    server.closeAllConnections();
    await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
  }
}

process.exitCode = await main();
