/**
 * The fault lab, as both "New migration" forms show it: a toggle, one row per fault (channel,
 * kind, argument, and the `chK:KIND[:ARG]` it makes), and the messages about them. What differs
 * is the forms' to give: the kinds they offer, the hint, and the prefix of the ids and test ids
 * ('' or 'qemu-': both forms stay mounted under their tabs).
 */
import type { ReactNode } from 'react';
import { INJECT_HEADER_FIELDS, type InjectKind } from '../../lib/contracts/console';
import { KIND_INFO, rowSpec, type FaultRow, type KindInfo } from '../lib/fault-lab';
import type { FaultLabState } from '../lib/migration-form';
import { FieldError } from './FormField';

export function FaultLab({ prefix, kinds, hint, lab, errors }: { prefix: string; kinds: readonly KindInfo[]; hint: ReactNode; lab: FaultLabState; errors?: string[] }) {
  const invalid = !!errors?.length;
  const count = lab.rows.length;
  return (
    <fieldset className={invalid ? 'fault-lab has-error' : 'fault-lab'} data-testid={`${prefix}fault-lab`} aria-describedby={invalid ? `${prefix}error-inject` : `${prefix}hint-inject`}>
      <legend>
        <button
          type="button"
          className="lab-toggle"
          data-testid={`${prefix}fault-lab-toggle`}
          aria-expanded={lab.open}
          aria-controls={`${prefix}fault-lab-body`}
          onClick={() => lab.setOpen((o) => !o)}
        >
          {lab.open ? '▾' : '▸'} Fault lab
        </button>
        {count > 0 && (
          <span className="lab-badge" data-testid={`${prefix}fault-count`}>
            {count} fault{count === 1 ? '' : 's'} will be injected
          </span>
        )}
      </legend>
      {lab.open && (
        <div id={`${prefix}fault-lab-body`}>
          <p className="hint" id={`${prefix}hint-inject`}>
            {hint}
          </p>
          {count > 0 && (
            <ul className="fault-rows">
              {lab.rows.map((r, i) => (
                <FaultRowItem key={r.key} prefix={prefix} kinds={kinds} row={r} index={i} onEdit={(patch) => lab.edit(r.key, patch)} onRemove={() => lab.remove(r.key)} />
              ))}
            </ul>
          )}
          <button type="button" className="small" data-testid={`${prefix}add-fault`} onClick={lab.add} disabled={count >= 255}>
            Add fault
          </button>
        </div>
      )}
      <FieldError prefix={prefix} name="inject" errors={errors} />
    </fieldset>
  );
}

/** One fault: its channel, one of the offered kinds, its argument, and the spec they make. */
function FaultRowItem({
  prefix,
  kinds,
  row: r,
  index: i,
  onEdit,
  onRemove,
}: {
  prefix: string;
  kinds: readonly KindInfo[];
  row: FaultRow;
  index: number;
  onEdit: (patch: Partial<FaultRow>) => void;
  onRemove: () => void;
}) {
  const info = KIND_INFO.get(r.kind);
  return (
    <li className="fault-row" data-testid={`${prefix}fault-row`}>
      <label>
        <span>channel</span>
        <input
          name={`inject.${i}.channel`}
          data-testid={`${prefix}fault-channel`}
          type="number"
          inputMode="numeric"
          min={0}
          max={254}
          step={1}
          value={r.channel}
          onChange={(e) => onEdit({ channel: e.target.value })}
        />
      </label>
      <label>
        <span>fault</span>
        <select name={`inject.${i}.kind`} data-testid={`${prefix}fault-kind`} value={r.kind} onChange={(e) => onEdit({ kind: e.target.value as InjectKind })}>
          {kinds.map((k) => (
            <option key={k.kind} value={k.kind} title={k.label}>
              {k.kind === 'id' ? 'id-N' : k.kind}
            </option>
          ))}
        </select>
      </label>
      <label>
        <span>{info?.arg ? info.arg.label : 'argument'}</span>
        {/* bad-header's argument is one of a few header fields, not a number. */}
        {r.kind === 'bad-header' ? (
          <select name={`inject.${i}.arg`} data-testid={`${prefix}fault-arg`} value={r.arg} onChange={(e) => onEdit({ arg: e.target.value })}>
            {INJECT_HEADER_FIELDS.map((f) => (
              <option key={f} value={f}>
                {f}
              </option>
            ))}
          </select>
        ) : (
          <input
            name={`inject.${i}.arg`}
            data-testid={`${prefix}fault-arg`}
            type="text"
            inputMode="numeric"
            autoComplete="off"
            spellCheck={false}
            disabled={!info?.arg}
            placeholder={info?.arg ? (info.arg.required ? 'required' : 'optional') : '—'}
            value={r.arg}
            onChange={(e) => onEdit({ arg: e.target.value })}
          />
        )}
      </label>
      <p className="fault-what">
        <code className="fault-spec" data-testid={`${prefix}fault-spec`}>
          {rowSpec(r)}
        </code>{' '}
        <span className="hint">{info?.label}</span>
      </p>
      <button type="button" className="small" data-testid={`${prefix}remove-fault`} aria-label={`remove fault ${rowSpec(r)}`} onClick={onRemove}>
        Remove
      </button>
    </li>
  );
}
