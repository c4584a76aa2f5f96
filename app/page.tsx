import { GuestTable } from './components/GuestTable';
import { MigrationList } from './components/MigrationList';
import { NewMigrationTabs } from './components/NewMigrationTabs';

/**
 * The console: start a migration (of a built-in guest, or between two QEMUs), see the live and
 * recent ones, and the guests of this host.
 */
export default function ConsolePage() {
  return (
    <div className="console-grid">
      <section className="panel" aria-labelledby="new-title">
        <h1 id="new-title">New migration</h1>
        <NewMigrationTabs labelledBy="new-title" />
      </section>
      <div className="stack">
        <section className="panel" aria-labelledby="migrations-title">
          <h2 id="migrations-title">Migrations</h2>
          <MigrationList />
        </section>
        <section className="panel" aria-labelledby="guests-title">
          <h2 id="guests-title">Guests on this host</h2>
          <GuestTable />
        </section>
      </div>
    </div>
  );
}
