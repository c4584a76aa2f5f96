'use client';

/**
 * "New migration": the operator's fields in operator units (MiB, MiB/s, ms), checked with the
 * same schema the server uses, messages shown next to their field. Nothing is sent while a
 * field is invalid; a 422's `fields` are shown the same way (app/lib/migration-form.ts, shared
 * with the QEMU form).
 */
import { INJECT_KINDS, StartMigrationSchema, type StartMigrationInput, type TlsCredsList, type TlsCredsView } from '../../lib/contracts/console';
import { api } from '../lib/api';
import { rowSpec, type FaultRow } from '../lib/fault-lab';
import { useEffect, useRef, useState } from 'react';
import { MiB, formatBytes, shortId } from '../lib/format';
import { MIGRATE_GUEST_EVENT } from '../lib/guest-events';
import { useGuests } from '../lib/hooks';
import { num, useMigrationForm } from '../lib/migration-form';
import { FaultLab } from './FaultLab';
import { CompressionField, Field, OtherErrors } from './FormField';

interface Values {
  destination: string;
  /** '' : a new guest; else the uuid of a guest on this host, migrated as it is. */
  guest: string;
  channels: string;
  ramSize: string;
  fill: 'random' | 'zero' | 'text' | 'mixed';
  compression: 'none' | 'zlib' | 'zstd';
  compressionLevel: string;
  /** 'host': the console's default set (in clear without one); 'off': in clear; 'set:NAME': that set. */
  tls: string;
  workload: string;
  maxBandwidth: string;
  downtimeLimitMs: string;
  setupTimeoutMs: string;
}

const DEFAULTS: Values = {
  destination: 'embedded',
  guest: '',
  channels: '4',
  ramSize: '256',
  fill: 'random',
  compression: 'none',
  compressionLevel: '1',
  tls: 'host',
  workload: 'idle',
  maxBandwidth: '0',
  downtimeLimitMs: '300',
  setupTimeoutMs: '10000',
};

/** Operator units to the API's: MiB → bytes, MiB/s → bytes/s. */
function toInput(v: Values, faults: readonly FaultRow[]): StartMigrationInput {
  // An existing guest brings its own RAM, contents and workload.
  const own = v.guest === '' ? { ramSize: num(v.ramSize) * MiB, fill: v.fill, workload: v.workload.trim() } : { guest: v.guest };
  return {
    destination: v.destination.trim(),
    channels: num(v.channels),
    ...own,
    compression: v.compression,
    compressionLevel: num(v.compressionLevel),
    // Absent: the console's default credential set (GET /api/tls), in clear without one.
    ...(v.tls === 'off' ? { tls: null } : v.tls.startsWith('set:') ? { tls: { creds: v.tls.slice(4) } } : {}),
    // A rate has no page alignment to keep: whole bytes per second are close enough.
    maxBandwidth: Math.round(num(v.maxBandwidth) * MiB),
    downtimeLimitMs: num(v.downtimeLimitMs),
    setupTimeoutMs: num(v.setupTimeoutMs),
    inject: faults.map(rowSpec),
  };
}

const FIELDS = ['destination', 'guest', 'channels', 'ramSize', 'fill', 'compression', 'compressionLevel', 'tls', 'workload', 'maxBandwidth', 'downtimeLimitMs', 'setupTimeoutMs', 'inject'] as const;

