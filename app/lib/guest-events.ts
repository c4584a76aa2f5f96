/**
 * "Migrate this guest" from the guest table to the new-migration form on the same page: a
 * window event whose detail is the guest's uuid.
 */
export const MIGRATE_GUEST_EVENT = 'multifd:migrate-guest';

export function migrateGuest(uuid: string): void {
  window.dispatchEvent(new CustomEvent<string>(MIGRATE_GUEST_EVENT, { detail: uuid }));
}
