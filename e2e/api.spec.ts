/**
 * The REST API as a script drives it (no browser): start with defaults, poll to the end, read
 * the timeline; bad input and unknown ids get stable codes.
 */
import { expect, test } from '@playwright/test';
import type { MigrationEvent } from '../lib/contracts';
import { listMigrations, stopGuests, waitForEnd, type MigrationSummary } from './support';

test('POST {"channels":4} starts a local migration that completes verified, with a timeline ending "completed"', async ({ request }) => {
  const res = await request.post('/api/migrations', { data: { channels: 4 } });
  expect(res.status(), await res.text()).toBe(201);
  const started = (await res.json()) as MigrationSummary;
  expect(started).toMatchObject({ channels: 4, destination: 'embedded' });
  expect(started.id).toBeTruthy();
  expect((await listMigrations(request)).map((m) => m.id)).toContain(started.id);

  try {
    const detail = await waitForEnd(request, started.id);
    expect(detail.summary.state, detail.summary.errorMessage ?? '').toBe('completed');
    expect(detail.snapshot.verified).toBe(true);
    expect(detail.snapshot.digest).toMatch(/^[0-9a-f]{16}$/);
    expect(detail.snapshot.channels).toHaveLength(4);
    expect(detail.config.channels).toBe(4);

    const tl = await request.get(`/api/migrations/${encodeURIComponent(started.id)}/timeline`);
    expect(tl.status()).toBe(200);
    const { id, events } = (await tl.json()) as { id: string; events: MigrationEvent[] };
    expect(id).toBe(started.id);
    expect(events.length).toBeGreaterThan(0);
    const types = events.map((e) => e.type);
    expect(types).toContain('hello');
    expect(types.at(-1), `timeline: ${types.join(' ')}`).toBe('completed');
    const last = events.at(-1) as Extract<MigrationEvent, { type: 'completed' }>;
    expect(last.digest).toBe(detail.snapshot.digest);
  } finally {
    await stopGuests(request, [started.uuid]);
  }
});

test('POST with a bad channel count: 422 with fields.channels, nothing started', async ({ request }) => {
  const before = (await listMigrations(request)).length;
  for (const [channels, message] of [
    [0, /at least 1/],
    [256, /at most 255/],
  ] as const) {
    const res = await request.post('/api/migrations', { data: { channels } });
    expect(res.status(), `channels=${channels}`).toBe(422);
    const body = (await res.json()) as { code: string; fields: Record<string, string[]> };
    expect(body.code).toBe('MIGRATION_CONFIG_INVALID');
    expect(body.fields.channels, JSON.stringify(body)).toBeDefined();
    expect(body.fields.channels.join(' ')).toMatch(message);
  }
  expect((await listMigrations(request)).length).toBe(before);
});

test('an unknown migration id is 404 NOT_FOUND', async ({ request }) => {
  for (const [method, url] of [
    ['GET', '/api/migrations/no-such-migration'],
    ['GET', '/api/migrations/no-such-migration/timeline'],
    ['POST', '/api/migrations/no-such-migration/cancel'],
  ] as const) {
    const res = method === 'GET' ? await request.get(url) : await request.post(url);
    expect(res.status(), `${method} ${url}`).toBe(404);
    expect(((await res.json()) as { code: string }).code).toBe('NOT_FOUND');
  }
});
