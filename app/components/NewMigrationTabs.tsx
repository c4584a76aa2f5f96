'use client';

/**
 * The "New migration" panel's three modes as tabs (WAI-ARIA tabs: arrow keys move between
 * them): the built-in guest (the engine's own source), QEMU (two running QEMUs driven over
 * QMP) and fleet (a guest of one agent to another). Every form stays mounted, the others
 * hidden, so switching keeps what was typed.
 */
import { useRef, useState, type KeyboardEvent } from 'react';
import { FleetMigrationForm } from './fleet/FleetMigrationForm';
import { NewMigrationForm } from './NewMigrationForm';
import { QemuMigrationForm } from './QemuMigrationForm';

const MODES = [
  { key: 'engine', label: 'Built-in guest' },
  { key: 'qemu', label: 'QEMU' },
  { key: 'fleet', label: 'Fleet' },
] as const;
type Mode = (typeof MODES)[number]['key'];

export function NewMigrationTabs({ labelledBy }: { labelledBy: string }) {
  const [mode, setMode] = useState<Mode>('engine');
  const tabs = useRef<Partial<Record<Mode, HTMLButtonElement | null>>>({});

  function onKeyDown(e: KeyboardEvent<HTMLDivElement>) {
    const i = MODES.findIndex((m) => m.key === mode);
    const next =
      e.key === 'ArrowRight' ? (i + 1) % MODES.length : e.key === 'ArrowLeft' ? (i - 1 + MODES.length) % MODES.length : e.key === 'Home' ? 0 : e.key === 'End' ? MODES.length - 1 : null;
    if (next === null) return;
    e.preventDefault();
    const key = MODES[next].key;
    setMode(key);
    tabs.current[key]?.focus();
  }

  return (
    <>
      <div className="tabs" role="tablist" aria-labelledby={labelledBy} onKeyDown={onKeyDown}>
        {MODES.map((m) => (
          <button
            key={m.key}
            ref={(el) => {
              tabs.current[m.key] = el;
            }}
            type="button"
            role="tab"
            id={`mode-tab-${m.key}`}
            data-testid={`mode-${m.key}`}
            className={mode === m.key ? 'tab active' : 'tab'}
            aria-selected={mode === m.key}
            aria-controls={`mode-panel-${m.key}`}
            // Roving focus: Tab enters the list at the selected tab; arrows move within it.
            tabIndex={mode === m.key ? 0 : -1}
            onClick={() => setMode(m.key)}
          >
            {m.label}
          </button>
        ))}
      </div>
      <div role="tabpanel" id="mode-panel-engine" aria-labelledby="mode-tab-engine" hidden={mode !== 'engine'}>
        <NewMigrationForm />
      </div>
      <div role="tabpanel" id="mode-panel-qemu" aria-labelledby="mode-tab-qemu" hidden={mode !== 'qemu'}>
        <QemuMigrationForm />
      </div>
      <div role="tabpanel" id="mode-panel-fleet" aria-labelledby="mode-tab-fleet" hidden={mode !== 'fleet'}>
        <FleetMigrationForm />
      </div>
    </>
  );
}
