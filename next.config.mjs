// The console's pages. server/ hosts them (Next as a request handler next to the REST API
// and socket.io), so nothing here listens, proxies or reaches the network.
import { fileURLToPath } from 'node:url';

/** This file's folder: the repo root, where app/, public/ and lib/contracts live. */
const root = fileURLToPath(new URL('.', import.meta.url));

/** @type {import('next').NextConfig} */
const nextConfig = {
  reactStrictMode: true,
  poweredByHeader: false,
  // Pin the workspace root: app/ imports ../lib/contracts, and no parent lockfile should win.
  turbopack: { root },
  outputFileTracingRoot: root,
  // No image optimiser: the console shows no raster images and must not need network.
  images: { unoptimized: true },
  devIndicators: false,
};

export default nextConfig;
