/** A migration or channel state, its exact string, coloured by what it means. */
export function StateBadge({ state, testId }: { state: string; testId?: string }) {
  return (
    <span className={`state state-${state}`} data-testid={testId}>
      {state}
    </span>
  );
}