export function NewMigrationForm() {
  const form = useMigrationForm({ prefix: '', defaults: DEFAULTS, fields: FIELDS, schema: StartMigrationSchema, toInput, start: api.startMigration });
  const { errors, formError, input, field, setValue } = form;
  const { items: guests } = useGuests();
  // Guests that could go: running or paused here, and not already migrating.
  const idle = (guests ?? []).filter((g) => g.state !== 'stopped' && g.migrating === null);
  const chosen = form.values.guest;
  const set = useRef(setValue);
  set.current = setValue;
  // "Migrate" in the guest table picks that guest here.
  useEffect(() => {
    const pick = (e: Event) => {
      set.current('guest', (e as CustomEvent<string>).detail);
      const box = document.getElementById('field-guest');
      box?.scrollIntoView({ block: 'center' });
      box?.focus();
    };
    window.addEventListener(MIGRATE_GUEST_EVENT, pick);
    return () => window.removeEventListener(MIGRATE_GUEST_EVENT, pick);
  }, []);
  // A chosen guest that left (stopped, or migrating now) is no longer a choice.
  useEffect(() => {
    if (chosen !== '' && guests !== null && !guests.some((g) => g.uuid === chosen && g.state !== 'stopped' && g.migrating === null)) set.current('guest', '');
  }, [chosen, guests]);
  const newGuest = chosen === '';
  const [creds, setCreds] = useState<TlsCredsList | null>(null);
  useEffect(() => {
    let live = true;
    api.tlsCreds().then((l) => live && setCreds(l), () => undefined);
    return () => {
      live = false;
    };
  }, []);
  const defaultSet = creds?.sets.find((c) => c.name === creds.default) ?? null;

  return (
    <form data-testid="new-migration" className="new-migration" onSubmit={form.onSubmit} noValidate>
      <Field {...field('destination')} label="Destination" hint={<>embedded, or HOST:PORT of a <code>multifd dest</code></>}>
        <input {...input('destination')} type="text" autoComplete="off" spellCheck={false} />
      </Field>
      <Field {...field('guest')} label="Guest" hint={newGuest ? 'a new guest of the RAM, fill and workload below' : 'this guest as it runs, with its own RAM and workload'}>
        <select {...input('guest')} data-testid="field-guest">
          <option value="">a new guest</option>
          {idle.map((g) => (
            <option key={g.uuid} value={g.uuid}>
              {g.name} · {shortId(g.uuid, 8, 4)} · {formatBytes(g.ramSize)} · {g.workload}
            </option>
          ))}
        </select>
      </Field>
      <Field {...field('channels')} label="Channels" hint="multifd channels, 1 to 255">
        <input {...input('channels')} type="number" inputMode="numeric" min={1} max={255} step={1} />
      </Field>
      <Field {...field('ramSize')} label="RAM (MiB)" hint="guest RAM in MiB, a multiple of 4 KiB">
        <input {...input('ramSize')} type="number" inputMode="decimal" min={1} step="any" disabled={!newGuest} />
      </Field>
      <Field {...field('fill')} label="Fill" hint="initial RAM contents">
        <select {...input('fill')} disabled={!newGuest}>
          <option value="random">random (incompressible)</option>
          <option value="zero">zero</option>
          <option value="text">text (compressible)</option>
          <option value="mixed">mixed (half text)</option>
        </select>
      </Field>
      <CompressionField field={field('compression')} select={input('compression')} hint="page payloads, per packet; the destination may refuse a method" />
      {form.values.compression === 'none' ? null : (
        <Field {...field('compressionLevel')} label="Compression level" hint="zlib 1–9, zstd 1–19; 1 is fastest">
          <input {...input('compressionLevel')} type="number" inputMode="numeric" min={1} max={19} step={1} />
        </Field>
      )}
      <Field {...field('tls')} label="TLS" hint="every channel, the main one included; the live view says which was used">
        <select {...input('tls')}>
          <option value="host">
            {creds === null ? "this console's default" : defaultSet ? `on: ${describeCreds(defaultSet)}` : 'off: in clear (this console has no TLS credentials)'}
          </option>
          {defaultSet || creds === null ? <option value="off">off: in clear</option> : null}
          {(creds?.sets ?? [])
            .filter((c) => c.name !== creds?.default)
            .map((c) => (
              <option key={c.name} value={`set:${c.name}`}>
                on: {describeCreds(c)}
              </option>
            ))}
        </select>
      </Field>
      <Field
        {...field('workload')}
        label="Workload"
        hint={
          <>
            <code>idle</code> · <code>random:RATE[:WS]</code> · <code>random:max</code> · <code>hotset:SIZE[:RATE]</code> ·{' '}
            <code>sweep[:RATE]</code> (RATE in MiB/s, e.g. <code>random:32</code>)
          </>
        }
      >
        <input {...input('workload')} type="text" autoComplete="off" spellCheck={false} disabled={!newGuest} />
      </Field>
      <Field {...field('maxBandwidth')} label="Max bandwidth (MiB/s)" hint="0 = uncapped">
        <input {...input('maxBandwidth')} type="number" inputMode="decimal" min={0} step="any" />
      </Field>
      <Field {...field('downtimeLimitMs')} label="Downtime limit (ms)" hint="switch over once the expected downtime is under this">
        <input {...input('downtimeLimitMs')} type="number" inputMode="numeric" min={1} step={1} />
      </Field>
      <Field {...field('setupTimeoutMs')} label="Channel-setup timeout (ms)" hint="every channel must be accepted within this">
        <input {...input('setupTimeoutMs')} type="number" inputMode="numeric" min={10} step={1} />
      </Field>
      <FaultLab
        prefix=""
        kinds={INJECT_KINDS}
        hint="Make the source misbehave on purpose, one fault per channel (the kinds: the README, under Faults for testing). The migration is marked as a fault-lab run everywhere it is shown."
        lab={form.lab}
        errors={errors.inject}
      />
      {/* Not announced (no role=alert), as this list has always been. */}
      <OtherErrors prefix="" errors={form.otherErrors} alert={false} />
      {formError && (
        <p className="form-error" role="alert" data-testid="form-error">
          {formError.code === null ? formError.message : `${formError.code}: ${formError.message}`}
        </p>
      )}
      <div className="actions">
        <button type="submit" data-testid="start" disabled={form.pending || !form.ready}>
          {form.pending ? 'Starting…' : 'Start migration'}
        </button>
      </div>
    </form>
  );
}

/** "default (x509, client certificate)", "lab (PSK)" */
function describeCreds(c: TlsCredsView): string {
  return `${c.name} (${c.mode === 'psk' ? 'PSK' : c.clientCert ? 'x509, client certificate' : 'x509'})`;
}
