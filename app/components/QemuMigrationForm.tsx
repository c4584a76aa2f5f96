'use client';

/**
 * "New migration" in QEMU mode: two running QEMUs, reached over QMP (the destination started
 * with `-incoming defer`), which the console migrates through its relay to watch each channel.
 * Same conventions as NewMigrationForm (app/lib/migration-form.ts): operator units, the
 * server's schema checked first, messages next to their field, a 422's `fields` shown the same
 * way (a QMP socket the server cannot reach is named by its field). QEMU's own refusals (502)
 * are shown as QEMU worded them, with its code.
 *
 * Ids and test ids carry a `qemu-` prefix: both forms stay mounted under their tabs.
 */
import { useState } from 'react';
import { RELAY_INJECT_KINDS, StartQemuMigrationSchema, type StartQemuMigrationInput } from '../../lib/contracts/console';
import { api } from '../lib/api';
import { KIND_INFO, rowSpec, type FaultRow } from '../lib/fault-lab';
import { MiB } from '../lib/format';
import { num, useMigrationForm } from '../lib/migration-form';
import { FaultLab } from './FaultLab';
import { CompressionField, Field, FieldError, OtherErrors } from './FormField';

interface Values {
  sourceQmp: string;
  destinationQmp: string;
  channels: string;
  compression: 'none' | 'zlib' | 'zstd';
  maxBandwidth: string;
  migrationHost: string;
  relayHost: string;
}

const DEFAULTS: Values = {
  sourceQmp: '',
  destinationQmp: '',
  channels: '4',
  compression: 'none',
  maxBandwidth: '0',
  migrationHost: '127.0.0.1',
  relayHost: '127.0.0.1',
};

/** Both forms stay mounted under their tabs: ids and test ids here start with this. */
const P = 'qemu-';

/** The relay can only put faults into traffic it forwards: the handshake ones, and drop. */
const RELAY_KINDS = RELAY_INJECT_KINDS.map((kind) => KIND_INFO.get(kind)!);

/** Operator units to the API's: MiB/s → bytes/s. */
function toInput(v: Values, record: boolean, faults: readonly FaultRow[]): StartQemuMigrationInput {
  return {
    sourceQmp: v.sourceQmp.trim(),
    destinationQmp: v.destinationQmp.trim(),
    channels: num(v.channels),
    compression: v.compression,
    maxBandwidth: Math.round(num(v.maxBandwidth) * MiB),
    migrationHost: v.migrationHost.trim(),
    relayHost: v.relayHost.trim(),
    record,
    inject: faults.map(rowSpec),
  };
}

const FIELDS = ['sourceQmp', 'destinationQmp', 'channels', 'compression', 'maxBandwidth', 'migrationHost', 'relayHost', 'record', 'inject'] as const;

export function QemuMigrationForm() {
  const [record, setRecord] = useState(false);
  const form = useMigrationForm({
    prefix: P,
    defaults: DEFAULTS,
    fields: FIELDS,
    schema: StartQemuMigrationSchema,
    toInput: (values, faults) => toInput(values, record, faults),
    start: api.startQemuMigration,
  });
  const { errors, formError, field } = form;
  // Unlike the built-in form's, these boxes carry test ids too.
  const input = (name: keyof Values) => ({ ...form.input(name), 'data-testid': `${P}field-${name}` });
  // A failure that is no API answer has no code of its own.
  const errorCode = formError?.code ?? 'ERROR';

  return (
    <form data-testid="qemu-migration" className="new-migration qemu-migration" onSubmit={form.onSubmit} noValidate>
      <Field {...field('sourceQmp')} label="Source QMP" hint={<>the source QEMU&apos;s QMP socket: a unix socket path or HOST:PORT</>}>
        <input {...input('sourceQmp')} type="text" autoComplete="off" spellCheck={false} placeholder="/run/qemu/src.qmp" />
      </Field>
      <Field
        {...field('destinationQmp')}
        label="Destination QMP"
        hint={
          <>
            the destination QEMU&apos;s, started with <code>-incoming defer</code> and the same <code>-uuid</code>
          </>
        }
      >
        <input {...input('destinationQmp')} type="text" autoComplete="off" spellCheck={false} placeholder="/run/qemu/dst.qmp" />
      </Field>
      <Field {...field('channels')} label="Channels" hint="multifd channels, 1 to 255, set on both QEMUs">
        <input {...input('channels')} type="number" inputMode="numeric" min={1} max={255} step={1} />
      </Field>
      <CompressionField field={field('compression')} select={input('compression')} hint="QEMU's multifd-compression, set on both QEMUs; the relay shows each channel's ratio" />
      <Field {...field('maxBandwidth')} label="Max bandwidth (MiB/s)" hint="0 = uncapped (QEMU's default cap of 128 MiB/s is lifted)">
        <input {...input('maxBandwidth')} type="number" inputMode="decimal" min={0} step="any" />
      </Field>
      <Field {...field('migrationHost')} label="Migration host" hint={<>where the destination QEMU listens (<code>migrate-incoming tcp:HOST:0</code>)</>}>
        <input {...input('migrationHost')} type="text" autoComplete="off" spellCheck={false} />
      </Field>
      <Field {...field('relayHost')} label="Relay host" hint="where the console's relay listens for the source QEMU">
        <input {...input('relayHost')} type="text" autoComplete="off" spellCheck={false} />
      </Field>
      <div className={errors.record?.length ? 'field check invalid' : 'field check'}>
        <label htmlFor="qemu-field-record">
          <input
            id="qemu-field-record"
            data-testid="qemu-field-record"
            name="record"
            type="checkbox"
            checked={record}
            onChange={(e) => {
              setRecord(e.target.checked);
              form.clearError('record');
            }}
            aria-describedby={form.described('record')}
          />{' '}
          Record for inspect
        </label>
        <p className="hint" id="qemu-hint-record">
          keep each connection&apos;s bytes in the console&apos;s data directory, for <code>multifd inspect</code>
        </p>
        <FieldError prefix={P} name="record" errors={errors.record} />
      </div>
      <FaultLab
        prefix={P}
        kinds={RELAY_KINDS}
        hint="The relay alters QEMU's real traffic on purpose, one fault per channel: handshake faults, and drop. The migration is marked as a fault-lab run everywhere it is shown."
        lab={form.lab}
        errors={errors.inject}
      />
      <OtherErrors prefix={P} errors={form.otherErrors} alert />
      {/* 502: QEMU refused a command; its message is QEMU's own and is shown as it is. */}
      {formError && (
        <p className="form-error" role="alert" data-testid="qemu-form-error" data-code={errorCode}>
          <span className="form-error-code">{errorCode}</span>
          <span data-testid="qemu-form-error-message">{formError.message}</span>
        </p>
      )}
      <div className="actions">
        <button type="submit" data-testid="qemu-start" disabled={form.pending || !form.ready}>
          {form.pending ? 'Starting…' : 'Start QEMU migration'}
        </button>
      </div>
    </form>
  );
}
